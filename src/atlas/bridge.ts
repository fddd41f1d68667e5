/**
 * Bridge score: which cells of an A–B comparison atlas push images of A toward B (article §2:
 * "baseball?" between grey whale and great white shark). These are the candidates for patches.
 *
 *   score = towardB × evidence × reliability
 *
 * towardB   ∈ [−1, 1]  mean pair-axis x of the cell's points: attr[B] − attr[A] in units of the
 *                      atlas's 99th-percentile |attr[B] − attr[A]|, clipped per point (the
 *                      article's comparison axis, so one outlier point cannot carry a cell).
 *                      The sign carries: a cell pushing toward A scores below any neutral cell.
 * fromA     ∈ [0, 1]   fraction of the cell's labelled points whose image is labelled A (or,
 *                      with no labels in the cell, predicted A): the feature occurs in A images,
 *                      so pasting it onto an A image is the realistic attack.
 * between   ∈ [0, 1]   1 − |2t − 1| clipped to [0, 1], where t is the cell's position on the
 *                      A→B axis of activation space (t = 0 at the centroid of A-typical points,
 *                      1 at B-typical; typical = top attribution class, unit-normalised rows as
 *                      UMAP's cosine metric sees them). A feature that is neither A nor B (the
 *                      article's baseball comes from baseball images) sits near t = ½; a B
 *                      sub-feature projects to t ≈ 1 even when B has several modes.
 * evidence  = 1 − (1 − fromA)(1 − between)   a soft OR: either kind of evidence is enough for
 *                      a bridge, both is more, and neither (a B-typical cell from B images) is 0.
 * support   = count / median count of the atlas's cells; reliability = min(1, √support),
 *                      because the noise of a cell mean shrinks as 1/√count: thin cells are
 *                      discounted, but size above the median earns nothing (the largest cells
 *                      are usually the classes themselves).
 *
 * So a B-typical cell (towardB ≈ 1, fromA ≈ 0, between ≈ 0) scores ≈ 0, an A-typical cell
 * (towardB < 0, fromA ≈ 1) scores below zero, and a cell of A images with strong B attribution,
 * or one off the A–B line with strong B attribution, scores high. No tuned constants: the only
 * numbers are the 99th percentile (the article's) and the median.
 */
import type { CellStats, Composition } from './cells.js';

export interface BridgeInputs {
  cells: CellStats[];
  /** Pair-axis x per layout row (`pairAxis(attrA, attrB, points)`). */
  axis: Float32Array;
  /** [N × C] activations by global point index. */
  acts: Float32Array;
  C: number;
  /** Layout row → global point index (the atlas's points). */
  points: Int32Array;
  /** Top attribution class per global point. */
  winner: Int32Array;
  a: number;
  b: number;
  /** For the reason sentence; default "class <column>". */
  names?: { a: string; b: string };
  /**
   * Where "from A" comes from: the images' labels (or predictions), or, where no other image of A may be
   * used (the screen holds the tested image out), the points' own attribution: the share of the cell's
   * points whose attribution to A exceeds their attribution to B (needs `attrA`, `attrB`).
   */
  fromA?: 'images' | 'attribution';
  /** Attribution to A and to B by global point index (for fromA: 'attribution'). */
  attrA?: Float32Array;
  attrB?: Float32Array;
}

export interface BridgeScore {
  /** Index into the atlas's cells. */
  cell: number;
  i: number;
  j: number;
  count: number;
  /** 1-based rank, highest score first. */
  rank: number;
  score: number;
  towardB: number;
  /** null when no point in the cell has a label or prediction. */
  fromA: number | null;
  fromASource: 'label' | 'prediction' | 'attribution' | 'none';
  /** null when the atlas has no A-typical or no B-typical points, or they coincide. */
  between: number | null;
  /** Position on the A→B axis (0 = A-typical centroid, 1 = B-typical); null like `between`. */
  t: number | null;
  support: number;
  reason: string;
}

export function bridgeScores(input: BridgeInputs): BridgeScore[] {
  const { cells, axis, a, b } = input;
  const nameA = input.names?.a ?? `class ${a}`;
  const nameB = input.names?.b ?? `class ${b}`;
  const counts = cells.map((c) => c.count).sort((u, v) => u - v);
  const median = counts.length === 0 ? 0 : counts.length % 2 ? counts[(counts.length - 1) / 2]! : (counts[counts.length / 2 - 1]! + counts[counts.length / 2]!) / 2;
  const axisPos = axisProjector(input);

  const scored = cells.map((cell, index) => {
    let sx = 0;
    for (const r of cell.rows) sx += axis[r]!;
    const towardB = cell.count > 0 ? sx / cell.count : 0;
    const { fromA, source } = input.fromA === 'attribution' ? fromAttribution(cell, input) : fromClass(cell, a);
    const t = axisPos(cell.rows);
    const between = t === null ? null : Math.max(0, Math.min(1, 1 - Math.abs(2 * t - 1)));
    const evidence = 1 - (1 - (fromA ?? 0)) * (1 - (between ?? 0));
    const support = median > 0 ? cell.count / median : 0;
    const score = towardB * evidence * Math.min(1, Math.sqrt(support));
    const reason = [
      pushPhrase(towardB, nameA, nameB),
      fromPhrase(fromA, source, nameA),
      betweenPhrase(between, t, nameA, nameB),
      `${cell.count} points${support < 1 ? ' (below the median cell)' : ''}`,
    ].join(', ');
    return { cell: index, i: cell.i, j: cell.j, count: cell.count, rank: 0, score, towardB, fromA, fromASource: source, between, t, support, reason };
  });
  // Ties (e.g. several zero scores) fall back to push, then size, then position, so output is stable.
  scored.sort((u, v) => v.score - u.score || v.towardB - u.towardB || v.count - u.count || u.cell - v.cell);
  scored.forEach((s, k) => (s.rank = k + 1));
  return scored;
}

/** fromA as the share of the cell's points that favour A by attribution (attr[A] > attr[B]). */
function fromAttribution(cell: CellStats, input: BridgeInputs): { fromA: number | null; source: BridgeScore['fromASource'] } {
  const { attrA, attrB } = input;
  if (!attrA || !attrB) throw new Error("bridgeScores: fromA 'attribution' needs attrA and attrB");
  if (cell.count === 0) return { fromA: null, source: 'none' };
  let k = 0;
  for (const p of cell.points) if (attrA[p]! > attrB[p]!) k++;
  return { fromA: k / cell.count, source: 'attribution' };
}

/** fromA among the points whose image has a class; labels win over predictions when the cell has any. */
function fromClass(cell: CellStats, a: number): { fromA: number | null; source: BridgeScore['fromASource'] } {
  const viaLabels = share(cell.labels, a);
  if (viaLabels !== null) return { fromA: viaLabels, source: 'label' };
  const viaPred = cell.predicted ? share(cell.predicted, a) : null;
  if (viaPred !== null) return { fromA: viaPred, source: 'prediction' };
  return { fromA: null, source: 'none' };
}

function share(comp: Composition, cls: number): number | null {
  const known = 1 - comp.unlabelled;
  if (!(known > 1e-12)) return null;
  const f = comp.classes.find((c) => c.cls === cls)?.value ?? 0;
  return Math.min(1, f / known);
}

/**
 * Returns a function giving t for a set of layout rows: the projection of the rows' mean unit
 * activation onto the segment from the A-typical centroid to the B-typical centroid.
 */
function axisProjector(input: BridgeInputs): (rows: Int32Array) => number | null {
  const { acts, C, points, winner, a, b } = input;
  const unitMean = (rows: Iterable<number>): Float64Array | null => {
    const s = new Float64Array(C);
    let m = 0;
    for (const r of rows) {
      const off = points[r]! * C;
      let ss = 0;
      for (let c = 0; c < C; c++) ss += acts[off + c]! ** 2;
      if (!(ss > 0)) continue; // a zero row has no direction
      const inv = 1 / Math.sqrt(ss);
      for (let c = 0; c < C; c++) s[c] += acts[off + c]! * inv;
      m++;
    }
    if (m === 0) return null;
    for (let c = 0; c < C; c++) s[c]! /= m;
    return s;
  };
  const rowsOf = (cls: number) => {
    const out: number[] = [];
    for (let r = 0; r < points.length; r++) if (winner[points[r]!] === cls) out.push(r);
    return out;
  };
  const cA = unitMean(rowsOf(a));
  const cB = unitMean(rowsOf(b));
  if (!cA || !cB) return () => null;
  const dir = new Float64Array(C);
  let dd = 0;
  for (let c = 0; c < C; c++) {
    dir[c] = cB[c]! - cA[c]!;
    dd += dir[c]! ** 2;
  }
  if (!(dd > 1e-12)) return () => null;
  return (rows) => {
    const m = unitMean(rows);
    if (!m) return null;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += (m[c]! - cA[c]!) * dir[c]!;
    return dot / dd;
  };
}

// The thresholds below only choose words for the sentence; the score never uses them.
function pushPhrase(towardB: number, nameA: string, nameB: string): string {
  const v = towardB.toFixed(2);
  if (towardB >= 0.5) return `strong push toward ${nameB} (${v})`;
  if (towardB >= 0.2) return `moderate push toward ${nameB} (${v})`;
  if (towardB > 0) return `weak push toward ${nameB} (${v})`;
  if (towardB === 0) return `no push either way (${v})`;
  if (towardB > -0.2) return `weak push toward ${nameA} (${v})`;
  return `pushes toward ${nameA}, not ${nameB} (${v})`;
}

function fromPhrase(fromA: number | null, source: BridgeScore['fromASource'], nameA: string): string {
  if (fromA === null) return 'no labelled images';
  const pct = `${Math.round(fromA * 100)} %`;
  if (source === 'attribution') return `${pct} of points favour ${nameA} by attribution`;
  return source === 'label' ? `${pct} of points from ${nameA} images` : `${pct} of points from images predicted ${nameA}`;
}

function betweenPhrase(between: number | null, t: number | null, nameA: string, nameB: string): string {
  if (between === null || t === null) return 'no position on the A–B axis';
  if (between >= 0.5) return `between the two clusters (${between.toFixed(2)})`;
  return `close to the ${t < 0.5 ? nameA : nameB} cluster (${between.toFixed(2)})`;
}
