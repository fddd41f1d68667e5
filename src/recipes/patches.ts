import { STANDARD_MIN_SIDE } from '../featurevis/transforms.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openDataset, type ImageItem, type Skipped } from '../data/dataset.js';
import { decodeImage } from '../data/decode.js';
import { loadPatchImage } from '../data/patches.js';
import { toFloatBatch, type DecodedImage } from '../data/pixels.js';
import { splitItems } from '../data/split.js';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import { ICON_LR, iconObjectiveName, renderCellIcons, selectCells } from '../featurevis/cell-icons.js';
import type { Whitening } from '../featurevis/whiten.js';
import { ATLAS_FILE, readAtlas, type AtlasFile } from '../formats/atlas.js';
import { inFolder } from '../formats/file.js';
import { readPatch, sidecarPath, writePatch, type PatchCell, type PatchDescription } from '../formats/patch.js';
import { readSplit, sameSplit, SPLIT_FILE, writeSplit } from '../formats/split.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { optimisePatch, PATCH_DEFAULTS, resolveSettings, summariseTrace } from '../patch/optimise.js';
import { keyedSeed, sampleIndices } from '../util/random.js';
import { checkAtlasModel, ICON_PARAMS, runWhitening } from './icons.js';
import { anyWholeNumber, atLeast, checkParams, openFraction, positive, sizeRange, wholeNumber, type ParamFail, type ParamSpec } from './params.js';

/**
 * `patch`: patches for the top bridge cells of a pair atlas (A vs B), all targeting B:
 * - an icon patch per cell: the cell's icon rendered at patch resolution (featurevis/cell-icons.ts);
 * - an EOT-optimised patch per cell (Brown et al. 2017), started from that icon;
 * - one EOT patch started from noise, with the same seed (so the same image batches and placements).
 * EOT patches train on the train side of a deterministic split of the images; split.json lists both
 * sides, so evaluation (`evaluate --split`) uses only held-out images. Each patch is a PNG + sidecar
 * (formats/patch.ts). Patches whose PNG and sidecar exist and agree are kept: a rerun resumes.
 */

export interface MakePatchParams {
  /** "bridges" (the top BRIDGE_PATCHES) or the top N bridge cells. */
  cells: 'bridges' | number;
  /** Patch side in pixels; icons are rendered at this size. */
  patchPx: number;
  iconSteps: number;
  iconTries: number;
  cossimPower: number;
  /** EOT steps per patch; 0 writes the icon patches only (and still the split). */
  steps: number;
  batchSize: number;
  /** Adam rate on the patch's logits. */
  lr: number;
  /** EOT patch sides drawn from [lo, hi] (fractions of the image side) and rotations from ±maxRotation°. */
  sizeRange: [number, number];
  maxRotation: number;
  seed: number;
  testFraction: number;
  splitSeed: number;
  /** Also optimise a patch from noise. */
  noise: boolean;
  /** Re-make patches that exist, and replace a split.json made with other settings. */
  force: boolean;
}

/** How many cells `--cells bridges` takes: the top of the bridge ranking. */
export const BRIDGE_PATCHES = 3;

export const MAKE_PATCH_PARAMS: ParamSpec<MakePatchParams> = {
  cells: { default: 'bridges', check: (v) => (v === 'bridges' || (Number.isInteger(v) && v >= 1) ? undefined : `must be "bridges" (the top ${BRIDGE_PATCHES}) or a number of top-ranked bridge cells`) },
  patchPx: { default: PATCH_DEFAULTS.patchPx, check: wholeNumber(STANDARD_MIN_SIDE, 1024), hint: `icon patches are optimised under the article's jitter, which crops 30 px (${STANDARD_MIN_SIDE} px is the smallest side); the patch is resampled to each placement, so 32–128 px is plenty` },
  iconSteps: { default: 256, check: wholeNumber(0) },
  iconTries: { default: ICON_PARAMS.tries.default, check: wholeNumber(1) },
  cossimPower: ICON_PARAMS.cossimPower,
  steps: { default: PATCH_DEFAULTS.steps, check: wholeNumber(0) },
  batchSize: { default: PATCH_DEFAULTS.batchSize, check: wholeNumber(1) },
  lr: { default: PATCH_DEFAULTS.lr, check: positive, hint: 'e.g. 0.1' },
  sizeRange: { default: [...PATCH_DEFAULTS.sizeRange], check: sizeRange, hint: 'e.g. 0.2,0.5' },
  maxRotation: { default: PATCH_DEFAULTS.maxRotation, check: atLeast(0, 180) },
  seed: { default: PATCH_DEFAULTS.seed, check: anyWholeNumber },
  testFraction: { default: 0.5, check: openFraction, hint: 'e.g. 0.5' },
  splitSeed: { default: 0, check: anyWholeNumber },
  noise: { default: true },
  force: { default: false },
};

export type MakePatchesEvent =
  | { kind: 'plan'; make: number; keep: number; eotSteps: number }
  | { kind: 'patch'; name: string; status: 'kept' | 'written'; png: string }
  | { kind: 'step'; name: string; step: number; steps: number; loss: number; pTarget: number };

export interface MadePatch {
  name: string;
  kind: 'icon' | 'eot';
  png: string;
  json: string;
  kept: boolean;
  init?: string;
  cell?: { i: number; j: number; rank: number; score: number };
  /** Mean target probability over the last steps of training (EOT patches). */
  pTarget?: number;
}

export interface MakePatchesResult {
  out: string;
  split: string;
  train: number;
  test: number;
  /** Train-side images the EOT patches draw from (the train side minus images labelled B). */
  trainPool: number;
  source: { wnid: string; name: string };
  target: { wnid: string; name: string };
  patches: MadePatch[];
}

export interface MakePatchesRequest {
  classifier: Classifier;
  /** atlas.json of a pair atlas (or its folder). */
  atlas: string;
  /** Image folder or manifest; its train side trains the EOT patches. */
  images: string;
  /** Folder for the patches and split.json (default: patches/ beside atlas.json). */
  out?: string;
  params?: Partial<MakePatchParams>;
  fail?: ParamFail;
  onEvent?: (e: MakePatchesEvent) => void;
  onSkip?: (s: Skipped) => void;
}

interface Planned {
  name: string;
  kind: 'icon' | 'eot';
  png: string;
  cellIndex?: number;
  /** For EOT: the icon patch it starts from, or 'noise'. */
  init?: string;
}

export async function makePatches(req: MakePatchesRequest): Promise<MakePatchesResult> {
  const p = checkParams(MAKE_PATCH_PARAMS, req.params ?? {}, req.fail);
  const c = req.classifier;
  const atlasPath = inFolder(req.atlas, ATLAS_FILE);
  const atlas = readAtlas(atlasPath, { label: '--atlas' });
  if (atlas.kind !== 'pair' || atlas.classes.length !== 2) {
    throw new PatchAtlasError('BAD_FLAG', `--atlas ${req.atlas} is a ${atlas.kind} atlas; patches need a pair atlas (class A vs target class B)`, 'build one with `patch-atlas atlas --run RUN --pair A:B`');
  }
  checkAtlasModel(atlas, c, req.atlas);
  const out = req.out ?? join(dirname(atlasPath), 'patches');
  const pair = atlasPair(atlas, c);
  const { target } = pair;

  // EOT settings checked before any work (the batch source is a placeholder; the real one comes later).
  const eot = { classifier: c, target, patchPx: p.patchPx, steps: p.steps, lr: p.lr, sizeRange: p.sizeRange, maxRotation: p.maxRotation, seed: p.seed, batchSize: p.batchSize };
  resolveSettings({ ...eot, images: () => new Float32Array(0) });

  // The split: computed from the images (deterministic), checked against one already in the folder.
  const ds = await openDataset(req.images, c.labels);
  for (const s of ds.skipped) req.onSkip?.(s);
  const split = splitItems(ds.items, { testFraction: p.testFraction, seed: p.splitSeed });
  const splitPath = join(out, SPLIT_FILE);
  const [train, test] = [split.train.map((i) => i.path), split.test.map((i) => i.path)];
  if (existsSync(splitPath) && !p.force) {
    const old = readSplit(splitPath, { label: '--out' });
    if (!(old.testFraction === p.testFraction && old.seed === p.splitSeed && sameSplit(old, train, test))) {
      throw new PatchAtlasError('BAD_FLAG', `${splitPath} holds a different split (test fraction ${old.testFraction}, seed ${old.seed}, ${old.train.size}/${old.test.size} images) than this run's`, 'pass the same --images, --test-fraction and --split-seed, another --out, or --force to start over');
    }
  }
  await writeSplit(splitPath, { images: req.images, testFraction: p.testFraction, seed: p.splitSeed, train, test });
  const pool = split.train.filter((it) => it.label?.wnid !== target.wnid);
  const splitInfo = { file: SPLIT_FILE, testFraction: p.testFraction, seed: p.splitSeed, train: split.train.length, test: split.test.length, trainPool: pool.length };

  // What to make: per cell an icon and an EOT patch from it; one EOT patch from noise.
  const chosen = selectCells(atlas, p.cells === 'bridges' ? BRIDGE_PATCHES : p.cells);
  if (chosen.length === 0) throw new PatchAtlasError('EMPTY_ATLAS', `--atlas ${req.atlas} has no cells`);
  const plan: Planned[] = [];
  for (const k of chosen) {
    const icon = patchName('icon', atlas, k);
    plan.push({ name: icon, kind: 'icon', png: join(out, `${icon}.png`), cellIndex: k });
    if (p.steps > 0) plan.push({ name: patchName('eot', atlas, k), kind: 'eot', png: join(out, `${patchName('eot', atlas, k)}.png`), cellIndex: k, init: icon });
  }
  if (p.steps > 0 && p.noise) plan.push({ name: 'eot-noise', kind: 'eot', png: join(out, 'eot-noise.png'), init: 'noise' });

  // Kept only when the sidecar is ours (same name, model and target) and still describes these pixels at this size.
  const existing = new Map<string, Awaited<ReturnType<typeof readPatch>>>();
  if (!p.force) {
    for (const q of plan) {
      const r = await readPatch(q.png).catch((e: unknown) => {
        if (isPatchAtlasError(e)) return undefined;
        throw e;
      });
      const sc = r?.sidecar;
      if (r && sc && sc.name === q.name && sc.model === c.descriptor.name && sc.target.wnid === target.wnid && r.px === p.patchPx) existing.set(q.name, r);
    }
  }
  const todo = plan.filter((q) => !existing.has(q.name));
  const eotTodo = todo.filter((q) => q.kind === 'eot');
  req.onEvent?.({ kind: 'plan', make: todo.length, keep: plan.length - todo.length, eotSteps: eotTodo.length * p.steps });
  if (eotTodo.length && pool.length === 0) {
    throw new PatchAtlasError('NO_IMAGES', `the train side of --images ${req.images} has no images other than ${LabelSet.display(target)}`, 'give more images, or a smaller --test-fraction');
  }
  if (eotTodo.length && p.batchSize > pool.length) {
    throw new PatchAtlasError('BAD_FLAG', `--batch-size ${p.batchSize} is more than the ${pool.length} training images (the train side of --images, minus ${LabelSet.display(target)})`, `use --batch-size ≤ ${pool.length}, or more images`);
  }

  const results = new Map<string, MadePatch>();
  const icons = new Map<string, Uint8Array>();
  const done = (q: Planned, json: string, kept: boolean, pTarget?: number) => {
    const cell = q.cellIndex !== undefined ? patchCell(atlasPath, atlas, q.cellIndex) : undefined;
    results.set(q.name, {
      name: q.name,
      kind: q.kind,
      png: q.png,
      json,
      kept,
      ...(q.init ? { init: q.init } : {}),
      ...(cell ? { cell: { i: cell.i, j: cell.j, rank: cell.rank, score: cell.score ?? NaN } } : {}),
      ...(pTarget !== undefined ? { pTarget } : {}),
    });
    req.onEvent?.({ kind: 'patch', name: q.name, status: kept ? 'kept' : 'written', png: q.png });
  };
  for (const q of plan) {
    const r = existing.get(q.name);
    if (!r) continue;
    if (q.kind === 'icon') icons.set(q.name, r.rgb);
    done(q, sidecarPath(q.png), true, r.sidecar?.trace?.last.pTarget ?? undefined);
  }

  // Icons: one render per cell, seeded by the cell, so an icon does not depend on which others were kept.
  let whitening: Whitening | undefined;
  for (const q of todo.filter((x) => x.kind === 'icon')) {
    whitening ??= await runWhitening(atlas.run);
    const cell = atlas.cells[q.cellIndex!]!;
    const seed = keyedSeed(p.seed, `icon/${cell.i}-${cell.j}`);
    const settings = { iconPx: p.patchPx, steps: p.iconSteps, tries: p.iconTries, cossimPower: p.cossimPower, seed };
    const r = await renderCellIcons(c, atlas.layer, whitening, [cell.meanAct.map((v) => v ?? 0)], settings);
    icons.set(q.name, r.images[0]!);
    const w = await writeIconPatch(q.png, r.images[0]!, { atlasPath, atlas, cellIndex: q.cellIndex!, model: c.descriptor.name, settings, value: r.values[0]! });
    done(q, w.json, false);
  }

  // EOT patches: all with the same seed, so icon- and noise-initialised patches see the same batches and placements.
  if (eotTodo.length) {
    const batches = trainBatches(c, pool, p.seed, req.onSkip);
    const name = (r: ClassRef) => ({ wnid: r.wnid, name: LabelSet.display(r) });
    for (const q of eotTodo) {
      const init = q.init === 'noise' ? 'noise' : icons.get(q.init!)!;
      const r = await optimisePatch({ ...eot, images: batches, init, onStep: (step, loss, pTarget) => req.onEvent?.({ kind: 'step', name: q.name, step, steps: p.steps, loss, pTarget }) });
      const trace = summariseTrace(r.trace);
      const desc: PatchDescription = {
        name: q.name,
        kind: 'eot',
        model: c.descriptor.name,
        source: name(pair.source),
        target: name(target),
        ...(q.cellIndex !== undefined ? { cell: patchCell(atlasPath, atlas, q.cellIndex) } : {}),
        init: q.init === 'noise' ? 'noise' : `${q.init}.png`,
        seed: p.seed,
        settings: r.settings,
        ...(trace ? { trace } : {}),
        objective: { kind: 'eot-log-prob', description: `E[log p(${LabelSet.display(target)} | image with the patch pasted at a random size in ${p.sizeRange.join('–')} of the side, rotation ±${p.maxRotation}°)] over the train-side images` },
        split: splitInfo,
      };
      const w = await writePatch(q.png, { rgb: r.rgb, px: p.patchPx }, desc);
      done(q, w.json, false, trace?.last.pTarget ?? undefined);
    }
  }

  const className = (r: ClassRef) => ({ wnid: r.wnid, name: LabelSet.display(r) });
  return { out, split: splitPath, train: split.train.length, test: split.test.length, trainPool: pool.length, source: className(pair.source), target: className(target), patches: plan.map((q) => results.get(q.name)!) };
}

/**
 * The icons an atlas already has (rendered by `icons`), saved as icon patches for the top `n` bridge
 * cells into `out`: `run`'s icon stage, so its icon patches are the atlas's own icons.
 */
export async function saveIconPatches(c: Classifier, atlasGiven: string, n: number, out: string): Promise<string[]> {
  const atlasPath = inFolder(atlasGiven, ATLAS_FILE);
  const atlas = readAtlas(atlasPath);
  const s = atlas.iconSettings;
  const written: string[] = [];
  for (const b of atlas.bridges.slice(0, n)) {
    const cell = atlas.cells[b.cell]!;
    if (!cell.icon || !s) continue;
    const icon = await loadPatchImage(join(dirname(atlasPath), cell.icon));
    const png = join(out, `${patchName('icon', atlas, b.cell)}.png`);
    await writeIconPatch(png, icon.rgb, { atlasPath, atlas, cellIndex: b.cell, model: c.descriptor.name, settings: s, value: cell.iconObjective ?? null });
    written.push(png);
  }
  return written;
}

/** Patch names carry the bridge rank and the cell: icon-1-cell-3-4, eot-1-cell-3-4 (eot-noise for the noise start). */
function patchName(kind: 'icon' | 'eot', atlas: AtlasFile, cellIndex: number): string {
  const cell = atlas.cells[cellIndex]!;
  return `${kind}-${rankOf(atlas, cellIndex)}-cell-${cell.i}-${cell.j}`;
}

function rankOf(atlas: AtlasFile, cellIndex: number): number {
  return atlas.bridges.find((b) => b.cell === cellIndex)?.rank ?? cellIndex + 1;
}

/** The one way an icon patch is written: the cell, the render settings and the objective value in its sidecar. */
async function writeIconPatch(
  png: string,
  rgb: Uint8Array,
  o: { atlasPath: string; atlas: AtlasFile; cellIndex: number; model: string; settings: { iconPx: number; steps: number; tries: number; cossimPower: number; seed: number }; value: number | null },
) {
  const { atlas, settings: s } = o;
  const [a, b] = atlas.classes;
  return writePatch(png, { rgb, px: s.iconPx }, {
    name: patchFileStem(png),
    kind: 'icon',
    model: o.model,
    source: { wnid: a!.wnid, name: a!.name },
    target: { wnid: b!.wnid, name: b!.name },
    cell: patchCell(o.atlasPath, atlas, o.cellIndex),
    init: 'fourier-noise',
    seed: s.seed,
    settings: { patchPx: s.iconPx, steps: s.steps, tries: s.tries, cossimPower: s.cossimPower, lr: ICON_LR, parameterisation: 'fourier-decorrelated', transforms: 'standard', optimiser: 'adam' },
    objective: { kind: 'direction-cossim', description: iconObjectiveName(atlas.layer, s.cossimPower), value: o.value },
  });
}

const patchFileStem = (png: string) => png.replace(/^.*[\\/]/, '').replace(/\.png$/i, '');

function patchCell(atlasPath: string, atlas: AtlasFile, k: number): PatchCell {
  const cell = atlas.cells[k]!;
  const b = atlas.bridges.find((x) => x.cell === k);
  return { atlas: atlasPath, run: atlas.run, layer: atlas.layer, i: cell.i, j: cell.j, count: cell.count, rank: rankOf(atlas, k), score: b?.score ?? null, reason: b?.reason ?? null, topClasses: cell.topClasses.slice(0, 5) };
}

/** A pair atlas's classes through the classifier's labels. */
function atlasPair(atlas: AtlasFile, c: Classifier): { source: ClassRef; target: ClassRef } {
  return { source: c.labels.resolve(atlas.classes[0]!.wnid, 'class A'), target: c.labels.resolve(atlas.classes[1]!.wnid, 'class B') };
}

/**
 * Batches for optimisePatch from a pool of images: step k's images are drawn keyed by (seed, k), so a
 * patch made again (or another patch with the same seed) sees the same batches. Decoded images are kept
 * as bytes (up to 512 of them); unreadable ones are reported once and left out of their batch.
 */
function trainBatches(c: Classifier, pool: ImageItem[], seed: number, onSkip?: (s: Skipped) => void) {
  const cache = new Map<string, DecodedImage | null>();
  const decode = async (item: ImageItem): Promise<DecodedImage | null> => {
    const hit = cache.get(item.path);
    if (hit !== undefined) return hit;
    let im: DecodedImage | null;
    try {
      im = await decodeImage(item.path, c.preprocess);
    } catch (e) {
      if (!(isPatchAtlasError(e) && e.code === 'BAD_IMAGE')) throw e;
      onSkip?.({ path: item.path, reason: e.message });
      im = null;
    }
    if (im === null || cache.size < 512) cache.set(item.path, im);
    return im;
  };
  return async (step: number, batchSize: number): Promise<Float32Array> => {
    const idx = sampleIndices(pool.length, batchSize, keyedSeed(seed, `train-images/${step}`));
    const images: DecodedImage[] = [];
    for (const k of idx) {
      const im = await decode(pool[k]!);
      if (im) images.push(im);
    }
    if (images.length === 0) throw new PatchAtlasError('NO_IMAGES', `none of the ${idx.length} training images drawn for step ${step} could be read`);
    return toFloatBatch(images);
  };
}
