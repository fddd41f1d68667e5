/**
 * The low-dimensional similarity curve 1 / (1 + a·x^(2b)). umap-learn umap_.py: find_ab_params
 * least-squares fits it (scipy curve_fit, Levenberg–Marquardt from a = b = 1) to the target
 * "1 up to min_dist, then exp(−(x − min_dist)/spread)" sampled at 300 points on [0, 3·spread].
 * Same data, same model, our own small LM loop.
 */

export function findAB(minDist: number, spread = 1): { a: number; b: number } {
  if (!(spread > 0) || !(minDist >= 0)) throw new Error(`findAB: need spread > 0 and minDist ≥ 0, got ${spread}, ${minDist}`);
  const N = 300;
  const xs = new Float64Array(N);
  const ys = new Float64Array(N);
  for (let t = 0; t < N; t++) {
    const x = (3 * spread * t) / (N - 1);
    xs[t] = x;
    ys[t] = x < minDist ? 1 : Math.exp(-(x - minDist) / spread);
  }
  const sse = (a: number, b: number): number => {
    let s = 0;
    for (let t = 0; t < N; t++) {
      const r = 1 / (1 + a * xs[t]! ** (2 * b)) - ys[t]!;
      s += r * r;
    }
    return s;
  };

  let a = 1;
  let b = 1;
  let cost = sse(a, b);
  let lambda = 1e-3;
  for (let it = 0; it < 500; it++) {
    // normal equations JᵀJ δ = −Jᵀr of the residuals r = f − y
    let jaa = 0;
    let jab = 0;
    let jbb = 0;
    let ga = 0;
    let gb = 0;
    for (let t = 0; t < N; t++) {
      const x = xs[t]!;
      const p = x > 0 ? x ** (2 * b) : 0;
      const den = 1 + a * p;
      const f = 1 / den;
      const r = f - ys[t]!;
      const da = -p / (den * den);
      const db = x > 0 ? (-a * p * 2 * Math.log(x)) / (den * den) : 0;
      jaa += da * da;
      jab += da * db;
      jbb += db * db;
      ga += da * r;
      gb += db * r;
    }
    let accepted = false;
    for (let tries = 0; tries < 30 && !accepted; tries++) {
      const m11 = jaa * (1 + lambda);
      const m22 = jbb * (1 + lambda);
      const det = m11 * m22 - jab * jab;
      if (!(det !== 0)) {
        lambda *= 10;
        continue;
      }
      const stepA = (-ga * m22 + gb * jab) / det;
      const stepB = (-gb * m11 + ga * jab) / det;
      const na = a + stepA;
      const nb = b + stepB;
      const nc = na > 0 && nb > 0 ? sse(na, nb) : Infinity;
      if (nc <= cost) {
        const small = Math.abs(stepA) <= 1e-12 * (1 + Math.abs(a)) && Math.abs(stepB) <= 1e-12 * (1 + Math.abs(b));
        const flat = cost - nc <= 1e-15 * cost;
        a = na;
        b = nb;
        cost = nc;
        lambda = Math.max(lambda / 10, 1e-12);
        accepted = true;
        if (small || flat) return { a, b };
      } else {
        lambda *= 10;
      }
    }
    if (!accepted) break;
  }
  return { a, b };
}
