/**
 * PCA before the k-NN search: 50 components keep the neighbourhood structure of activation
 * vectors while making the all-pairs search ~10× cheaper than on 512+ raw dims (the usual
 * UMAP-on-embeddings practice). The covariance XᵀX is the one heavy product, done blockwise
 * with tf.matMul; the d × d eigenproblem is solved exactly in Float64 (eigen.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { symmetricEigen } from './eigen.js';

export interface PcaFit {
  /** Input dims. */
  dims: number;
  /** Components kept. */
  p: number;
  /** Mean of the included (scaled) rows. */
  mean: Float64Array;
  /** Principal axes as rows [p × dims], unit length, by descending variance. */
  components: Float64Array;
  /** Variance along each axis (covariance eigenvalues, divisor count − 1), descending. */
  variances: Float64Array;
  /** Rows that took part (rowScale ≠ 0). */
  count: number;
}

export interface PcaOptions {
  /**
   * Per-row multiplier applied before everything else; 0 leaves the row out of the fit (cosine
   * passes 1/|x| for live rows and 0 for all-zero ones). Default: every row, unscaled.
   */
  rowScale?: Float64Array;
  /** Rows per matMul block (default 2048: 4 MiB of float32 at 512 dims). */
  blockRows?: number;
}

/** Fits the top `p` principal axes of the n rows of `x` ([n × dims] row-major). */
export function pcaFit(x: Float32Array, dims: number, n: number, p: number, opts: PcaOptions = {}): PcaFit {
  if (x.length !== n * dims) throw new Error(`pcaFit: ${x.length} values is not ${n} × ${dims}`);
  p = Math.min(p, dims);
  const scale = opts.rowScale;
  const blockRows = Math.max(1, opts.blockRows ?? 2048);
  const mean = new Float64Array(dims);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const s = scale ? scale[i]! : 1;
    if (s === 0) continue;
    count++;
    const o = i * dims;
    for (let c = 0; c < dims; c++) mean[c] = mean[c]! + s * x[o + c]!;
  }
  if (count > 0) for (let c = 0; c < dims; c++) mean[c] = mean[c]! / count;

  // Σ (x − μ)(x − μ)ᵀ over blocks: each block's product in float32 on the tensor backend, summed
  // across blocks in Float64. Centring first keeps float32 from cancelling large means.
  const cov = new Float64Array(dims * dims);
  const blk = new Float32Array(Math.min(blockRows, Math.max(1, count)) * dims);
  const blkT = new Float32Array(blk.length);
  let r = 0;
  const flush = (): void => {
    if (r === 0) return;
    for (let i = 0; i < r; i++) for (let c = 0; c < dims; c++) blkT[c * r + i] = blk[i * dims + c]!;
    const prod = tf.tidy(() => tf.matMul(tf.tensor2d(blkT.subarray(0, dims * r), [dims, r]), tf.tensor2d(blk.subarray(0, r * dims), [r, dims])));
    const v = prod.dataSync();
    prod.dispose();
    for (let k = 0; k < cov.length; k++) cov[k] = cov[k]! + v[k]!;
    r = 0;
  };
  const cap = blk.length / dims;
  for (let i = 0; i < n; i++) {
    const s = scale ? scale[i]! : 1;
    if (s === 0) continue;
    const o = i * dims;
    const b = r * dims;
    for (let c = 0; c < dims; c++) blk[b + c] = s * x[o + c]! - mean[c]!;
    if (++r === cap) flush();
  }
  flush();
  // symmetrise away float32 asymmetry of the blockwise products, and normalise
  const div = Math.max(1, count - 1);
  for (let i = 0; i < dims; i++) {
    for (let j = i; j < dims; j++) {
      const v = (cov[i * dims + j]! + cov[j * dims + i]!) / (2 * div);
      cov[i * dims + j] = v;
      cov[j * dims + i] = v;
    }
  }
  const { values, vectors } = symmetricEigen(cov, dims, p);
  const variances = new Float64Array(p);
  for (let k = 0; k < p; k++) variances[k] = Math.max(0, values[k]!);
  return { dims, p, mean, components: vectors, variances, count };
}

/**
 * Centred projection V(s·x − μ) of every row onto the first `q` ≤ p axes → [n × q] float32,
 * blockwise with tf.matMul.
 */
export function pcaProject(fit: PcaFit, x: Float32Array, n: number, q = fit.p, rowScale?: Float64Array, blockRows = 4096): Float32Array {
  const { dims, mean } = fit;
  q = Math.min(q, fit.p);
  const out = new Float32Array(n * q);
  // Vᵀ as a [dims × q] tensor, uploaded once
  const vt = new Float32Array(dims * q);
  for (let k = 0; k < q; k++) for (let c = 0; c < dims; c++) vt[c * q + k] = fit.components[k * dims + c]!;
  const vtT = tf.tensor2d(vt, [dims, q]);
  try {
    const blk = new Float32Array(Math.min(blockRows, n) * dims);
    for (let start = 0; start < n; start += blockRows) {
      const rows = Math.min(blockRows, n - start);
      for (let i = 0; i < rows; i++) {
        const s = rowScale ? rowScale[start + i]! : 1;
        const o = (start + i) * dims;
        const b = i * dims;
        for (let c = 0; c < dims; c++) blk[b + c] = s * x[o + c]! - mean[c]!;
      }
      const prod = tf.tidy(() => tf.matMul(tf.tensor2d(blk.subarray(0, rows * dims), [rows, dims]), vtT));
      out.set(prod.dataSync(), start * q);
      prod.dispose();
    }
  } finally {
    vtT.dispose();
  }
  return out;
}
