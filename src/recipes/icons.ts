import { STANDARD_MIN_SIDE } from '../featurevis/transforms.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtlasPicture, writePng } from '../data/png.js';
import { PatchAtlasError } from '../errors.js';
import { BRIDGE_CELLS, renderCellIcons, selectCells, type CellSelection } from '../featurevis/cell-icons.js';
import { secondMoment, whiteningFromMoment, type Whitening } from '../featurevis/whiten.js';
import { ATLAS_FILE, cellIconFile, readAtlas, writeAtlas, type AtlasFile } from '../formats/atlas.js';
import { inFolder } from '../formats/file.js';
import { RunReader } from '../formats/run/index.js';
import type { Classifier } from '../model/classifier.js';
import { anyWholeNumber, atLeast, checkParams, wholeNumber, type ParamFail, type ParamSpec } from './params.js';

/**
 * `icons`: a feature-visualisation icon per atlas cell (the article's recipe, see
 * featurevis/cell-icons.ts), written as icons/cell-I-J.png beside atlas.json, recorded in atlas.json,
 * and composed into atlas.png. Cells that already have an icon are kept, so an interrupted run resumes.
 */

export interface IconParams {
  /** "all", "bridges" (the top-ranked cells) or the top N. */
  cells: CellSelection;
  /** Icon side in pixels. */
  iconPx: number;
  steps: number;
  /** Independent tries per icon; the best is kept. */
  tries: number;
  /** Icons optimised together. */
  batch: number;
  /** Cosine exponent p of the objective dot·cos^p (article: 2–4). */
  cossimPower: number;
  seed: number;
  /** Re-render cells that already have an icon. */
  force: boolean;
}

export const ICON_PARAMS: ParamSpec<IconParams> = {
  cells: { default: 'bridges', check: (v) => (v === 'all' || v === 'bridges' || (Number.isInteger(v) && v >= 1) ? undefined : `must be "all", "bridges" (the ${BRIDGE_CELLS} top-ranked) or a number of top-ranked cells`) },
  // The standard transforms crop 30 px: smaller icons would leave nothing to optimise.
  iconPx: { default: 96, check: wholeNumber(STANDARD_MIN_SIDE, 1024), hint: `icons are optimised under the article's jitter, which crops 30 px: ${STANDARD_MIN_SIDE} px is the smallest side` },
  steps: { default: 512, check: wholeNumber(0) },
  tries: { default: 1, check: wholeNumber(1) },
  batch: { default: 8, check: wholeNumber(1) },
  cossimPower: { default: 2, check: atLeast(0) },
  seed: { default: 0, check: anyWholeNumber },
  force: { default: false },
};

export interface IconResult {
  atlas: string;
  picture: string;
  rendered: number;
  reused: number;
}

/** Renders the chosen cells' icons into the atlas's folder (atlas.json given, or its folder). */
export async function renderIcons(c: Classifier, atlasGiven: string, given: Partial<IconParams>, o: { fail?: ParamFail; onBatch?: (done: number, total: number) => void } = {}): Promise<IconResult> {
  const p = checkParams(ICON_PARAMS, given, o.fail);
  const path = inFolder(atlasGiven, ATLAS_FILE);
  const atlas = readAtlas(path, { label: '--atlas' });
  checkAtlasModel(atlas, c, path);
  const dir = dirname(path);
  const cells = atlas.cells;
  const chosen = selectCells(atlas, p.cells);
  const todo = chosen.filter((k) => p.force || !cells[k]!.icon || !existsSync(join(dir, cells[k]!.icon!)));
  if (todo.length) {
    const w = await runWhitening(atlas.run);
    let done = 0;
    // Announced before the first batch, which can take minutes: a log shows the heartbeat meanwhile.
    o.onBatch?.(0, todo.length);
    for (let s = 0; s < todo.length; s += p.batch) {
      const group = todo.slice(s, s + p.batch);
      const r = await renderCellIcons(c, atlas.layer, w, group.map((k) => cells[k]!.meanAct.map((v) => v ?? 0)), { iconPx: p.iconPx, steps: p.steps, tries: p.tries, cossimPower: p.cossimPower, seed: p.seed + s });
      for (let g = 0; g < group.length; g++) {
        const cell = cells[group[g]!]!;
        const file = cellIconFile(cell);
        await writePng(join(dir, file), r.images[g]!, p.iconPx, p.iconPx);
        cell.icon = file;
        cell.iconObjective = r.values[g]!;
      }
      // Recorded after every batch, so an interrupted run keeps what it rendered.
      await writeAtlas(path, { ...atlas, iconSettings: { iconPx: p.iconPx, steps: p.steps, tries: p.tries, cossimPower: p.cossimPower, seed: p.seed } });
      done += group.length;
      o.onBatch?.(done, todo.length);
    }
  }
  const picture = join(dir, 'atlas.png');
  await writeAtlasPicture(picture, cells.filter((cell) => cell.icon).map((cell) => ({ i: cell.i, j: cell.j, file: join(dir, cell.icon!) })), atlas.params.grid, p.iconPx);
  return { atlas: path, picture, rendered: todo.length, reused: chosen.length - todo.length };
}

/** An atlas is rendered or patched with the model that built it: its activations mean nothing to another. */
export function checkAtlasModel(atlas: AtlasFile, c: Classifier, path: string): void {
  if (atlas.model !== c.descriptor.name) throw new PatchAtlasError('BAD_FLAG', `--atlas ${path} was built with model "${atlas.model}", not "${c.descriptor.name}"`, `pass --model ${atlas.model}`);
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
