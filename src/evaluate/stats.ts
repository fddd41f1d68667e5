/**
 * Paired tests for the screen (issue "Do bridges make patches?"): the Wilcoxon signed-rank test on
 * paired differences, the exact McNemar test on paired flips, Holm's step-down correction, a median
 * with its distribution-free interval, and the smallest effect a test of n pairs detects at 80 % power.
 * Pure functions on plain arrays; checked against SciPy's values (test/evaluate/stats-reference.*).
 */

export interface WilcoxonResult {
  /** Differences used (zeros dropped, zero_method "wilcox"). */
  n: number;
  zeros: number;
  /** min(R+, R−) as SciPy reports it. */
  statistic: number;
  rPlus: number;
  rMinus: number;
  /** Two-sided p-value; null when no non-zero difference remains. */
  p: number | null;
  /** Exact for n ≤ 50 with neither zeros nor ties; else the normal approximation with the tie correction. */
  method: 'exact' | 'approx';
}

/**
 * Two-sided Wilcoxon signed-rank test of paired differences d (as scipy.stats.wilcoxon with
 * zero_method='wilcox', correction=False). Exact null distribution for n ≤ 50 without zeros or ties
 * (the enumeration SciPy uses); otherwise z = (T − n(n+1)/4) / σ with σ² = n(n+1)(2n+1)/24 − Σ(t³−t)/48
 * over tied groups, zeros dropped first.
 */
export function wilcoxon(d: readonly number[]): WilcoxonResult {
  const zeros = d.filter((x) => x === 0).length;
  const nz = d.filter((x) => x !== 0);
  const ranks = averageRanks(nz.map(Math.abs));
  const ties = new Set(nz.map(Math.abs)).size < nz.length;
  const method = d.length <= 50 && zeros === 0 && !ties ? 'exact' : 'approx';
  let rPlus = 0;
  let rMinus = 0;
  nz.forEach((x, i) => (x > 0 ? (rPlus += ranks[i]!) : (rMinus += ranks[i]!)));
  const n = nz.length;
  const statistic = Math.min(rPlus, rMinus);
  if (n === 0) return { n, zeros, statistic, rPlus, rMinus, p: null, method };
  let p: number;
  if (method === 'exact') {
    const pmf = signedRankPmf(n);
    const r = Math.round(rPlus);
    if (r === (pmf.length - 1) / 2) p = 1;
    else {
      let less = 0;
      let greater = 0;
      for (let k = 0; k < pmf.length; k++) {
        if (k <= r) less += pmf[k]!;
        if (k >= r) greater += pmf[k]!;
      }
      p = Math.min(1, 2 * Math.min(less, greater));
    }
  } else {
    const mean = (n * (n + 1)) / 4;
    let variance = n * (n + 1) * (2 * n + 1);
    for (const t of tieSizes(nz.map(Math.abs))) variance -= 0.5 * t * (t * t - 1);
    const z = (statistic - mean) / Math.sqrt(variance / 24);
    p = Math.min(1, 2 * normSf(Math.abs(z)));
  }
  return { n, zeros, statistic, rPlus, rMinus, p, method };
}

/** Exact two-sided McNemar test: b and c discordant pairs, p = min(1, 2·P(X ≤ min(b, c))), X ~ Bin(b + c, ½). */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0 || b === c) return 1;
  let tail = 0;
  for (let k = 0; k <= Math.min(b, c); k++) tail += binomPmfHalf(n, k);
  return Math.min(1, 2 * tail);
}

/** Holm's step-down adjusted p-values, in the input order (null stays null and is not counted). */
export function holm(ps: ReadonlyArray<number | null>): Array<number | null> {
  const idx = ps.map((p, i) => [p, i] as const).filter((x): x is readonly [number, number] => x[0] !== null).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const m = idx.length;
  const out: Array<number | null> = ps.map(() => null);
  let running = 0;
  idx.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    out[i] = running;
  });
  return out;
}

export interface MedianInterval {
  n: number;
  median: number | null;
  /** Distribution-free interval from order statistics (sign-test inversion), coverage ≥ `level`; null when n is too small. */
  lo: number | null;
  hi: number | null;
  level: number;
}

/** Median of `xs` with the order-statistic interval [x_(k), x_(n−k+1)], k the largest with P(Bin(n, ½) ≤ k − 1) ≤ (1 − level)/2. */
export function medianInterval(xs: readonly number[], level = 0.95): MedianInterval {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n, median: null, lo: null, hi: null, level };
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  const alpha = (1 - level) / 2;
  let k = 0;
  let cdf = 0;
  for (let j = 0; j < n; j++) {
    cdf += binomPmfHalf(n, j);
    if (cdf > alpha) break;
    k = j + 1;
  }
  if (k === 0) return { n, median, lo: null, hi: null, level };
  return { n, median, lo: s[k - 1]!, hi: s[n - k]!, level };
}

/**
 * The smallest mean paired difference a two-sided signed-rank test of n pairs detects with the given
 * power at level alpha, for differences of standard deviation sd: (z₁₋α/₂ + z_power) · sd / √(n · 3/π),
 * the t-test's detectable shift scaled by the Wilcoxon test's asymptotic relative efficiency 3/π
 * (normal data). null for n < 2.
 */
export function detectableShift(sd: number, n: number, alpha = 0.05, power = 0.8): number | null {
  if (n < 2 || !Number.isFinite(sd)) return null;
  return ((normQuantile(1 - alpha / 2) + normQuantile(power)) * sd) / Math.sqrt((n * 3) / Math.PI);
}

/** Sample standard deviation (n − 1); NaN for n < 2. */
export function sampleSd(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
}

// ---- distributions ---------------------------------------------------------------------------

/** Ranks 1..n of `xs`, ties given their average rank (SciPy's rankdata 'average'). */
export function averageRanks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]![1]] = r;
    i = j + 1;
  }
  return ranks;
}

function tieSizes(xs: readonly number[]): number[] {
  const counts = new Map<number, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts.values()].filter((t) => t > 1);
}

const pmfCache = new Map<number, Float64Array>();

/** Null distribution of R+ for n untied, non-zero differences: P(R+ = r), r = 0 … n(n+1)/2 (SciPy's recursion). */
function signedRankPmf(n: number): Float64Array {
  const hit = pmfCache.get(n);
  if (hit) return hit;
  let c = new Float64Array([1]);
  for (let k = 1; k <= n; k++) {
    const next = new Float64Array((k * (k + 1)) / 2 + 1);
    const m = c.length;
    for (let i = 0; i < m; i++) {
      next[i]! += c[i]! * 0.5;
      next[next.length - m + i]! += c[i]! * 0.5;
    }
    c = next;
  }
  pmfCache.set(n, c);
  return c;
}

/** C(n, k) / 2ⁿ, through logs so large n does not overflow. */
function binomPmfHalf(n: number, k: number): number {
  return Math.exp(logChoose(n, k) - n * Math.LN2);
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

/** P(Z > z) for a standard normal Z, to about 1e-15 relative (erfc by series below 3, continued fraction above). */
export function normSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) {
    // erf by its Maclaurin series: 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)).
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction (Lentz): erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …)))).
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** The standard normal quantile (Acklam's rational approximation refined by one Newton step: ~1e-15). */
export function normQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normQuantile: p = ${p} must be in (0, 1)`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  // One Newton step on Φ(x) = p.
  const e = 1 - normSf(x) - p;
  return x - e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
}
