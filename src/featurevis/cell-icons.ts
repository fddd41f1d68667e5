import type { Classifier } from '../model/classifier.js';
import { directionCossimBatch } from './objectives.js';
import { image } from './param/index.js';
import { render, type RenderResult } from './render.js';
import { standardTransforms } from './transforms.js';
import { whiten, type Whitening } from './whiten.js';

/**
 * Icons of atlas cells (article §3–4): a cell's mean activation, whitened by the run's uncentred second
 * moment, rendered by maximising dot·cos^p at the layer's centre with a Fourier + decorrelated image,
 * the standard transforms and Adam. The `icons` recipe draws one per atlas cell; the `patch` recipe one
 * per bridge cell at patch resolution.
 */

export interface CellIconSettings {
  /** Icon side in pixels. */
  iconPx: number;
  steps: number;
  tries: number;
  /** Exponent of the cosine term in dot(h, v')·max(0.1, cos(h, v'))^p (article: 2–4). */
  cossimPower: number;
  seed: number;
}

/** Learning rate of every icon render (render's default), recorded in patch sidecars. */
export const ICON_LR = 0.05;

/** The objective an icon maximises, in words (for sidecars and reports). */
export function iconObjectiveName(layer: string, cossimPower: number): string {
  return `dot(h, v')·max(0.1, cos(h, v'))^${cossimPower} at the centre of ${layer}, v' = (S + λI)⁻¹·(cell mean activation), S the run's uncentred second moment`;
}

/** One batched render: one icon per mean activation, all whitened by `w`. */
export async function renderCellIcons(c: Classifier, layer: string, w: Whitening, meanActs: ReadonlyArray<ArrayLike<number>>, s: CellIconSettings): Promise<RenderResult> {
  return renderDirections(c, layer, meanActs.map((v) => whiten(w, v)), s);
}

/**
 * Icons of already whitened directions (each may come from its own whitening), as one batch. With
 * `itemSeeds` each icon has its own random stream (render's `itemSeeds`): it comes out the same whatever
 * it is batched with, and `s.seed` is not used.
 */
export async function renderDirections(c: Classifier, layer: string, dirs: ReadonlyArray<ArrayLike<number>>, s: CellIconSettings, itemSeeds?: readonly number[]): Promise<RenderResult> {
  return render({
    classifier: c,
    objective: directionCossimBatch(layer, dirs, s.cossimPower),
    param: (seed) => image(dirs.length, s.iconPx, s.iconPx, { seed }),
    transforms: standardTransforms(),
    steps: s.steps,
    tries: s.tries,
    seed: s.seed,
    ...(itemSeeds ? { itemSeeds } : {}),
  });
}

export type CellSelection = 'all' | 'bridges' | number;

/** How many bridge cells `--cells bridges` takes: the top of the ranking, where the interesting cells are. */
export const BRIDGE_CELLS = 10;

/** Cell indices in order: every cell, the top bridge cells, or the top N by bridge rank (by point count for non-pair atlases). */
export function selectCells(atlas: { cells: ReadonlyArray<{ count: number }>; bridges: ReadonlyArray<{ cell: number }> }, sel: CellSelection, bridgeCells = BRIDGE_CELLS): number[] {
  if (sel === 'all') return atlas.cells.map((_, k) => k);
  const ranked = atlas.bridges.length ? atlas.bridges.map((b) => b.cell) : atlas.cells.map((_, k) => k).sort((a, b) => atlas.cells[b]!.count - atlas.cells[a]!.count);
  return ranked.slice(0, sel === 'bridges' ? bridgeCells : sel);
}
