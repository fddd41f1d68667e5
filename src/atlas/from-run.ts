import { join } from 'node:path';
import { META, RunReader } from '../activations/store/index.js';
import { PatchAtlasError } from '../errors.js';
import { loadDescriptor, loadLabels } from '../model/descriptor.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { packageVersion } from '../util/paths.js';
import type { CellStats } from './cells.js';
import { classFilter, pairFilter } from './filter.js';
import { sampleIndices } from '../util/random.js';
import { classAtlas, layerAtlas, pairAtlas, toJSON, type UmapSettings } from './recipe.js';

export const ATLAS_FORMAT = 'patch-atlas-atlas/1';

export interface AtlasRequest {
  run: string;
  /** One class (class atlas), two (pair atlas: A then B), or none (whole layer). */
  classes: string[];
  grid?: number;
  minDensity?: number;
  topN?: number;
  layout?: 'pair-axis' | 'umap';
  umap?: UmapSettings;
  /** Whole-layer atlas: lay out at most this many points. */
  subsample?: number;
  out?: string;
  onNote?: (note: string) => void;
}

interface ClassInfo {
  wnid: string;
  name: string;
  column: number;
}

/** What `atlas` writes: everything later stages (icons, patches, report) need, without the run. */
export interface AtlasFile {
  format: typeof ATLAS_FORMAT;
  version: string;
  kind: 'pair' | 'class' | 'layer';
  run: string;
  model: string;
  layer: string;
  classes: ClassInfo[];
  params: unknown;
  notes: string[];
  points: number;
  /** Normalised layout, [x, y] per point, and each point's run index. */
  layout: { xy: number[]; point: number[] };
  cells: Array<Omit<CellStats, 'rows' | 'points' | 'images' | 'topClasses' | 'attr' | 'meanAct'> & {
    meanAct: number[];
    attr: Array<{ wnid: string; value: number }>;
    topClasses: Array<{ wnid: string; name: string; value: number }>;
    images: Array<{ path: string; label: string | null; count: number }>;
  }>;
  bridges: unknown[];
}

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
    const labels = runLabels(m.model, m.classes);
    const refs = req.classes.map((q, i) => labels.resolve(q, req.classes.length === 2 ? `class ${i === 0 ? 'A' : 'B'}` : 'class'));
    const col = (c: ClassRef) => c.index - labels.offset;
    const [winner, label, image, pred] = await reader.columns('meta', [META.winClass, META.trueClass, META.image, META.predClass]);
    const attrCols = refs.length ? await reader.columns('attr', refs.map(col)) : [];
    const pointsTotal = reader.points;
    // Pick the points first (streamed columns), then read only their activations.
    let idx: Int32Array;
    if (refs.length === 2) idx = pairFilter({ attrA: attrCols[0]!, attrB: attrCols[1]!, winner: winner!, a: col(refs[0]!), b: col(refs[1]!), topN: req.topN ?? 2000 });
    else if (refs.length === 1) idx = classFilter({ attr: attrCols[0]!, winner: winner!, cls: col(refs[0]!), topN: req.topN ?? 3000 });
    else idx = sampleIndices(pointsTotal, Math.min(pointsTotal, req.subsample ?? 20000), req.umap?.seed ?? 0);
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
    const result =
      refs.length === 2
        ? await pairAtlas({ ...common, attrA: pick(attrCols[0]!), attrB: pick(attrCols[1]!), winner: pick(winner!), a: col(refs[0]!), b: col(refs[1]!), topN: Number.MAX_SAFE_INTEGER, layout: req.layout ?? 'pair-axis', names: { a: names[0]!, b: names[1]! } })
        : refs.length === 1
          ? await classAtlas({ ...common, attr: pick(attrCols[0]!), winner: pick(winner!), cls: col(refs[0]!), topN: Number.MAX_SAFE_INTEGER, name: names[0]! })
          : await layerAtlas(common);
    for (const n of result.notes) req.onNote?.(n);
    const wnidOf = (column: number) => m.classes[column] ?? '?';
    const cls = (column: number) => labels.atOutput(column + labels.offset);
    const atlas: AtlasFile = {
      format: ATLAS_FORMAT,
      version: packageVersion(),
      kind: result.kind,
      run: req.run,
      model: m.model,
      layer: m.layer,
      classes: refs.map((r) => ({ wnid: r.wnid, name: LabelSet.display(r), column: col(r) })),
      params: toJSON({ ...result.params, topN: req.topN ?? (refs.length === 2 ? 2000 : 3000), subsample: refs.length ? null : idx.length }),
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
        labels: toJSON(c.labels) as CellStats['labels'],
        ...(c.predicted ? { predicted: toJSON(c.predicted) as CellStats['labels'] } : {}),
      })),
      bridges: 'bridges' in result ? (toJSON(result.bridges) as unknown[]) : [],
    };
    const path = join(req.out ?? defaultAtlasDir(req.run, refs), 'atlas.json');
    await writeJsonAtomic(path, atlas);
    return { path, atlas };
  } finally {
    await reader.close();
  }
}

/** The run's label set, checked against the class list it was collected with. */
function runLabels(model: string, classes: string[]): LabelSet {
  let labels: LabelSet;
  try {
    labels = loadLabels(loadDescriptor(model));
  } catch {
    // A run from a descriptor that is not installed here still names its classes by WordNet id.
    labels = new LabelSet({ name: 'run', classes: classes.map((w) => [w, w, w]) });
  }
  if (labels.classes.length !== classes.length || labels.classes.some((c, i) => c.wnid !== classes[i])) {
    labels = new LabelSet({ name: 'run', classes: classes.map((w) => [w, labels.tryResolve(w)?.name ?? w, labels.tryResolve(w)?.long ?? w]) });
  }
  return labels;
}

