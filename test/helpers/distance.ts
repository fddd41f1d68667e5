import type { KnnMetric } from '../../src/atlas/umap/knn.js';

/** Reference distance in float64, umap-js's conventions (cosine: zero rows at 0 from each other, 1 from the rest). */
export function refDist(x: Float32Array, dims: number, i: number, j: number, metric: KnnMetric): number {
  let s = 0;
  let a = 0;
  let b = 0;
  for (let d = 0; d < dims; d++) {
    const u = x[i * dims + d]!;
    const v = x[j * dims + d]!;
    if (metric === 'cosine') {
      s += u * v;
      a += u * u;
      b += v * v;
    } else s += (u - v) ** 2;
  }
  if (metric === 'euclidean') return Math.sqrt(s);
  if (a === 0 || b === 0) return a === b ? 0 : 1;
  return Math.max(0, 1 - s / Math.sqrt(a * b));
}
