/**
 * Initial layout. umap-learn's default is a spectral embedding of the graph; its `init='pca'`
 * alternative (the top principal components, scaled so the largest |coordinate| is 10, plus
 * N(0, 1e-4) noise — umap_.py: noisy_scale_coords) is nearly as good, costs nothing here
 * because the components already come out of the PCA step, and preserves global structure
 * better than umap-js's uniform random init. As in umap-learn's simplicial_set_embedding,
 * each axis is then min–max scaled to [0, 10] before the SGD.
 */

export function pcaInit(pcs: Float32Array, n: number, nc: number, rand: () => number): Float64Array {
  let maxAbs = 0;
  for (const v of pcs) if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
  const expansion = maxAbs > 0 ? 10 / maxAbs : 1;
  const emb = new Float64Array(n * nc);
  for (let t = 0; t < n * nc; t++) emb[t] = pcs[t]! * expansion + 1e-4 * gaussian(rand);
  for (let c = 0; c < nc; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = emb[i * nc + c]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const span = hi - lo;
    for (let i = 0; i < n; i++) emb[i * nc + c] = span > 0 ? (10 * (emb[i * nc + c]! - lo)) / span : 5;
  }
  return emb;
}

/** Standard normal draw (Box–Muller, one of the pair). */
function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}
