import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RunReader } from '../activations/store/index.js';
import type { AtlasFile } from '../atlas/from-run.js';
import { PatchAtlasError } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { atlasPicture, pngFromRgb } from './icons.js';
import { directionCossimBatch } from './objectives.js';
import { image } from './param/index.js';
import { render, type RenderResult } from './render.js';
import { standardTransforms } from './transforms.js';
import { whiten, whiteningFromMoment, secondMoment, type Whitening } from './whiten.js';

export type CellSelection = 'all' | 'bridges' | number;

export interface IconOptions {
  atlas: string;
  cells: CellSelection;
  size: number;
  steps: number;
  tries: number;
  batch: number;
  /** Exponent of the cosine term in dot(h, v')·max(0.1, cos)^p (article: 2–4). */
  cossimPower: number;
  seed: number;
  /** Re-render cells that already have an icon. */
  force?: boolean;
  onBatch?: (done: number, total: number) => void;
}

export interface IconResult {
  atlas: string;
  picture: string;
  rendered: number;
  reused: number;
}

type AtlasCell = AtlasFile['cells'][number] & { icon?: string; iconObjective?: number };

/** How many bridge cells `--cells bridges` renders: the top of the ranking, where the interesting cells are. */
export const BRIDGE_ICONS = 10;

/**
 * `icons`: a feature-visualisation icon per atlas cell (the article's recipe: the cell's mean activation
 * whitened by the run's uncentred second moment, objective dot·cos^p at the layer's centre, Fourier +
 * decorrelated parameterisation, standard transforms, Adam), written as icons/cell-I-J.png beside
 * atlas.json, recorded in atlas.json, and composed into atlas.png. Cells that already have an icon are
 * kept, so an interrupted run resumes.
 */
export async function renderAtlasIcons(c: Classifier, opts: IconOptions): Promise<IconResult> {
  const atlas = readAtlas(opts.atlas);
  if (atlas.model !== c.descriptor.name) {
    throw new PatchAtlasError('BAD_FLAG', `${opts.atlas} was built with model "${atlas.model}", not "${c.descriptor.name}"`, `pass --model ${atlas.model}`);
  }
  const dir = dirname(opts.atlas);
  const cells = atlas.cells as AtlasCell[];
  const chosen = selectCells(atlas, opts.cells);
  const todo = chosen.filter((k) => opts.force || !cells[k]!.icon || !existsSync(join(dir, cells[k]!.icon!)));
  if (todo.length) {
    const w = await runWhitening(atlas.run);
    let done = 0;
    for (let s = 0; s < todo.length; s += opts.batch) {
      const group = todo.slice(s, s + opts.batch);
      const r = await renderCellIcons(c, atlas.layer, w, group.map((k) => cells[k]!.meanAct), {
        size: opts.size,
        steps: opts.steps,
        tries: opts.tries,
        cossimPower: opts.cossimPower,
        seed: opts.seed + s,
      });
      for (let g = 0; g < group.length; g++) {
        const cell = cells[group[g]!]!;
        const file = join('icons', `cell-${cell.i}-${cell.j}.png`);
        await writeFileAtomic(join(dir, file), await pngFromRgb(r.images[g]!, opts.size, opts.size));
        cell.icon = file;
        cell.iconObjective = r.values[g]!;
      }
      // Record progress after every batch, so an interrupted run keeps what it rendered.
      await writeJsonAtomic(opts.atlas, { ...atlas, iconSettings: { size: opts.size, steps: opts.steps, tries: opts.tries, cossimPower: opts.cossimPower, seed: opts.seed } });
      done += group.length;
      opts.onBatch?.(done, todo.length);
    }
  }
  const picture = join(dir, 'atlas.png');
  const grid = (atlas.params as { grid: number }).grid;
  const icons = cells.filter((cell) => cell.icon && existsSync(join(dir, cell.icon))).map((cell) => ({ i: cell.i, j: cell.j, png: readFileSync(join(dir, cell.icon!)) }));
  await writeFileAtomic(picture, await atlasPicture(icons, grid, opts.size));
  return { atlas: opts.atlas, picture, rendered: todo.length, reused: chosen.length - todo.length };
}

export interface CellIconSettings {
  /** Icon side in pixels. */
  size: number;
  steps: number;
  tries: number;
  /** Exponent of the cosine term in dot(h, v')·max(0.1, cos)^p. */
  cossimPower: number;
  seed: number;
}

/** The objective an icon maximises, in words (for sidecars and reports). */
export function iconObjectiveName(layer: string, cossimPower: number): string {
  return `dot(h, v')·max(0.1, cos(h, v'))^${cossimPower} at the centre of ${layer}, v' = (S + λI)⁻¹·(cell mean activation), S the run's uncentred second moment`;
}

/**
 * One batched render of icons for several cells (one image per mean activation): the whitened direction
 * objective at the layer's centre, Fourier + decorrelated parameterisation, standard transforms, Adam.
 * Used by `icons` (icons per atlas cell) and `patch` (icons at patch resolution).
 */
export async function renderCellIcons(c: Classifier, layer: string, w: Whitening, meanActs: ReadonlyArray<ArrayLike<number>>, s: CellIconSettings): Promise<RenderResult> {
  const vecs = meanActs.map((v) => whiten(w, v));
  return render({
    classifier: c,
    objective: directionCossimBatch(layer, vecs, s.cossimPower),
    param: (seed) => image(meanActs.length, s.size, s.size, { seed }),
    transforms: standardTransforms(),
    steps: s.steps,
    tries: s.tries,
    seed: s.seed,
  });
}

/** atlas.json, checked to be one patch-atlas wrote; errors name the --atlas flag. */
export function readAtlas(path: string): AtlasFile {
  if (!existsSync(path)) throw new PatchAtlasError('NOT_FOUND', `--atlas ${path} does not exist`, 'write one with `patch-atlas atlas --run RUN --pair A:B`');
  const a = JSON.parse(readFileSync(path, 'utf8')) as AtlasFile;
  if (a.format !== 'patch-atlas-atlas/1') throw new PatchAtlasError('BAD_FLAG', `--atlas ${path} is not an atlas.json written by patch-atlas`);
  return a;
}

/** Cell indices to render: every cell, the top bridge cells, or the top N by bridge rank (by count for non-pair atlases). */
export function selectCells(atlas: AtlasFile, sel: CellSelection): number[] {
  const ranked = atlas.bridges.length
    ? (atlas.bridges as Array<{ cell: number }>).map((b) => b.cell)
    : atlas.cells.map((_, k) => k).sort((a, b) => atlas.cells[b]!.count - atlas.cells[a]!.count);
  if (sel === 'all') return atlas.cells.map((_, k) => k);
  return ranked.slice(0, sel === 'bridges' ? BRIDGE_ICONS : sel);
}

/** Whitening from every activation in the run, accumulated block by block (runs larger than memory). */
export async function runWhitening(runDir: string): Promise<Whitening> {
  const reader = await RunReader.open(runDir);
  try {
    const C = reader.manifest.channels;
    const total = new Float64Array(C * C);
    let n = 0;
    for await (const b of reader.blocks('acts', 8192)) {
      const rows = b.data.length / C;
      const s = secondMoment(b.data, C);
      for (let k = 0; k < s.length; k++) total[k]! += s[k]! * rows;
      n += rows;
    }
    for (let k = 0; k < total.length; k++) total[k]! /= n;
    return whiteningFromMoment(total, C);
  } finally {
    await reader.close();
  }
}
