/**
 * Percentiles with linear interpolation between order statistics (numpy's default, which the
 * article's notebooks used): the p-th percentile of n sorted values sits at rank p/100·(n−1).
 */
export function percentiles(values: ArrayLike<number>, ps: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) throw new Error('percentiles of an empty array');
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  return ps.map((p) => {
    if (!(p >= 0 && p <= 100)) throw new Error(`percentile ${p} is outside 0..100`);
    const pos = (p / 100) * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
  });
}

export function percentile(values: ArrayLike<number>, p: number): number {
  return percentiles(values, [p])[0]!;
}
