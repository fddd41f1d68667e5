/**
 * The atlas recipes, lucid-style: filter → layout → normalise → bin → cell stats (→ bridges).
 * Pure functions over typed arrays; the caller owns storage and I/O (only `attrRows` reaches out).
 */
import { PatchAtlasError } from '../errors.js';
import { bridgeScores, type BridgeScore } from './bridge.js';
import { allCellStats, type AttrRowsFn, type CellStats } from './cells.js';
import { classFilter, pairFilter } from './filter.js';
import { binGrid } from './grid.js';
import { CLASS_UMAP, LAYER_UMAP, normaliseLayout, pairAxis, umapLayout, type Metric, type UmapOptions } from './layout.js';
import { sampleIndices } from '../util/random.js';

/** Article figures (§2–3); minDensity 5 is lucid's binning threshold, inside the article's 4–10. */
export const ATLAS_DEFAULTS = {
  pair: { topN: 2000, grid: 10, minDensity: 5 },
  class: { topN: 3000, grid: 10, minDensity: 5 },
  layer: { grid: 20, minDensity: 5 },
  margin: 0.1,
  k: 5,
  seed: 0,
} as const;

export type UmapSettings = Partial<Omit<UmapOptions, 'nComponents'>>;

interface CommonInput {
  /** [N × C] activations, row-major. */
  acts: Float32Array;
  C: number;
  /** True class column per point (−1 none). */
  label: Int32Array;
  /** Image index per point. */
  image: Int32Array;
  /** Predicted class column of each point's image (−1 none), if known. */
  pred?: Int32Array;
  grid?: number;
  minDensity?: number;
  umap?: UmapSettings;
  /** Layout margin (see normaliseLayout). */
  margin?: number;
  /** Top classes / labels per cell. */
  k?: number;
  /** Full attribution rows for topClasses; without it topClasses are empty. */
  attrRows?: AttrRowsFn;
}

export interface PairAtlasInput extends CommonInput {
  attrA: Float32Array;
  attrB: Float32Array;
  winner: Int32Array;
  a: number;
  b: number;
  /** Per class (article: 2000). */
  topN?: number;
  /**
   * The points already chosen by `pairFilter` with `topN` (a caller that filtered on streamed
   * columns to read only these points' activations); absent: filtered here.
   */
  points?: Int32Array;
  /** Where the bridge score's "from A" comes from (see bridgeScores; default the images' labels). */
  fromA?: 'images' | 'attribution';
  /** 'pair-axis': x = pairAxis, y = 1-D cosine UMAP (the article's comparison); 'umap': 2-D UMAP. */
  layout?: 'pair-axis' | 'umap';
  names?: { a: string; b: string };
}

export interface ResolvedParams {
  grid: number;
  minDensity: number;
  margin: number;
  k: number;
  umap: { nNeighbors: number; minDist: number; metric: Metric; seed: number; nEpochs: number | null };
}

export interface PairAtlasResult {
  kind: 'pair';
  params: ResolvedParams & { a: number; b: number; topN: number; layout: 'pair-axis' | 'umap' };
  /** Global point indices, ascending; layout row r is point points[r]. */
  points: Int32Array;
  /** Normalised layout [n × 2] in [0, 1]. */
  layoutXY: Float32Array;
  /** Pair-axis x per layout row, in [−1, 1]. */
  axis: Float32Array;
  cells: CellStats[];
  /** Every cell, ranked by bridge score, best first. */
  bridges: BridgeScore[];
  /** One-line notes about adjusted parameters. */
  notes: string[];
}

export async function pairAtlas(input: PairAtlasInput): Promise<PairAtlasResult> {
  const { acts, C, attrA, attrB, winner, a, b } = input;
  const N = checkShapes(input, { attrA, attrB, winner });
  if (a === b) throw new PatchAtlasError('BAD_FLAG', `a comparison atlas needs two different classes, got ${a} twice`);
  const topN = input.topN ?? ATLAS_DEFAULTS.pair.topN;
  const layout = input.layout ?? 'pair-axis';
  const p = resolve(input, ATLAS_DEFAULTS.pair, CLASS_UMAP);
  const notes: string[] = [];
  const pairName = input.names ? `${input.names.a} vs ${input.names.b}` : `classes ${a} vs ${b}`;

  const points = input.points ?? pairFilter({ attrA, attrB, winner, a, b, topN });
  tooFew(points.length, `${pairName}: only ${points.length} of ${N} points`);
  const sub = gatherRows(acts, C, points);
  const axis = pairAxis(attrA, attrB, points);
  const umap = umapOpts(p, input.umap, notes);

  let layoutXY: Float32Array;
  if (layout === 'pair-axis') {
    const y = normaliseLayout(await umapLayout(sub, C, points.length, { ...umap, nComponents: 1 }), 1, { margin: p.margin });
    layoutXY = new Float32Array(points.length * 2);
    // x keeps its meaning (0.5 = equal attribution) rather than being re-stretched by percentiles.
    for (let r = 0; r < points.length; r++) {
      layoutXY[2 * r] = (axis[r]! + 1) / 2;
      layoutXY[2 * r + 1] = y[r]!;
    }
  } else {
    layoutXY = normaliseLayout(await umapLayout(sub, C, points.length, { ...umap, nComponents: 2 }), 2, { margin: p.margin });
  }

  const cells = binGrid(layoutXY, p.grid, p.minDensity);
  const stats = await allCellStats(cells, points, { acts, C, classes: [a, b], attr: [attrA, attrB], label: input.label, image: input.image, ...(input.pred ? { pred: input.pred } : {}) }, { k: p.k, ...(input.attrRows ? { attrRows: input.attrRows } : {}) });
  const bridges = bridgeScores({ cells: stats, axis, acts, C, points, winner, a, b, ...(input.names ? { names: input.names } : {}), ...(input.fromA === 'attribution' ? { fromA: 'attribution' as const, attrA, attrB } : {}) });
  return { kind: 'pair', params: { ...p, a, b, topN, layout }, points, layoutXY, axis, cells: stats, bridges, notes };
}

export interface ClassAtlasInput extends CommonInput {
  /** Attribution of every point to `cls`. */
  attr: Float32Array;
  winner: Int32Array;
  cls: number;
  /** Article: 3000. */
  topN?: number;
  /** The points already chosen by `classFilter` with `topN`; absent: filtered here. */
  points?: Int32Array;
  name?: string;
}

export interface ClassAtlasResult {
  kind: 'class';
  params: ResolvedParams & { cls: number; topN: number };
  points: Int32Array;
  layoutXY: Float32Array;
  cells: CellStats[];
  notes: string[];
}

export async function classAtlas(input: ClassAtlasInput): Promise<ClassAtlasResult> {
  const { acts, C, attr, winner, cls } = input;
  const N = checkShapes(input, { attr, winner });
  const topN = input.topN ?? ATLAS_DEFAULTS.class.topN;
  const p = resolve(input, ATLAS_DEFAULTS.class, CLASS_UMAP);
  const notes: string[] = [];
  const points = input.points ?? classFilter({ attr, winner, cls, topN });
  tooFew(points.length, `${input.name ?? `class ${cls}`}: only ${points.length} of ${N} points`);
  const xy = await umapLayout(gatherRows(acts, C, points), C, points.length, { ...umapOpts(p, input.umap, notes), nComponents: 2 });
  const layoutXY = normaliseLayout(xy, 2, { margin: p.margin });
  const cells = binGrid(layoutXY, p.grid, p.minDensity);
  const stats = await allCellStats(cells, points, { acts, C, classes: [cls], attr: [attr], label: input.label, image: input.image, ...(input.pred ? { pred: input.pred } : {}) }, { k: p.k, ...(input.attrRows ? { attrRows: input.attrRows } : {}) });
  return { kind: 'class', params: { ...p, cls, topN }, points, layoutXY, cells: stats, notes };
}

export interface LayerAtlasInput extends CommonInput {
  /** Lay out at most this many points, drawn uniformly with the UMAP seed (UMAP is O(n) in memory but slow). */
  subsample?: number;
}

export interface LayerAtlasResult {
  kind: 'layer';
  params: ResolvedParams & { subsample: number | null };
  points: Int32Array;
  layoutXY: Float32Array;
  cells: CellStats[];
  notes: string[];
}

export async function layerAtlas(input: LayerAtlasInput): Promise<LayerAtlasResult> {
  const { acts, C } = input;
  const N = checkShapes(input, {});
  const p = resolve(input, ATLAS_DEFAULTS.layer, LAYER_UMAP);
  const notes: string[] = [];
  const points = sampleIndices(N, input.subsample ?? N, p.umap.seed); // all points when subsample ≥ N
  tooFew(points.length, `the layer has only ${points.length} points`);
  const xy = await umapLayout(gatherRows(acts, C, points), C, points.length, { ...umapOpts(p, input.umap, notes), nComponents: 2 });
  const layoutXY = normaliseLayout(xy, 2, { margin: p.margin });
  const cells = binGrid(layoutXY, p.grid, p.minDensity);
  const stats = await allCellStats(cells, points, { acts, C, classes: [], attr: [], label: input.label, image: input.image, ...(input.pred ? { pred: input.pred } : {}) }, { k: p.k, ...(input.attrRows ? { attrRows: input.attrRows } : {}) });
  return { kind: 'layer', params: { ...p, subsample: input.subsample ?? null }, points, layoutXY, cells: stats, notes };
}

/**
 * JSON-able copy: typed arrays become plain arrays (float32 values written with the fewest digits
 * that read back to the same float32, which keeps files about half the size), non-finite → null.
 */
export function toJSON(value: unknown): unknown {
  if (value instanceof Float32Array) return Array.from(value, shortestFloat32);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>, finiteOrNull);
  if (Array.isArray(value)) return value.map(toJSON);
  if (typeof value === 'number') return finiteOrNull(value);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined && typeof v !== 'function') out[k] = toJSON(v);
    return out;
  }
  return value;
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function shortestFloat32(v: number): number | null {
  if (!Number.isFinite(v)) return null;
  for (let digits = 6; digits < 9; digits++) {
    const s = Number(v.toPrecision(digits));
    if (Math.fround(s) === v) return s;
  }
  return Number(v.toPrecision(9));
}

// ---- helpers ---------------------------------------------------------------------------------

function checkShapes(input: CommonInput, perPoint: Record<string, ArrayLike<number>>): number {
  const { acts, C } = input;
  if (!(Number.isInteger(C) && C > 0) || acts.length % C !== 0) throw new Error(`atlas: acts has ${acts.length} values, not a multiple of C = ${C}`);
  const N = acts.length / C;
  const all: Record<string, ArrayLike<number> | undefined> = { label: input.label, image: input.image, pred: input.pred, ...perPoint };
  for (const [name, arr] of Object.entries(all)) {
    if (arr && arr.length !== N) throw new Error(`atlas: ${name} has ${arr.length} entries for ${N} points`);
  }
  return N;
}

function tooFew(n: number, what: string): void {
  if (n < 3) {
    throw new PatchAtlasError('EMPTY_ATLAS', `${what} pass the filter (need at least 3 to lay out)`, 'collect activations from more images, or raise --top-n');
  }
}

function resolve(input: CommonInput, d: { grid: number; minDensity: number }, u: { nNeighbors: number; minDist: number; metric: Metric }): ResolvedParams {
  return {
    grid: input.grid ?? d.grid,
    minDensity: input.minDensity ?? d.minDensity,
    margin: input.margin ?? ATLAS_DEFAULTS.margin,
    k: input.k ?? ATLAS_DEFAULTS.k,
    umap: {
      nNeighbors: input.umap?.nNeighbors ?? u.nNeighbors,
      minDist: input.umap?.minDist ?? u.minDist,
      metric: input.umap?.metric ?? u.metric,
      seed: input.umap?.seed ?? ATLAS_DEFAULTS.seed,
      nEpochs: input.umap?.nEpochs ?? null,
    },
  };
}

function umapOpts(p: ResolvedParams, given: UmapSettings | undefined, notes: string[]): Omit<UmapOptions, 'nComponents'> {
  return {
    nNeighbors: p.umap.nNeighbors,
    minDist: p.umap.minDist,
    metric: p.umap.metric,
    seed: p.umap.seed,
    ...(p.umap.nEpochs ? { nEpochs: p.umap.nEpochs } : {}),
    ...(given?.onEpoch ? { onEpoch: given.onEpoch } : {}),
    ...(given?.implementation ? { implementation: given.implementation } : {}),
    ...(given?.onPhase ? { onPhase: given.onPhase } : {}),
    ...(given?.onKnnStep ? { onKnnStep: given.onKnnStep } : {}),
    onNote: (note) => {
      notes.push(note);
      given?.onNote?.(note);
    },
  };
}

/** Copies the rows `idx` of [N × C] into a dense [m × C] block for UMAP. */
function gatherRows(acts: Float32Array, C: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * C);
  for (let r = 0; r < idx.length; r++) out.set(acts.subarray(idx[r]! * C, (idx[r]! + 1) * C), r * C);
  return out;
}
