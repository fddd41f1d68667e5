/** Closest valid names for a typo, for "did you mean" messages. */

export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** Up to `n` candidates, closest first by edit distance; a candidate containing the query counts as close. */
export function closest(query: string, candidates: Iterable<string>, n = 3): string[] {
  const q = query.toLowerCase();
  const scored: Array<[number, string]> = [];
  for (const c of new Set(candidates)) {
    const lc = c.toLowerCase();
    const d = lc.includes(q) ? Math.min(1, editDistance(q, lc)) : editDistance(q, lc);
    scored.push([d, c]);
  }
  scored.sort((x, y) => x[0] - y[0] || x[1].localeCompare(y[1]));
  const limit = Math.max(2, Math.ceil(q.length / 2));
  return scored.filter(([d]) => d <= limit).slice(0, n).map(([, c]) => c);
}

export function didYouMean(query: string, candidates: Iterable<string>): string {
  const c = closest(query, candidates);
  return c.length ? `did you mean ${c.map((x) => `"${x}"`).join(', ')}?` : '';
}
