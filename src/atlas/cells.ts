/**
 * What a cell stands for: its mean activation (the vector the icon is rendered from, article
 * §3), how strongly it attributes to the classes of interest, and where its points came from.
 */
import type { Cell } from './grid.js';

/** Reads full attribution rows ([m × K], row-major) for global point indices, e.g. from disk. */
export type AttrRowsFn = (pointIndices: Int32Array) => Float32Array | Promise<Float32Array>;

export interface CellInputs {
  /** [N × C] activations, row-major, indexed by global point index. */
  acts: Float32Array;
  C: number;
  /** Classes of interest (e.g. [a, b] for a pair atlas, [cls] for a class atlas, [] for a layer). */
  classes: number[];
  /** Attribution to each class of interest, length N each, same order as `classes`. */
  attr: Float32Array[];
  /** True class column per point (−1 none). */
  label: Int32Array;
  /** Image index per point. */
  image: Int32Array;
  /** Predicted (top-1) class column of the point's image, when known (−1 none). */
  pred?: Int32Array;
}

export interface ClassValue {
  cls: number;
  value: number;
}

export interface ClassCount {
  cls: number;
  count: number;
}

/** Where a cell's points come from, by the class of their image (true label or prediction). */
export interface Composition {
  /** Fraction of the cell's points from images of each class of interest (same order as `classes`). */
  classes: ClassValue[];
  /** Fraction from images of any other class. */
  other: number;
  /** Fraction whose image has no class (−1). */
  unlabelled: number;
  /** The most frequent image classes (−1 = none), most frequent first, at most k. */
  top: ClassCount[];
}

export interface CellStats {
  i: number;
  j: number;
  x: number;
  y: number;
  count: number;
  /** Layout rows of the cell's points (ascending). */
  rows: Int32Array;
  /** Global point indices of the cell's points (ascending). */
  points: Int32Array;
  /** Mean activation, length C. */
  meanAct: Float32Array;
  /** Mean attribution to each class of interest. */
  attr: ClassValue[];
  /** Distinct source images with point counts, most frequent first (ties: lower image first). */
  images: { image: number; count: number }[];
  labels: Composition;
  /** Present when the caller supplied predictions. */
  predicted?: Composition;
  /** The k classes with the highest mean attribution over the cell (empty without attrRows). */
  topClasses: ClassValue[];
}

export interface CellStatsOptions {
  /** How many top classes (and top labels) to report; default 5. */
  k?: number;
  attrRows?: AttrRowsFn;
}

/**
 * Statistics for one cell. `rowToPoint` maps layout rows to global point indices (the atlas's
 * filtered points). Means are accumulated in float64 so they are exact to float32 precision.
 */
export async function cellStats(cell: Cell, rowToPoint: Int32Array, data: CellInputs, opts: CellStatsOptions = {}): Promise<CellStats> {
  const k = opts.k ?? 5;
  const { acts, C } = data;
  const m = cell.points.length;
  const points = new Int32Array(m);
  for (let r = 0; r < m; r++) points[r] = rowToPoint[cell.points[r]!]!;

  const sum = new Float64Array(C);
  for (const p of points) {
    const off = p * C;
    for (let c = 0; c < C; c++) sum[c] += acts[off + c]!;
  }
  const meanAct = new Float32Array(C);
  for (let c = 0; c < C; c++) meanAct[c] = sum[c]! / m;

  const attr = data.classes.map((cls, q) => {
    let s = 0;
    for (const p of points) s += data.attr[q]![p]!;
    return { cls, value: s / m };
  });

  const perImage = new Map<number, number>();
  for (const p of points) perImage.set(data.image[p]!, (perImage.get(data.image[p]!) ?? 0) + 1);
  const images = [...perImage].map(([image, count]) => ({ image, count })).sort((u, v) => v.count - u.count || u.image - v.image);

  let topClasses: ClassValue[] = [];
  if (opts.attrRows && m > 0) {
    const rows = await opts.attrRows(points);
    topClasses = topMeans(rows, m, k);
  }

  const stats: CellStats = {
    i: cell.i,
    j: cell.j,
    x: cell.x,
    y: cell.y,
    count: m,
    rows: cell.points,
    points,
    meanAct,
    attr,
    images,
    labels: composition(points, data.label, data.classes, k),
    topClasses,
  };
  if (data.pred) stats.predicted = composition(points, data.pred, data.classes, k);
  return stats;
}

/** Stats for every cell, in the cells' order; attribution rows are read one cell at a time to bound memory. */
export async function allCellStats(cells: Cell[], rowToPoint: Int32Array, data: CellInputs, opts: CellStatsOptions = {}): Promise<CellStats[]> {
  const out: CellStats[] = [];
  for (const cell of cells) out.push(await cellStats(cell, rowToPoint, data, opts));
  return out;
}

function composition(points: Int32Array, cls: Int32Array, classes: number[], k: number): Composition {
  const m = points.length;
  const counts = new Map<number, number>();
  for (const p of points) counts.set(cls[p]!, (counts.get(cls[p]!) ?? 0) + 1);
  const frac = (c: number) => (m > 0 ? (counts.get(c) ?? 0) / m : 0);
  const ofInterest = classes.map((c) => ({ cls: c, value: frac(c) }));
  let otherCount = 0; // counted, not 1 − the rest, so fractions are exact ratios
  for (const [c, count] of counts) if (c !== -1 && !classes.includes(c)) otherCount += count;
  const top = [...counts]
    .map(([c, count]) => ({ cls: c, count }))
    .sort((u, v) => v.count - u.count || u.cls - v.cls)
    .slice(0, k);
  return { classes: ofInterest, other: m > 0 ? otherCount / m : 0, unlabelled: frac(-1), top };
}

function topMeans(rows: Float32Array, m: number, k: number): ClassValue[] {
  const K = rows.length / m;
  if (!Number.isInteger(K) || K === 0) throw new Error(`attrRows returned ${rows.length} values for ${m} points; expected m × K`);
  const sum = new Float64Array(K);
  for (let r = 0; r < m; r++) for (let c = 0; c < K; c++) sum[c] += rows[r * K + c]!;
  return Array.from(sum, (s, cls) => ({ cls, value: s / m }))
    .sort((u, v) => v.value - u.value || u.cls - v.cls)
    .slice(0, k);
}
