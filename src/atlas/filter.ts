/**
 * Class filtering (article §2): a class atlas shows the points the class "owns" (their top
 * attribution class is it) plus the points that attribute to it most strongly, even when
 * another class wins there — the second set is where bridging features come from.
 */

export interface ClassFilterInput {
  /** Attribution of every point to `cls` (length N). */
  attr: Float32Array;
  /** Column of each point's top attribution class (length N). */
  winner: Int32Array;
  cls: number;
  /** How many of the strongest positive attributions to add (article: 3000 for one class). */
  topN: number;
}

/** Point indices (ascending, distinct): winners of `cls` ∪ top-n by attribution to `cls` (> 0 only). */
export function classFilter({ attr, winner, cls, topN }: ClassFilterInput): Int32Array {
  const n = attr.length;
  if (winner.length !== n) throw new Error(`classFilter: attr has ${n} points but winner has ${winner.length}`);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (winner[i] === cls) keep[i] = 1;
  for (const i of topPositive(attr, topN)) keep[i] = 1;
  return collect(keep);
}

export interface PairFilterInput {
  attrA: Float32Array;
  attrB: Float32Array;
  winner: Int32Array;
  a: number;
  b: number;
  /** Per class (article: 2000 for a comparison). */
  topN: number;
}

/** The union of both classes' filters, ascending. */
export function pairFilter({ attrA, attrB, winner, a, b, topN }: PairFilterInput): Int32Array {
  const fa = classFilter({ attr: attrA, winner, cls: a, topN });
  const fb = classFilter({ attr: attrB, winner, cls: b, topN });
  const keep = new Uint8Array(winner.length);
  for (const i of fa) keep[i] = 1;
  for (const i of fb) keep[i] = 1;
  return collect(keep);
}

/** Indices of the topN largest strictly positive values; ties go to the lower index so results are stable. */
function topPositive(attr: Float32Array, topN: number): Int32Array {
  if (!(topN > 0)) return new Int32Array(0);
  let m = 0;
  for (let i = 0; i < attr.length; i++) if (attr[i]! > 0) m++; // NaN fails too, on purpose
  const cand = new Int32Array(m);
  m = 0;
  for (let i = 0; i < attr.length; i++) if (attr[i]! > 0) cand[m++] = i;
  if (cand.length <= topN) return cand;
  cand.sort((p, q) => attr[q]! - attr[p]! || p - q);
  return cand.subarray(0, topN);
}

function collect(keep: Uint8Array): Int32Array {
  let m = 0;
  for (let i = 0; i < keep.length; i++) m += keep[i]!;
  const out = new Int32Array(m);
  m = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i]) out[m++] = i;
  return out;
}
