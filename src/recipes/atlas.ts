import { join } from 'node:path';
import { ATLAS_DEFAULTS, classAtlas, layerAtlas, pairAtlas, toJSON, type UmapSettings } from '../atlas/atlases.js';
import { classFilter, pairFilter } from '../atlas/filter.js';
import { PatchAtlasError } from '../errors.js';
import { ATLAS_FILE, ATLAS_FORMAT, writeAtlas, type AtlasFile } from '../formats/atlas.js';
import { producer } from '../formats/producer.js';
import { META, RunReader, type RunManifest } from '../formats/run/index.js';
import { loadDescriptor, loadLabels } from '../model/descriptor.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { sampleIndices } from '../util/random.js';
import { anyWholeNumber, atLeast, checkParams, wholeNumber, type ParamFail, type ParamSpec } from './params.js';

/**
 * `atlas`: reads a collect run, filters and lays out its points with the atlas building blocks
 * (atlas/atlases.ts, the article's recipe), and writes atlas.json. The filter runs on streamed
 * columns first, so only the chosen points' activations are read: runs larger than memory work.
 */

export interface AtlasRequest {
  run: string;
  /** One class (class atlas), two (pair atlas: A then B), or none (whole layer). */
  classes: string[];
  grid?: number;
  minDensity?: number;
  /** Points kept per class by attribution (default ATLAS_DEFAULTS: 2000 for a pair, 3000 for a class). */
  topN?: number;
  layout?: 'pair-axis' | 'umap';
  umap?: UmapSettings;
  /** Whole-layer atlas: lay out at most this many points (default 20000). */
  subsample?: number;
  out?: string;
  onNote?: (note: string) => void;
}

/** Whole-layer atlases lay out at most this many points by default (UMAP is linear in memory, but slow). */
export const LAYER_SUBSAMPLE = 20_000;

/**
 * The numbers a user sets, checked once (undefined: the kind's default from ATLAS_DEFAULTS / the
 * UMAP defaults, which differ between pair, class and layer atlases).
 */
export interface AtlasParams {
  grid: number | undefined;
  minDensity: number | undefined;
  topN: number | undefined;
  neighbors: number | undefined;
  minDist: number | undefined;
  subsample: number | undefined;
  seed: number;
}

/** The largest atlas grid side. */
export const MAX_GRID = 1000;

export const ATLAS_PARAMS: ParamSpec<AtlasParams> = {
  // G×G cells, each with its statistics: beyond 1000 (a million cells) the grid outgrows memory and any real run.
  grid: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1, MAX_GRID)(v)), hint: 'a G×G grid; cells with fewer than --min-density points are dropped, so a grid much finer than the points is empty' },
  minDensity: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1)(v)) },
  topN: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1)(v)) },
  neighbors: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1)(v)) },
  minDist: { default: undefined, check: (v) => (v === undefined ? undefined : atLeast(0, 1)(v)) },
  subsample: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1)(v)) },
  seed: { default: ATLAS_DEFAULTS.seed, check: anyWholeNumber },
};

/** An atlas request from checked parameters (as the `atlas` command and `run` give them). */
export function atlasRequest(run: string, classes: string[], given: Partial<AtlasParams>, extra: Pick<AtlasRequest, 'layout' | 'out' | 'onNote'> = {}, fail?: ParamFail): AtlasRequest {
  const p = checkParams(ATLAS_PARAMS, given, fail);
  const umap = { seed: p.seed, ...(p.neighbors !== undefined ? { nNeighbors: p.neighbors } : {}), ...(p.minDist !== undefined ? { minDist: p.minDist } : {}) };
  return { run, classes, umap, ...extra, ...defined({ grid: p.grid, minDensity: p.minDensity, topN: p.topN, subsample: p.subsample }) };
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Default output folder: one per atlas inside the run, so icons and patches can sit beside atlas.json. */
export function defaultAtlasDir(run: string, classes: ClassRef[]): string {
  const name = classes.length === 0 ? 'layer' : classes.map((c) => c.name).join('-vs-');
  return join(run, `atlas-${name.replace(/[^\w.-]+/g, '_')}`);
}

/**
 * Reads a collect run, filters and lays out its points with the atlas recipes, and writes atlas.json.
 * Only the filtered points' activations are read, so runs larger than memory work.
 */
export async function buildAtlas(req: AtlasRequest): Promise<{ path: string; atlas: AtlasFile }> {
  const reader = await RunReader.open(req.run);
  try {
    const m = reader.manifest;
    const labels = runLabels(m);
    const refs = req.classes.map((q, i) => labels.resolve(q, req.classes.length === 2 ? `class ${i === 0 ? 'A' : 'B'}` : 'class'));
    const col = (c: ClassRef) => c.index - labels.offset;
    const [winner, label, image, pred] = await reader.columns('meta', [META.winClass, META.trueClass, META.image, META.predClass]);
    const attrCols = refs.length ? await reader.columns('attr', refs.map(col)) : [];
    const pointsTotal = reader.points;
    // Pick the points first (streamed columns, the atlas's own filter), then read only their activations.
    const topN = req.topN ?? (refs.length === 2 ? ATLAS_DEFAULTS.pair.topN : ATLAS_DEFAULTS.class.topN);
    let idx: Int32Array;
    if (refs.length === 2) idx = pairFilter({ attrA: attrCols[0]!, attrB: attrCols[1]!, winner: winner!, a: col(refs[0]!), b: col(refs[1]!), topN });
    else if (refs.length === 1) idx = classFilter({ attr: attrCols[0]!, winner: winner!, cls: col(refs[0]!), topN });
    else idx = sampleIndices(pointsTotal, Math.min(pointsTotal, req.subsample ?? LAYER_SUBSAMPLE), req.umap?.seed ?? ATLAS_DEFAULTS.seed);
    if (idx.length < 3) {
      throw new PatchAtlasError('EMPTY_ATLAS', `${refs.map((r) => LabelSet.display(r)).join(' vs ') || 'the layer'}: only ${idx.length} of ${pointsTotal} points in ${req.run} attribute to ${refs.length > 1 ? 'these classes' : 'this class'}`, 'collect more images of these classes, or more positions per image (--positions)');
    }
    const acts = await reader.rows('acts', idx);
    const pick = <T extends Int32Array | Float32Array>(a: T): T => {
      const out = new (a.constructor as new (n: number) => T)(idx.length);
      idx.forEach((p, r) => (out[r] = a[p]!));
      return out;
    };
    const common = {
      acts,
      C: m.channels,
      label: pick(label!),
      image: pick(image!),
      pred: pick(pred!),
      ...(req.grid !== undefined ? { grid: req.grid } : {}),
      ...(req.minDensity !== undefined ? { minDensity: req.minDensity } : {}),
      ...(req.umap ? { umap: req.umap } : {}),
      attrRows: (rows: Int32Array) => reader.rows('attr', Int32Array.from(rows, (r) => idx[r]!)),
    };
    const names = refs.map((r) => LabelSet.display(r));
    // The arrays above hold the chosen points only: every one of them is in the atlas.
    const chosen = Int32Array.from(idx, (_, r) => r);
    const result =
      refs.length === 2
        ? await pairAtlas({ ...common, attrA: pick(attrCols[0]!), attrB: pick(attrCols[1]!), winner: pick(winner!), a: col(refs[0]!), b: col(refs[1]!), topN, points: chosen, layout: req.layout ?? 'pair-axis', names: { a: names[0]!, b: names[1]! } })
        : refs.length === 1
          ? await classAtlas({ ...common, attr: pick(attrCols[0]!), winner: pick(winner!), cls: col(refs[0]!), topN, points: chosen, name: names[0]! })
          : await layerAtlas(common);
    for (const n of result.notes) req.onNote?.(n);
    const wnidOf = (column: number) => m.classes[column] ?? '?';
    const cls = (column: number) => labels.atOutput(column + labels.offset);
    const atlas: AtlasFile = {
      format: ATLAS_FORMAT,
      producer: producer(m.model, m.producer?.source),
      kind: result.kind,
      run: req.run,
      model: m.model,
      layer: m.layer,
      classes: refs.map((r) => ({ wnid: r.wnid, name: LabelSet.display(r), column: col(r) })),
      params: toJSON({ ...result.params, topN, subsample: refs.length ? null : idx.length }) as AtlasFile['params'],
      notes: result.notes,
      points: idx.length,
      layout: { xy: toJSON(result.layoutXY) as number[], point: Array.from(result.points, (r) => idx[r]!) },
      cells: result.cells.map((c) => ({
        i: c.i,
        j: c.j,
        x: c.x,
        y: c.y,
        count: c.count,
        meanAct: toJSON(c.meanAct) as number[],
        attr: c.attr.map((v) => ({ wnid: wnidOf(v.cls), value: v.value })),
        topClasses: c.topClasses.map((v) => ({ wnid: wnidOf(v.cls), name: cls(v.cls) ? LabelSet.display(cls(v.cls)!) : '?', value: v.value })),
        images: c.images.map((im) => ({ path: reader.images[im.image]!.path, label: reader.images[im.image]!.label, count: im.count })),
        labels: toJSON(c.labels) as AtlasFile['cells'][number]['labels'],
        ...(c.predicted ? { predicted: toJSON(c.predicted) as AtlasFile['cells'][number]['labels'] } : {}),
      })),
      bridges: 'bridges' in result ? (toJSON(result.bridges) as AtlasFile['bridges']) : [],
    };
    const path = join(req.out ?? defaultAtlasDir(req.run, refs), ATLAS_FILE);
    await writeAtlas(path, atlas);
    return { path, atlas };
  } finally {
    await reader.close();
  }
}

/**
 * The run's label set: its model's, when the descriptor is known here and lists the same classes; else
 * the class names the run recorded (runs collected with a descriptor file); else WordNet ids alone.
 */
function runLabels(m: RunManifest): LabelSet {
  const { classes } = m;
  let labels: LabelSet | undefined;
  try {
    labels = loadLabels(loadDescriptor(m.producer?.source?.path ?? m.model));
  } catch {
    labels = undefined;
  }
  if (labels && labels.classes.length === classes.length && labels.classes.every((c, i) => c.wnid === classes[i])) return labels;
  const names = m.classNames?.length === classes.length ? m.classNames : undefined;
  return new LabelSet({ name: 'run', classes: classes.map((w, i) => [w, labels?.tryResolve(w)?.name ?? names?.[i] ?? w, labels?.tryResolve(w)?.long ?? names?.[i] ?? w]) });
}
