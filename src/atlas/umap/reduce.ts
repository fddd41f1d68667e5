/**
 * Input rows → the rows the k-NN search runs on, plus the top PCA coordinates for the init.
 *
 * Euclidean: the centred projection onto the top `pcaDims` axes (distances are approximated by
 * those of the projections).
 *
 * Cosine (an approximation, documented): rows are scaled to unit length, PCA is fitted on the
 * live (non-zero) unit rows, and each unit row u is replaced by its best affine rank-p
 * reconstruction μ + Vᵀ·V(u − μ), written in the orthonormal basis [V, μ⊥/|μ⊥|] as
 * (V·u, |μ⊥|) where μ⊥ is the part of the mean outside the axes. k-NN then renormalises, so
 * cos(u, u') ≈ cos of the reconstructions; keeping the mean's off-axis part matters for ReLU
 * activations, whose large common mean direction is rarely a top centred axis. All-zero rows
 * stay all-zero, so the k-NN's zero-row convention (zero–zero 0, zero–other 1) still applies.
 */
import { pcaFit, pcaProject } from './pca.js';
import type { KnnMetric } from './knn.js';

export interface Reduced {
  /** [n × dim] rows for knn() with the same metric. */
  rows: Float32Array;
  dim: number;
  /** [n × nc] centred coordinates on the top nc principal axes (of the unit rows for cosine). */
  pcs: Float32Array;
  /** Whether PCA reduced the rows (false when dims ≤ pcaDims). */
  reduced: boolean;
}

export function reduceRows(acts: Float32Array, dims: number, n: number, metric: KnnMetric, pcaDims: number, nc: number): Reduced {
  let rowScale: Float64Array | undefined;
  if (metric === 'cosine') {
    rowScale = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let ss = 0;
      for (let c = 0; c < dims; c++) ss += acts[i * dims + c]! * acts[i * dims + c]!;
      rowScale[i] = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    }
  }
  if (dims <= pcaDims) {
    const fit = pcaFit(acts, dims, n, nc, rowScale ? { rowScale } : {});
    return { rows: acts, dim: dims, pcs: pcaProject(fit, acts, n, nc, rowScale), reduced: false };
  }
  const fit = pcaFit(acts, dims, n, pcaDims, rowScale ? { rowScale } : {});
  const p = fit.p;
  const proj = pcaProject(fit, acts, n, p, rowScale);
  const pcs = new Float32Array(n * nc);
  for (let i = 0; i < n; i++) for (let c = 0; c < nc; c++) pcs[i * nc + c] = proj[i * p + c]!;
  if (metric === 'euclidean') return { rows: proj, dim: p, pcs, reduced: true };

  // cosine: V·u = V(u − μ) + V·μ, and |μ⊥|² = |μ|² − |V·μ|²
  const vmu = new Float64Array(p);
  let mu2 = 0;
  for (let c = 0; c < dims; c++) mu2 += fit.mean[c]! ** 2;
  let vmu2 = 0;
  for (let k = 0; k < p; k++) {
    let s = 0;
    for (let c = 0; c < dims; c++) s += fit.components[k * dims + c]! * fit.mean[c]!;
    vmu[k] = s;
    vmu2 += s * s;
  }
  const muPerp = Math.sqrt(Math.max(0, mu2 - vmu2));
  const w = p + 1;
  const rows = new Float32Array(n * w);
  for (let i = 0; i < n; i++) {
    if (rowScale![i] === 0) continue; // dead row stays all-zero
    for (let k = 0; k < p; k++) rows[i * w + k] = proj[i * p + k]! + vmu[k]!;
    rows[i * w + p] = muPerp;
  }
  return { rows, dim: w, pcs, reduced: true };
}
