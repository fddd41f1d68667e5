/**
 * Layouts (article §2–3): a UMAP embedding of activation vectors, the two-class comparison axis,
 * and the percentile normalisation that maps a layout onto the unit square before binning.
 */
import { UMAP } from 'umap-js';
import { PatchAtlasError } from '../errors.js';
import { percentiles } from './percentile.js';
import { mulberry32 } from '../util/random.js';
import { umap as nativeUmap, type UmapPhase } from './umap/index.js';

export type Metric = 'cosine' | 'euclidean';

export interface UmapOptions {
  nNeighbors: number;
  minDist: number;
  nComponents: 1 | 2;
  seed: number;
  metric: Metric;
  /**
   * Optimisation epochs. Default (native): 500 for n ≤ 10,000, else 200, as umap-learn; umap-js
   * picks 500 (n ≤ 2500) down to 200 (n > 7500).
   */
  nEpochs?: number;
  /**
   * 'native' (default): our UMAP in ./umap (PCA → k-NN, exact or NN-descent → umap-learn's graph and SGD); for
   * 50,000 × 512 points ~20 s and 0.45 GB on 2 cores, where umap-js took 772 s and 4.5 GB.
   * 'umap-js': the umap-js package, kept as the reference the quality tests compare against.
   */
  implementation?: 'native' | 'umap-js';
  /** Native only: wall time of each phase (pca, knn, graph, init, optimise) as it completes. */
  onPhase?: (phase: UmapPhase, ms: number) => void;
  /** Called after every optimisation epoch (1-based), e.g. for a progress bar. */
  onEpoch?: (epoch: number, total: number) => void;
  /** Native only: after every round of the approximate k-NN search (minutes at a million points). */
  onKnnStep?: (step: number, total: number) => void;
  /** Called with a one-line note when a parameter had to be adjusted (e.g. nNeighbors clamped). */
  onNote?: (note: string) => void;
}

/** Article §3: whole-layer atlas. */
export const LAYER_UMAP = { nNeighbors: 50, minDist: 0.05, metric: 'cosine' } as const;
/** Article §3: class and comparison atlases (min_dist 0.01–0.02; we take the low end). */
export const CLASS_UMAP = { nNeighbors: 20, minDist: 0.01, metric: 'cosine' } as const;

/**
 * UMAP of n rows of `acts` (row-major [n × dims]); returns [n × nComponents]. Deterministic for
 * a seed: every random draw (native: init noise and negative sampling; umap-js: also RP trees
 * and NN-descent) goes through the seeded generator. Async because the native k-NN and PCA run
 * matrix products on the tensor backend (initialised here if nothing has set one up).
 */
export async function umapLayout(acts: Float32Array, dims: number, n: number, opts: UmapOptions): Promise<Float32Array> {
  if (acts.length !== n * dims) throw new Error(`umapLayout: acts has ${acts.length} values, expected ${n} × ${dims}`);
  if (n < 3) {
    throw new PatchAtlasError('TOO_FEW_POINTS', `cannot lay out ${n} point${n === 1 ? '' : 's'} with UMAP (need at least 3)`, 'collect activations from more images or relax the class filter (--top-n)');
  }
  const nc = opts.nComponents;
  // umap-js requires nNeighbors < n; a tiny atlas still deserves a layout, so clamp and say so.
  let nNeighbors = Math.max(2, Math.round(opts.nNeighbors));
  if (nNeighbors >= n) {
    opts.onNote?.(`UMAP nNeighbors ${nNeighbors} ≥ ${n} points; using ${n - 1}`);
    nNeighbors = n - 1;
  }
  const out = opts.implementation === 'umap-js' ? umapJs(acts, dims, n, nNeighbors, opts) : await nativeUmap(acts, dims, n, {
    nNeighbors,
    minDist: opts.minDist,
    nComponents: nc,
    metric: opts.metric,
    seed: opts.seed,
    ...(opts.nEpochs ? { nEpochs: opts.nEpochs } : {}),
    ...(opts.onEpoch ? { onEpoch: opts.onEpoch } : {}),
    ...(opts.onPhase ? { onPhase: opts.onPhase } : {}),
    ...(opts.onKnnStep ? { onKnnStep: opts.onKnnStep } : {}),
  });
  for (let k = 0; k < out.length; k++) {
    if (!Number.isFinite(out[k])) throw new Error(`umapLayout: non-finite coordinate for row ${Math.floor(k / nc)}`);
  }
  return out;
}

/** The umap-js path: its own RP-tree + NN-descent k-NN, random init and SGD. */
function umapJs(acts: Float32Array, dims: number, n: number, nNeighbors: number, opts: UmapOptions): Float32Array {
  const nc = opts.nComponents;
  const { rows, distanceFn } = opts.metric === 'cosine' ? cosineRows(acts, dims, n) : euclideanRows(acts, dims, n);
  const umap = new UMAP({
    nComponents: nc,
    nNeighbors,
    minDist: opts.minDist,
    random: mulberry32(opts.seed),
    distanceFn,
    ...(opts.nEpochs ? { nEpochs: opts.nEpochs } : {}),
  });
  // umap-js types rows as number[]; it only indexes them, so typed-array views work and save a copy.
  const total = umap.initializeFit(rows as unknown as number[][]);
  for (let e = 1; e <= total; e++) {
    umap.step();
    opts.onEpoch?.(e, total);
  }
  const emb = umap.getEmbedding();
  const out = new Float32Array(n * nc);
  for (let i = 0; i < n; i++) for (let d = 0; d < nc; d++) out[i * nc + d] = emb[i]![d]!;
  return out;
}

type Rows = { rows: Float32Array[]; distanceFn: (x: number[], y: number[]) => number };

/**
 * Cosine via unit rows: normalising once turns every distance into 1 − dot (one multiply-add
 * per dim instead of three). An extra last slot flags all-zero rows (a dead ReLU position), so
 * two zero rows are identical (distance 0) and a zero row is maximally far from others (1),
 * as umap-js's own cosine has it.
 */
function cosineRows(acts: Float32Array, dims: number, n: number): Rows {
  const w = dims + 1;
  const buf = new Float32Array(n * w);
  const rows: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < dims; d++) ss += acts[i * dims + d]! ** 2;
    const row = buf.subarray(i * w, (i + 1) * w);
    if (ss > 0) {
      const inv = 1 / Math.sqrt(ss);
      for (let d = 0; d < dims; d++) row[d] = acts[i * dims + d]! * inv;
    } else {
      row[dims] = 1;
    }
    rows.push(row);
  }
  const distanceFn = (x: number[], y: number[]): number => {
    const zx = x[dims]!;
    const zy = y[dims]!;
    if (zx || zy) return zx && zy ? 0 : 1;
    let dot = 0;
    for (let d = 0; d < dims; d++) dot += x[d]! * y[d]!;
    return dot >= 1 ? 0 : 1 - dot; // rounding can push dot past 1; distances must stay ≥ 0
  };
  return { rows, distanceFn };
}

function euclideanRows(acts: Float32Array, dims: number, n: number): Rows {
  const rows: Float32Array[] = [];
  for (let i = 0; i < n; i++) rows.push(acts.subarray(i * dims, (i + 1) * dims));
  const distanceFn = (x: number[], y: number[]): number => {
    let s = 0;
    for (let d = 0; d < dims; d++) {
      const t = x[d]! - y[d]!;
      s += t * t;
    }
    return Math.sqrt(s);
  };
  return { rows, distanceFn };
}

/**
 * The article's two-class comparison axis for the points `idx`: x = attr[B] − attr[A], divided by
 * the 99th percentile of |x| (so a few extreme points cannot squash the rest) and clipped to
 * [−1, 1]. Negative = toward A, positive = toward B. All-equal attributions give x = 0.
 */
export function pairAxis(attrA: Float32Array, attrB: Float32Array, idx: Int32Array): Float32Array {
  const m = idx.length;
  const x = new Float64Array(m);
  for (let k = 0; k < m; k++) x[k] = attrB[idx[k]!]! - attrA[idx[k]!]!;
  const out = new Float32Array(m);
  if (m === 0) return out;
  const scale = percentiles(x.map(Math.abs), [99])[0]!;
  if (!(scale > 0)) return out;
  for (let k = 0; k < m; k++) out[k] = Math.max(-1, Math.min(1, x[k]! / scale));
  return out;
}

export interface NormaliseOptions {
  /** Lower percentile to clip at (article: 1). */
  lo?: number;
  /** Upper percentile to clip at (article: 99). */
  hi?: number;
  /** Extra room beyond the percentiles, as a fraction of their range (lucid's default 0.1). */
  margin?: number;
}

/**
 * Article §3 / lucid's `normalize_layout`, per axis: widen the [lo, hi] percentile range by
 * `margin` × its width on both sides, clip to that range (outliers land on the edge instead of
 * stretching the map), then scale min..max to [0, 1]. A constant axis maps to 0.5.
 */
export function normaliseLayout(xy: Float32Array, nComponents: number, opts: NormaliseOptions = {}): Float32Array {
  const { lo = 1, hi = 99, margin = 0.1 } = opts;
  const n = xy.length / nComponents;
  if (!Number.isInteger(n)) throw new Error(`normaliseLayout: ${xy.length} values is not a multiple of ${nComponents}`);
  const out = new Float32Array(xy.length);
  if (n === 0) return out;
  const axis = new Float64Array(n);
  for (let d = 0; d < nComponents; d++) {
    for (let i = 0; i < n; i++) axis[i] = xy[i * nComponents + d]!;
    const [pLo, pHi] = percentiles(axis, [lo, hi]) as [number, number];
    const w = pHi - pLo;
    const cLo = pLo - margin * w;
    const cHi = pHi + margin * w;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = Math.max(cLo, Math.min(cHi, axis[i]!));
      axis[i] = v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const span = max - min;
    for (let i = 0; i < n; i++) out[i * nComponents + d] = span > 0 ? (axis[i]! - min) / span : 0.5;
  }
  return out;
}
