/**
 * The fuzzy simplicial set (UMAP's high-dimensional graph): per-point distance calibration,
 * membership strengths, and the fuzzy-union symmetrisation. Constants and rules follow
 * umap-learn (umap_.py: smooth_knn_dist, compute_membership_strengths, fuzzy_simplicial_set).
 */
import type { Knn } from './knn.js';

// umap-learn umap_.py: SMOOTH_K_TOLERANCE, MIN_K_DIST_SCALE
const SMOOTH_K_TOLERANCE = 1e-5;
const MIN_K_DIST_SCALE = 1e-3;

export interface SmoothKnnOptions {
  /** Neighbours assumed locally connected (umap-learn default 1). */
  localConnectivity?: number;
  /** Target multiplier: Σ memberships = bandwidth · log2(k) (umap-learn default 1). */
  bandwidth?: number;
  /** Binary-search steps (umap-learn n_iter 64). */
  nIter?: number;
}

/**
 * umap-learn umap_.py: smooth_knn_dist. For each row: rho = distance to the nearest neighbour
 * at a positive distance (local_connectivity 1), and sigma found by bisection so that
 * Σ_{j ≥ 1} exp(−max(0, d_j − rho)/sigma) = log2(k), skipping slot 0 (the point itself).
 * Sigma is floored at 1e-3 × the row's (or, for rho = 0, the global) mean distance.
 */
export function smoothKnnDist(knn: Knn, n: number, opts: SmoothKnnOptions = {}): { sigmas: Float64Array; rhos: Float64Array } {
  const { k, distances } = knn;
  const lc = opts.localConnectivity ?? 1;
  const target = Math.log2(k) * (opts.bandwidth ?? 1);
  const nIter = opts.nIter ?? 64;
  const sigmas = new Float64Array(n);
  const rhos = new Float64Array(n);
  let meanAll = 0;
  for (let t = 0; t < n * k; t++) meanAll += distances[t]!;
  meanAll /= n * k;
  const nz: number[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * k;
    nz.length = 0;
    let rowSum = 0;
    for (let j = 0; j < k; j++) {
      const d = distances[o + j]!;
      rowSum += d;
      if (d > 0) nz.push(d);
    }
    let rho = 0;
    if (nz.length >= lc) {
      const index = Math.floor(lc);
      const interp = lc - index;
      if (index > 0) {
        rho = nz[index - 1]!;
        if (interp > SMOOTH_K_TOLERANCE) rho += interp * (nz[index]! - nz[index - 1]!);
      } else {
        rho = interp * nz[0]!;
      }
    } else if (nz.length > 0) {
      rho = Math.max(...nz);
    }
    let lo = 0;
    let hi = Infinity;
    let mid = 1;
    for (let it = 0; it < nIter; it++) {
      let psum = 0;
      for (let j = 1; j < k; j++) {
        const d = distances[o + j]! - rho;
        psum += d > 0 ? Math.exp(-d / mid) : 1;
      }
      if (Math.abs(psum - target) < SMOOTH_K_TOLERANCE) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2;
      } else {
        lo = mid;
        mid = hi === Infinity ? mid * 2 : (lo + hi) / 2;
      }
    }
    const floor = MIN_K_DIST_SCALE * (rho > 0 ? rowSum / k : meanAll);
    sigmas[i] = mid < floor ? floor : mid;
    rhos[i] = rho;
  }
  return { sigmas, rhos };
}

/**
 * umap-learn umap_.py: compute_membership_strengths. [n × k] edge weights of each row's
 * neighbours: 0 for the point itself, 1 within rho, else exp(−(d − rho)/sigma).
 */
export function membershipStrengths(knn: Knn, n: number, sigmas: Float64Array, rhos: Float64Array): Float32Array {
  const { k, indices, distances } = knn;
  const vals = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const t = i * k + j;
      if (indices[t] === i) continue;
      const d = distances[t]! - rhos[i]!;
      vals[t] = d <= 0 || sigmas[i] === 0 ? 1 : Math.exp(-d / sigmas[i]!);
    }
  }
  return vals;
}

/** A symmetric weighted graph as a COO list in row-major order (rows, then columns, ascending). */
export interface Graph {
  n: number;
  head: Int32Array;
  tail: Int32Array;
  weight: Float32Array;
}

// column × 2^26 + slot packs into a float64 exactly for n < 2^26 (67 M points)
const SLOT_BITS = 2 ** 26;

/**
 * Fuzzy union of the directed k-NN memberships with their transpose (umap-learn
 * fuzzy_simplicial_set with set_op_mix_ratio 1): w_ij = a + b − a·b where a = w(i→j), b =
 * w(j→i), missing = 0. Both directions are listed, zero weights dropped.
 */
export function fuzzyUnion(knn: Knn, n: number, vals: Float32Array): Graph {
  if (n >= SLOT_BITS) throw new Error(`fuzzyUnion: ${n} points is too many`);
  const { k, indices } = knn;
  // every directed edge i→j lands in row i (as a) and in row j (as b)
  const deg = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < k; s++) {
      const t = i * k + s;
      if (vals[t]! > 0) {
        deg[i + 1]!++;
        deg[indices[t]! + 1]!++;
      }
    }
  }
  for (let i = 0; i < n; i++) deg[i + 1]! += deg[i]!;
  const total = deg[n]!;
  const col = new Int32Array(total);
  const w = new Float32Array(total);
  const fill = deg.slice(0, n);
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < k; s++) {
      const t = i * k + s;
      const v = vals[t]!;
      if (!(v > 0)) continue;
      const j = indices[t]!;
      let p = fill[i]!++;
      col[p] = j;
      w[p] = v;
      p = fill[j]!++;
      col[p] = i;
      w[p] = v;
    }
  }
  const head = new Int32Array(total);
  const tail = new Int32Array(total);
  const weight = new Float32Array(total);
  let m = 0;
  let keys = new Float64Array(64);
  for (let i = 0; i < n; i++) {
    const a = deg[i]!;
    const len = deg[i + 1]! - a;
    if (len > keys.length) keys = new Float64Array(2 * len);
    const ks = keys.subarray(0, len);
    for (let p = 0; p < len; p++) ks[p] = col[a + p]! * SLOT_BITS + p;
    ks.sort();
    for (let p = 0; p < len; ) {
      const c = Math.floor(ks[p]! / SLOT_BITS);
      const x = a + (ks[p]! - c * SLOT_BITS);
      let v = w[x]!;
      p++;
      // at most one more entry per column: i→c and c→i are distinct directed edges
      if (p < len && Math.floor(ks[p]! / SLOT_BITS) === c) {
        const y = a + (ks[p]! - c * SLOT_BITS);
        const b = w[y]!;
        v = v + b - v * b;
        p++;
      }
      if (v > 0) {
        head[m] = i;
        tail[m] = c;
        weight[m] = v;
        m++;
      }
    }
  }
  return { n, head: head.slice(0, m), tail: tail.slice(0, m), weight: weight.slice(0, m) };
}

/**
 * umap-learn umap_.py simplicial_set_embedding: edges lighter than max/n_epochs would be sampled
 * less than once in the whole run, so they are dropped.
 */
export function pruneGraph(g: Graph, nEpochs: number): Graph {
  let max = 0;
  for (const v of g.weight) if (v > max) max = v;
  const cut = max / nEpochs;
  let m = 0;
  for (let e = 0; e < g.weight.length; e++) if (g.weight[e]! >= cut) m++;
  const head = new Int32Array(m);
  const tail = new Int32Array(m);
  const weight = new Float32Array(m);
  m = 0;
  for (let e = 0; e < g.weight.length; e++) {
    if (g.weight[e]! < cut) continue;
    head[m] = g.head[e]!;
    tail[m] = g.tail[e]!;
    weight[m] = g.weight[e]!;
    m++;
  }
  return { n: g.n, head, tail, weight };
}
