/** The median of the finite numbers given (the mean of the middle two for an even count); undefined for none. */
export function median(xs: ReadonlyArray<number | undefined>): number | undefined {
  const s = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((p, q) => p - q);
  if (!s.length) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
