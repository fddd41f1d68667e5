/**
 * Exact k-nearest neighbours by blocked matrix products. umap-learn approximates the k-NN graph
 * (RP-trees + NN-descent); after PCA to ~50 dims an exact all-pairs search is cheap enough with
 * the backend's SIMD matMul, and it is deterministic and never misses a neighbour.
 *
 * Every pair is scored once: a block of B "query" rows against all rows at or after the block,
 * and each score updates the candidate heaps of both points. The product itself yields the
 * distance (the rows are augmented with their squared norms and a constant 1), so the scan in
 * JS is two comparisons per pair. Memory is O(n·B), never O(n²).
 */
import * as tf from '@tensorflow/tfjs';
import { heapView } from '../../engine/index.js';

export type KnnMetric = 'cosine' | 'euclidean';

export interface Knn {
  /** Neighbours per row, including the row itself first. */
  k: number;
  /** [n × k] neighbour indices, by ascending distance (ties: lower index first). */
  indices: Int32Array;
  /** [n × k] distances (cosine: 1 − cos; euclidean: L2). */
  distances: Float32Array;
}

export interface KnnOptions {
  /** Query rows per matMul; default keeps one block's scores ≤ 16 M floats (64 MiB). */
  blockSize?: number;
  /**
   * Extra candidates kept per point while scanning float32 scores (default 6); they are then
   * re-ranked with float64 distances, so float32 rounding in the products (at worst a few ulps
   * of the squared norms) would have to push a true neighbour past 6 others to change the result.
   */
  margin?: number;
}

const BLOCK_FLOATS = 16 * 1024 * 1024;

/**
 * k nearest neighbours (self included, at distance 0 and first) of every row of `rows`
 * ([n × dim] row-major). Cosine follows umap-js's convention for all-zero rows (a dead ReLU
 * position): two zero rows are at distance 0, a zero row and any other row at distance 1.
 */
export function knn(rows: Float32Array, dim: number, n: number, k: number, metric: KnnMetric, opts: KnnOptions = {}): Knn {
  if (rows.length !== n * dim) throw new Error(`knn: ${rows.length} values is not ${n} × ${dim}`);
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) throw new Error(`knn: k = ${k} must be in 1..${n}`);
  const kc = Math.min(n - 1, k - 1 + Math.max(0, opts.margin ?? 6)); // non-self candidates kept
  const { a, wa, invNorm } = augment(rows, dim, n, metric);

  const thr = new Float32Array(n).fill(Infinity); // worst kept score per point (∞ until its heap is full)
  const hk = new Float32Array(n * kc);
  const hi = new Int32Array(n * kc);
  const cnt = new Int32Array(n);

  /** Offer candidate j with score v to point i's max-heap of (score, index) pairs. */
  const offer = (i: number, v: number, j: number): void => {
    const base = i * kc;
    const c = cnt[i]!;
    if (c < kc) {
      hk[base + c] = v;
      hi[base + c] = j;
      cnt[i] = c + 1;
      if (c + 1 === kc) {
        for (let p = (kc >> 1) - 1; p >= 0; p--) siftDown(hk, hi, base, kc, p);
        thr[i] = hk[base]!;
      }
      return;
    }
    const rk = hk[base]!;
    if (v > rk || (v === rk && j > hi[base]!)) return; // equal scores: lower index wins
    hk[base] = v;
    hi[base] = j;
    siftDown(hk, hi, base, kc, 0);
    thr[i] = hk[base]!;
  };

  if (kc > 0) {
    let B = opts.blockSize ?? Math.floor(BLOCK_FLOATS / n / 8) * 8;
    B = Math.max(8, Math.min(1024, n, B));
    const aT = tf.tensor2d(a, [n, wa]);
    const w = new Float32Array(wa * B);
    try {
      for (let s = 0; s < n; s += B) {
        const bc = Math.min(B, n - s);
        // the block's query columns [wa × bc]: scores = A[s..n) · W
        queryColumns(a, wa, s, bc, metric, w);
        const scores = tf.tidy(() => tf.matMul(tf.slice(aT, [s, 0], [n - s, wa]), tf.tensor2d(w.subarray(0, wa * bc), [wa, bc])));
        try {
          scan(heapView(scores), s, bc, n, thr, offer);
        } finally {
          scores.dispose();
        }
      }
    } finally {
      aT.dispose();
    }
  }
  return finish(rows, dim, n, k, kc, metric, invNorm, hi, cnt);
}

/**
 * Row j of A is [x_j, c_j, 1] and query column i is [coef·x_i, 1, e_i], so A_j · W_i is the
 * distance key: euclidean x = centred row (translation changes nothing, and centring keeps
 * float32 from cancelling large norms), coef = −2, c = |x_j|², e = |x_i|² → squared distance;
 * cosine x = [unit row, zero flag], coef = −1, c = 1, e = 0 → 1 − cos (zero rows: 0 or 1).
 */
function augment(rows: Float32Array, dim: number, n: number, metric: KnnMetric): { a: Float32Array; wa: number; invNorm: Float64Array } {
  const w = metric === 'cosine' ? dim + 1 : dim;
  const wa = w + 2;
  const a = new Float32Array(n * wa);
  const invNorm = new Float64Array(n);
  if (metric === 'cosine') {
    for (let i = 0; i < n; i++) {
      const o = i * dim;
      let ss = 0;
      for (let c = 0; c < dim; c++) ss += rows[o + c]! * rows[o + c]!;
      const r = i * wa;
      if (ss > 0) {
        const inv = 1 / Math.sqrt(ss);
        invNorm[i] = inv;
        for (let c = 0; c < dim; c++) a[r + c] = rows[o + c]! * inv;
      } else {
        a[r + dim] = 1; // zero flag
      }
      a[r + w] = 1;
      a[r + w + 1] = 1;
    }
  } else {
    const mean = new Float64Array(dim);
    for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) mean[c] = mean[c]! + rows[i * dim + c]!;
    for (let c = 0; c < dim; c++) mean[c] = mean[c]! / n;
    for (let i = 0; i < n; i++) {
      const o = i * dim;
      const r = i * wa;
      let ss = 0;
      for (let c = 0; c < dim; c++) {
        const v = Math.fround(rows[o + c]! - mean[c]!);
        a[r + c] = v;
        ss += v * v;
      }
      a[r + w] = ss;
      a[r + w + 1] = 1;
    }
  }
  return { a, wa, invNorm };
}

function queryColumns(a: Float32Array, wa: number, s: number, bc: number, metric: KnnMetric, out: Float32Array): void {
  const w = wa - 2;
  const coef = metric === 'cosine' ? -1 : -2;
  for (let q = 0; q < bc; q++) {
    const r = (s + q) * wa;
    for (let c = 0; c < w; c++) out[c * bc + q] = coef * a[r + c]!;
    out[w * bc + q] = 1;
    out[(w + 1) * bc + q] = metric === 'cosine' ? 0 : a[r + w]!;
  }
}

/**
 * scores[(j − s)·bc + q] is the key between query s+q and row j ≥ s. Each unordered pair is
 * visited once (inside the block only q < j − s) and offered to both points' heaps. This loop
 * is the k-NN's JS floor (~2.4 ns a pair in V8); the thresholds keep offers rare.
 */
function scan(scores: Float32Array, s: number, bc: number, n: number, thr: Float32Array, offer: (i: number, v: number, j: number) => void): void {
  const tq = thr.subarray(s, s + bc);
  for (let j = s + 1; j < n; j++) {
    const jj = j - s;
    const row = jj * bc;
    const qEnd = jj < bc ? jj : bc;
    let tj = thr[j]!;
    for (let q = 0; q < qEnd; q++) {
      const v = scores[row + q]!;
      if (v <= tq[q]!) offer(s + q, v, j);
      if (v <= tj) {
        offer(j, v, s + q);
        tj = thr[j]!;
      }
    }
  }
}

function siftDown(hk: Float32Array, hi: Int32Array, base: number, size: number, p: number): void {
  const k = hk[base + p]!;
  const id = hi[base + p]!;
  for (;;) {
    let c = 2 * p + 1;
    if (c >= size) break;
    const r = c + 1;
    if (r < size && (hk[base + r]! > hk[base + c]! || (hk[base + r] === hk[base + c] && hi[base + r]! > hi[base + c]!))) c = r;
    const ck = hk[base + c]!;
    if (ck < k || (ck === k && hi[base + c]! < id)) break;
    hk[base + p] = ck;
    hi[base + p] = hi[base + c]!;
    p = c;
  }
  hk[base + p] = k;
  hi[base + p] = id;
}

/** Re-rank each point's candidates by float64 distance on the original rows; self goes first. */
function finish(rows: Float32Array, dim: number, n: number, k: number, kc: number, metric: KnnMetric, invNorm: Float64Array, hi: Int32Array, cnt: Int32Array): Knn {
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  const cd = new Float64Array(kc);
  const ci = new Int32Array(kc);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = cnt[i]!;
    const oi = i * dim;
    for (let t = 0; t < c; t++) {
      const j = hi[i * kc + t]!;
      const oj = j * dim;
      let d: number;
      if (metric === 'cosine') {
        const zi = invNorm[i] === 0;
        const zj = invNorm[j] === 0;
        if (zi || zj) d = zi && zj ? 0 : 1;
        else {
          let dot = 0;
          for (let x = 0; x < dim; x++) dot += rows[oi + x]! * rows[oj + x]!;
          d = Math.max(0, 1 - dot * invNorm[i]! * invNorm[j]!);
        }
      } else {
        let ss = 0;
        for (let x = 0; x < dim; x++) {
          const t2 = rows[oi + x]! - rows[oj + x]!;
          ss += t2 * t2;
        }
        d = Math.sqrt(ss);
      }
      cd[t] = d;
      ci[t] = j;
    }
    order.length = c;
    for (let t = 0; t < c; t++) order[t] = t;
    order.sort((x, y) => cd[x]! - cd[y]! || ci[x]! - ci[y]!);
    const o = i * k;
    indices[o] = i;
    distances[o] = 0;
    for (let t = 1; t < k; t++) {
      indices[o + t] = ci[order[t - 1]!]!;
      distances[o + t] = cd[order[t - 1]!]!;
    }
  }
  return { k, indices, distances };
}
