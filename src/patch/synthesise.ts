import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { AtlasFile } from '../atlas/from-run.js';
import { openDataset, type ImageItem, type Skipped } from '../data/dataset.js';
import { decodeImage, toFloatBatch, type DecodedImage } from '../data/decode.js';
import { splitItems } from '../data/split.js';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import { preprocessOf } from '../evaluate/predict.js';
import { iconObjectiveName, readAtlas, renderCellIcons, runWhitening, selectCells } from '../featurevis/atlas-icons.js';
import type { Whitening } from '../featurevis/whiten.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { keyedSeed, sampleIndices } from '../util/random.js';
import { optimisePatch, resolveSettings, type PatchSettings } from './optimise.js';
import { readPatch, sidecarPath, summariseTrace, writePatch, type ClassName, type PatchDescription } from './sidecar.js';

/**
 * `patch`: patches for the top bridge cells of a pair atlas (A vs B), all targeted to B:
 * - an icon patch per cell: the cell's feature-visualisation icon rendered at patch resolution (the
 *   `icons` recipe: whitened mean activation, dot·cos^p at the layer's centre);
 * - an EOT-optimised patch per cell (Brown et al. 2017), initialised from that icon;
 * - one EOT-optimised patch initialised from noise, with the same seed (so the same image batches and
 *   placements), for comparison.
 * EOT patches train on the train side of a deterministic split of the images; `split.json` in the out
 * folder lists both sides, so evaluation (`evaluate --split`) can use only held-out images. Each patch
 * is a PNG + JSON sidecar describing its cell, objective, model, seed and settings. Patches whose PNG
 * and sidecar exist (and agree) are kept, so an interrupted run resumes.
 */

export const SPLIT_FORMAT = 'patch-atlas-split/1';
/** How many cells `--cells bridges` takes: the top of the bridge ranking. */
export const BRIDGE_PATCHES = 3;

export const SYNTH_DEFAULTS = {
  side: 64,
  iconSteps: 256,
  iconTries: 1,
  cossimPower: 2,
  steps: 200,
  batchSize: 8,
  sizeRange: [0.2, 0.5] as [number, number],
  maxRotation: 22.5,
  seed: 0,
  testFraction: 0.5,
  splitSeed: 0,
} as const;

export interface SynthesiseOptions {
  classifier: Classifier;
  /** atlas.json of a pair atlas (`atlas --pair A:B`). */
  atlas: string;
  /** 'bridges' (the top 3 bridge cells) or the top N. */
  cells: 'bridges' | number;
  /** Folder for the patches and split.json. */
  out: string;
  /** Image folder or manifest; its train side trains the EOT patches. */
  images: string;
  /** Patch side in pixels (default 64); icons are rendered at this size. */
  side?: number;
  iconSteps?: number;
  iconTries?: number;
  cossimPower?: number;
  /** EOT steps per patch (default 200); 0 writes the icon patches only (and still the split). */
  steps?: number;
  batchSize?: number;
  /** Adam rate on the patch's logits (default optimisePatch's). */
  lr?: number;
  sizeRange?: readonly [number, number];
  maxRotation?: number;
  seed?: number;
  testFraction?: number;
  splitSeed?: number;
  /** Also optimise a patch from noise (default true). */
  noise?: boolean;
  /** Re-make patches that already exist, and replace a split.json made with other settings. */
  force?: boolean;
  onEvent?: (e: SynthesiseEvent) => void;
  onSkip?: (s: Skipped) => void;
}

export type SynthesiseEvent =
  | { kind: 'plan'; make: number; keep: number; eotSteps: number }
  | { kind: 'patch'; name: string; status: 'kept' | 'written'; png: string }
  | { kind: 'step'; name: string; step: number; steps: number; loss: number; pTarget: number };

export interface SynthesisedPatch {
  name: string;
  kind: 'icon' | 'eot';
  png: string;
  json: string;
  kept: boolean;
  init?: string;
  cell?: { i: number; j: number; rank: number; score: number };
  /** Mean target probability over the last steps of training (EOT patches made in this run or read from the sidecar). */
  pTarget?: number;
}

export interface SynthesiseResult {
  out: string;
  split: string;
  train: number;
  test: number;
  /** Train-side images the EOT patches draw from (the train side minus images labelled B). */
  trainPool: number;
  source: ClassName;
  target: ClassName;
  patches: SynthesisedPatch[];
}

/** split.json: both sides of a train/test split, paths relative to the file's folder (so the folder can move with its images). */
export interface SplitFile {
  format: typeof SPLIT_FORMAT;
  images: string;
  testFraction: number;
  seed: number;
  train: string[];
  test: string[];
}

/** Extra sidecar keys `patch` writes (beside PatchSidecar's): what was maximised, and the split trained on. */
export interface SynthesisExtras {
  objective: { kind: 'direction-cossim' | 'eot-log-prob'; description: string; value?: number };
  split?: { file: string; testFraction: number; seed: number; train: number; test: number; trainPool: number };
}

type AtlasCell = AtlasFile['cells'][number];
interface Bridge {
  cell: number;
  rank: number;
  score: number;
  reason: string;
}

interface Planned {
  name: string;
  kind: 'icon' | 'eot';
  png: string;
  cellIndex?: number;
  /** For EOT: the icon patch it starts from, or 'noise'. */
  init?: string;
}

export async function synthesisePatches(opts: SynthesiseOptions): Promise<SynthesiseResult> {
  const c = opts.classifier;
  const d = SYNTH_DEFAULTS;
  const side = opts.side ?? d.side;
  const iconSteps = opts.iconSteps ?? d.iconSteps;
  const iconTries = opts.iconTries ?? d.iconTries;
  const cossimPower = opts.cossimPower ?? d.cossimPower;
  const steps = opts.steps ?? d.steps;
  const seed = opts.seed ?? d.seed;
  const testFraction = opts.testFraction ?? d.testFraction;
  const splitSeed = opts.splitSeed ?? d.splitSeed;
  const noise = opts.noise ?? true;
  const force = opts.force ?? false;
  const bad = (msg: string, hint?: string) => new PatchAtlasError('BAD_FLAG', msg, hint);
  for (const [what, v, min] of [['icon steps', iconSteps, 0], ['icon tries', iconTries, 1]] as const) {
    if (!(Number.isInteger(v) && v >= min)) throw bad(`${what} must be a whole number ≥ ${min}, got ${v}`);
  }
  if (!(Number.isFinite(cossimPower) && cossimPower >= 0)) throw bad(`cosine power must be ≥ 0, got ${cossimPower}`);
  const cellCount = opts.cells === 'bridges' ? BRIDGE_PATCHES : opts.cells;
  if (!(Number.isInteger(cellCount) && cellCount >= 1)) throw bad(`cells must be "bridges" or a whole number ≥ 1, got ${String(opts.cells)}`);

  const atlas = readAtlas(opts.atlas);
  if (atlas.kind !== 'pair' || atlas.classes.length !== 2) {
    throw bad(`--atlas ${opts.atlas} is a ${atlas.kind} atlas; patches need a pair atlas (class A vs target class B)`, 'build one with `patch-atlas atlas --run RUN --pair A:B`');
  }
  if (atlas.model !== c.descriptor.name) throw bad(`--atlas ${opts.atlas} was built with model "${atlas.model}", not "${c.descriptor.name}"`, `pass --model ${atlas.model}`);
  const source = c.labels.resolve(atlas.classes[0]!.wnid, 'class A');
  const target = c.labels.resolve(atlas.classes[1]!.wnid, 'class B');
  const name = (r: ClassRef): ClassName => ({ wnid: r.wnid, name: LabelSet.display(r) });

  // EOT settings checked before any work (the batch source is a placeholder; the real one comes later).
  const eotBase = { classifier: c, target, side, steps, lr: opts.lr, sizeRange: opts.sizeRange ?? d.sizeRange, maxRotation: opts.maxRotation ?? d.maxRotation, seed, batchSize: opts.batchSize ?? d.batchSize };
  const settings: PatchSettings = resolveSettings({ ...eotBase, images: () => new Float32Array(0) });

  // The split: computed from the images (deterministic), checked against one already in the folder.
  const ds = await openDataset(opts.images, c.labels);
  for (const s of ds.skipped) opts.onSkip?.(s);
  const split = splitItems(ds.items, { testFraction, seed: splitSeed });
  const splitPath = join(opts.out, 'split.json');
  const splitFile = toSplitFile(splitPath, opts.images, testFraction, splitSeed, split.train, split.test);
  if (existsSync(splitPath) && !force) {
    const old = readSplitFile(splitPath, '--out');
    const same = old.testFraction === testFraction && old.seed === splitSeed && sameSet(old.train, split.train) && sameSet(old.test, split.test);
    if (!same) throw bad(`${splitPath} holds a different split (test fraction ${old.testFraction}, seed ${old.seed}, ${old.train.size}/${old.test.size} images) than this run's`, 'pass the same --images, --test-fraction and --split-seed, another --out, or --force to start over');
  }
  await writeJsonAtomic(splitPath, splitFile);
  const pool = split.train.filter((it) => it.label?.wnid !== target.wnid);
  const splitInfo = { file: 'split.json', testFraction, seed: splitSeed, train: split.train.length, test: split.test.length, trainPool: pool.length };

  // What to make: per cell an icon and an EOT patch from it; one EOT patch from noise.
  const bridges = new Map((atlas.bridges as Bridge[]).map((b) => [b.cell, b]));
  const chosen = selectCells(atlas, cellCount);
  if (chosen.length === 0) throw new PatchAtlasError('EMPTY_ATLAS', `--atlas ${opts.atlas} has no cells`);
  const plan: Planned[] = [];
  for (const k of chosen) {
    const cell = atlas.cells[k]!;
    const icon = `icon-cell-${cell.i}-${cell.j}`;
    plan.push({ name: icon, kind: 'icon', png: join(opts.out, `${icon}.png`), cellIndex: k });
    if (steps > 0) plan.push({ name: `eot-cell-${cell.i}-${cell.j}`, kind: 'eot', png: join(opts.out, `eot-cell-${cell.i}-${cell.j}.png`), cellIndex: k, init: icon });
  }
  if (steps > 0 && noise) plan.push({ name: 'eot-noise', kind: 'eot', png: join(opts.out, 'eot-noise.png'), init: 'noise' });

  const existing = new Map<string, Awaited<ReturnType<typeof readPatch>>>();
  if (!force) {
    for (const p of plan) {
      const r = await readPatch(p.png).catch((e: unknown) => {
        if (isPatchAtlasError(e)) return undefined;
        throw e;
      });
      // Kept only when the sidecar is ours (same name, model and target) and still describes these pixels at this size.
      const sc = r?.sidecar;
      if (r && sc && sc.name === p.name && sc.model === c.descriptor.name && sc.target.wnid === target.wnid && r.size === side) existing.set(p.name, r);
    }
  }
  const todo = plan.filter((p) => !existing.has(p.name));
  const eotTodo = todo.filter((p) => p.kind === 'eot');
  opts.onEvent?.({ kind: 'plan', make: todo.length, keep: plan.length - todo.length, eotSteps: eotTodo.length * steps });
  if (eotTodo.length && pool.length === 0) {
    throw new PatchAtlasError('NO_IMAGES', `the train side of --images ${opts.images} has no images other than ${LabelSet.display(target)}`, 'give more images, or a smaller --test-fraction');
  }
  if (eotTodo.length && settings.batchSize > pool.length) {
    throw bad(`--batch-size ${settings.batchSize} is more than the ${pool.length} training images (the train side of --images, minus ${LabelSet.display(target)})`, `use --batch-size ≤ ${pool.length}, or more images`);
  }

  const cellInfo = (k: number) => {
    const cell = atlas.cells[k]! as AtlasCell;
    const b = bridges.get(k);
    return {
      atlas: opts.atlas,
      run: atlas.run,
      layer: atlas.layer,
      i: cell.i,
      j: cell.j,
      count: cell.count,
      rank: b?.rank ?? chosen.indexOf(k) + 1,
      score: b?.score ?? null,
      reason: b?.reason ?? null,
      topClasses: cell.topClasses.slice(0, 5),
    };
  };
  const common = { model: c.descriptor.name, target: name(target), source: name(source) };
  const results = new Map<string, SynthesisedPatch>();
  const icons = new Map<string, Uint8Array>();
  const done = (p: Planned, json: string, kept: boolean, pTarget?: number) => {
    const cell = p.cellIndex !== undefined ? cellInfo(p.cellIndex) : undefined;
    results.set(p.name, {
      name: p.name,
      kind: p.kind,
      png: p.png,
      json,
      kept,
      ...(p.init ? { init: p.init } : {}),
      ...(cell ? { cell: { i: cell.i, j: cell.j, rank: cell.rank, score: cell.score ?? NaN } } : {}),
      ...(pTarget !== undefined ? { pTarget } : {}),
    });
    opts.onEvent?.({ kind: 'patch', name: p.name, status: kept ? 'kept' : 'written', png: p.png });
  };
  for (const p of plan) {
    const r = existing.get(p.name);
    if (!r) continue;
    if (p.kind === 'icon') icons.set(p.name, r.rgb);
    done(p, sidecarPath(p.png), true, r.sidecar?.trace?.last.pTarget);
  }

  // Icons: one render per cell, seeded by the cell, so an icon does not depend on which others were kept.
  let whitening: Whitening | undefined;
  for (const p of todo.filter((q) => q.kind === 'icon')) {
    whitening ??= await runWhitening(atlas.run);
    const cell = atlas.cells[p.cellIndex!]!;
    const iconSeed = keyedSeed(seed, `icon/${cell.i}-${cell.j}`);
    const r = await renderCellIcons(c, atlas.layer, whitening, [cell.meanAct], { size: side, steps: iconSteps, tries: iconTries, cossimPower, seed: iconSeed });
    const rgb = r.images[0]!;
    icons.set(p.name, rgb);
    const desc: PatchDescription & SynthesisExtras = {
      ...common,
      name: p.name,
      kind: 'icon',
      cell: cellInfo(p.cellIndex!),
      init: 'fourier-noise',
      seed: iconSeed,
      settings: { side, steps: iconSteps, tries: iconTries, cossimPower, lr: 0.05, parameterisation: 'fourier-decorrelated', transforms: 'standard', optimiser: 'adam' },
      objective: { kind: 'direction-cossim', description: iconObjectiveName(atlas.layer, cossimPower), value: r.values[0]! },
    };
    const w = await writePatch(p.png, { rgb, size: side }, desc);
    done(p, w.json, false);
  }

  // EOT patches: all with the same seed, so icon- and noise-initialised patches see the same batches and placements.
  if (eotTodo.length) {
    const batches = trainBatches(c, pool, seed, opts.onSkip);
    for (const p of eotTodo) {
      const init = p.init === 'noise' ? 'noise' : icons.get(p.init!)!;
      const r = await optimisePatch({
        ...eotBase,
        images: batches,
        init,
        onStep: (step, loss, pTarget) => opts.onEvent?.({ kind: 'step', name: p.name, step, steps, loss, pTarget }),
      });
      const trace = summariseTrace(r.trace);
      const desc: PatchDescription & SynthesisExtras = {
        ...common,
        name: p.name,
        kind: 'eot',
        ...(p.cellIndex !== undefined ? { cell: cellInfo(p.cellIndex) } : {}),
        init: p.init === 'noise' ? 'noise' : `${p.init}.png`,
        seed,
        settings: r.settings,
        ...(trace ? { trace } : {}),
        objective: { kind: 'eot-log-prob', description: `E[log p(${LabelSet.display(target)} | image with the patch pasted at a random size in ${settings.sizeRange.join('–')} of the side, rotation ±${settings.maxRotation}°)] over the train-side images` },
        split: splitInfo,
      };
      const w = await writePatch(p.png, { rgb: r.rgb, size: side }, desc);
      done(p, w.json, false, trace?.last.pTarget);
    }
  }

  return {
    out: opts.out,
    split: splitPath,
    train: split.train.length,
    test: split.test.length,
    trainPool: pool.length,
    source: name(source),
    target: name(target),
    patches: plan.map((p) => results.get(p.name)!),
  };
}

/**
 * Batches for optimisePatch from a pool of images: step k's images are drawn keyed by (seed, k), so a
 * patch made again (or another patch with the same seed) sees the same batches. Decoded images are kept
 * as bytes (up to 512 of them); unreadable ones are reported once and left out of their batch.
 */
function trainBatches(c: Classifier, pool: ImageItem[], seed: number, onSkip?: (s: Skipped) => void) {
  const pre = preprocessOf(c);
  const cache = new Map<string, DecodedImage | null>();
  const decode = async (item: ImageItem): Promise<DecodedImage | null> => {
    const hit = cache.get(item.path);
    if (hit !== undefined) return hit;
    let im: DecodedImage | null;
    try {
      im = await decodeImage(item.path, pre);
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

function toSplitFile(path: string, images: string, testFraction: number, seed: number, train: ImageItem[], test: ImageItem[]): SplitFile {
  const dir = resolve(dirname(path));
  const rel = (p: string) => relative(dir, resolve(p)).split(sep).join('/');
  return { format: SPLIT_FORMAT, images: rel(images), testFraction, seed, train: train.map((i) => rel(i.path)), test: test.map((i) => rel(i.path)) };
}

export interface ReadSplit {
  testFraction: number;
  seed: number;
  /** Absolute paths. */
  train: Set<string>;
  test: Set<string>;
}

/** Reads a split.json written by `patch`; paths come back absolute. `flag` names where the path came from, for errors. */
export function readSplitFile(path: string, flag = '--split'): ReadSplit {
  if (!existsSync(path)) throw new PatchAtlasError('NOT_FOUND', `${flag} ${path} does not exist`, 'patch-atlas patch writes split.json into its --out folder');
  let f: SplitFile;
  try {
    f = JSON.parse(readFileSync(path, 'utf8')) as SplitFile;
  } catch {
    throw new PatchAtlasError('BAD_FLAG', `${flag} ${path} is not valid JSON`);
  }
  if (!(f && f.format === SPLIT_FORMAT && Array.isArray(f.train) && Array.isArray(f.test) && [...f.train, ...f.test].every((p) => typeof p === 'string'))) {
    throw new PatchAtlasError('BAD_FLAG', `${flag} ${path} is not a split.json written by patch-atlas`, `expected format "${SPLIT_FORMAT}" with train and test path lists`);
  }
  const dir = resolve(dirname(path));
  const abs = (p: string) => (isAbsolute(p) ? resolve(p) : resolve(dir, p));
  return { testFraction: f.testFraction, seed: f.seed, train: new Set(f.train.map(abs)), test: new Set(f.test.map(abs)) };
}

function sameSet(a: Set<string>, items: ImageItem[]): boolean {
  const b = new Set(items.map((i) => resolve(i.path)));
  if (a.size !== b.size) return false;
  for (const p of b) if (!a.has(p)) return false;
  return true;
}
