import { MAX_GRID } from './atlas.js';
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pairAtlas } from '../atlas/atlases.js';
import { pairFilter } from '../atlas/filter.js';
import { openDataset, type ImageItem, type Skipped } from '../data/dataset.js';
import { decodeImage } from '../data/decode.js';
import { fileSha256s, readTextFile } from '../data/digest.js';
import { writePng } from '../data/png.js';
import { toFloatBatch, type DecodedImage } from '../data/pixels.js';
import { PatchAtlasError } from '../errors.js';
import { noisePatch } from '../evaluate/evaluate-patches.js';
import { renderDirections } from '../featurevis/cell-icons.js';
import { secondMoment, whiten, whiteningFromMoment, type Whitening } from '../featurevis/whiten.js';
import { writeFormat, readFormat, type Format } from '../formats/file.js';
import { producer } from '../formats/producer.js';
import { META, RunReader, type RunManifest } from '../formats/run/index.js';
import { PAIRS_DIR, readPairRecords, SCREEN_FORMAT, writePairRecord, writeScreen, type KindOutcome, type ScreenCellRef, type ScreenFile, type ScreenPairRecord, type ScreenTest } from '../formats/screen.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet } from '../model/labels.js';
import { pasteRgb } from '../patch/paste.js';
import { gridPlacements, type Placement } from '../patch/placement.js';
import { analyse } from '../screen/analysis.js';
import { screenCells, type ScreenCells } from '../screen/cells.js';
import { MIN_A_POINTS, PRIMARY, SCREEN_KINDS, SCREEN_POSITIONS, SCREEN_SIZES, STATIC_PLACEMENT, type ScreenKind } from '../screen/design.js';
import { cropRgb, flatPatch, nearestRow, windowAt, type Window } from '../screen/exemplar.js';
import { autoPairs, listPairs, nearestByWeights, type Candidate, type PlannedPair } from '../screen/pairs.js';
import { stableJson } from '../util/json.js';
import { keyedSeed } from '../util/random.js';
import { z } from 'zod';
import { anyWholeNumber, atLeast, checkParams, wholeNumber, type ParamFail, type ParamSpec } from './params.js';
import { predictImages } from './predict.js';

/**
 * `screen`: the article's patch experiment pooled over many class pairs (issue "Do bridges make
 * patches?"). Per pair A → B and tested image s of A: a pair atlas built without s (nor any file with
 * s's bytes), bridges from attribution (never s's label), icons whitened without s, exemplar and B
 * crops from other images; every patch kind pasted on s at 4 corners × 3 sizes; then the pooled,
 * paired statistics declared in screen/design.ts. One collect run serves every pair. Each pair's record
 * is written when it is done, so a killed screen resumes, and `--shard i/N` + `merge` split the work.
 */

export interface ScreenParams {
  /** 'auto' (runner-up pairs + the sensitivity set), or named pairs "A:B,C:D" / a file of them. */
  pairs: string;
  maxPairs: number;
  /** With auto pairs: also the sensitivity set (B nearest A by final-layer weights). */
  sensitivity: boolean;
  /** The patch kinds measured (default all; the tests need their kinds). */
  kinds: ScreenKind[];
  seed: number;
  /** Patch side of icons, noise and flat patches (crops are cut at the pasted size). */
  patchPx: number;
  iconSteps: number;
  cossimPower: number;
  grid: number;
  minDensity: number;
  topN: number;
  /** Icons rendered together (does not change any icon: each has its own random stream). */
  iconBatch: number;
  /** Images per forward pass (does not change results). */
  batchSize: number;
}

export const SCREEN_PARAMS: ParamSpec<ScreenParams> = {
  pairs: { default: 'auto' },
  maxPairs: { default: 100, check: wholeNumber(1) },
  sensitivity: { default: true },
  kinds: { default: [...SCREEN_KINDS], check: (v) => (v.length && v.every((k) => (SCREEN_KINDS as readonly string[]).includes(k)) ? undefined : `must be patch kinds from ${SCREEN_KINDS.join(', ')}`) },
  seed: { default: 0, check: anyWholeNumber },
  patchPx: { default: 80, check: wholeNumber(32, 256) },
  iconSteps: { default: 128, check: wholeNumber(0) },
  cossimPower: { default: 2, check: atLeast(0) },
  grid: { default: 8, check: wholeNumber(2, MAX_GRID) },
  minDensity: { default: 5, check: wholeNumber(1) },
  // The article keeps the top 2000 of a million points (0.2 %); a screen's run holds thousands, so fewer are kept per class.
  topN: { default: 500, check: wholeNumber(1) },
  iconBatch: { default: 12, check: wholeNumber(1) },
  batchSize: { default: 16, check: wholeNumber(1) },
};

/** The settings that decide a screen's result: a folder resumed with other settings is refused. */
type Design = Omit<ScreenParams, 'iconBatch' | 'batchSize'> & { sizes: readonly number[]; positions: readonly string[]; static: string; primary: typeof PRIMARY; minAPoints: number; layer: string; model: string };

export type ScreenEvent =
  | { kind: 'plan'; pairs: number; done: number; todo: number; tests: number; passes: number }
  | { kind: 'pair'; id: string; done: number; total: number; line: string };

export interface ScreenRequest {
  classifier: Classifier;
  run: string;
  images: string;
  out: string;
  params?: Partial<ScreenParams>;
  shard?: { index: number; count: number } | null;
  fail?: ParamFail;
  onEvent?: (e: ScreenEvent) => void;
  onSkip?: (s: Skipped) => void;
}

export interface ScreenResult {
  /** screen.json (null for a shard: `merge` assembles the shards). */
  file: ScreenFile | null;
  files: { json: string; csv: string } | null;
  measured: number;
  reused: number;
}

const PLAN_FORMAT = 'patch-atlas-screen-plan/1';
const planSchema = z.object({ format: z.literal(PLAN_FORMAT), design: z.record(z.string(), z.unknown()), pairs: z.array(z.object({ id: z.string(), set: z.string(), a: z.string(), b: z.string(), images: z.array(z.string()) })) });
type Plan = z.infer<typeof planSchema>;
const planFormat: Format<Plan> = { what: 'a screen plan', file: 'screen-plan.json', version: PLAN_FORMAT, schema: planSchema, hint: 'use another --out, or delete the folder to start the screen afresh' };

export async function screen(req: ScreenRequest): Promise<ScreenResult> {
  const p = checkParams(SCREEN_PARAMS, req.params ?? {}, req.fail);
  const c = req.classifier;
  const ctx = await openRunData(req.run, c);
  const ds = await openDataset(req.images, c.labels);
  for (const s of ds.skipped) req.onSkip?.(s);
  const pairs = await planPairs(c, ds.items, p, req.onSkip);
  if (pairs.length === 0) throw new PatchAtlasError('NO_IMAGES', `no testable pairs in ${req.images}: the model classifies none of its labelled images correctly`, 'check --images and --model');

  const design: Design & { run: string; images: string } = { ...omit(p, 'iconBatch', 'batchSize'), run: resolve(req.run), images: resolve(req.images), sizes: SCREEN_SIZES, positions: SCREEN_POSITIONS, static: STATIC_PLACEMENT, primary: PRIMARY, minAPoints: MIN_A_POINTS, layer: ctx.m.layer, model: c.descriptor.name };
  const col = (k: number) => c.labels.atOutput(k + c.labels.offset)!;
  const plan: Plan = { format: PLAN_FORMAT, design, pairs: pairs.map((q) => ({ id: q.id, set: q.set, a: col(q.a).wnid, b: col(q.b).wnid, images: q.images.map((i) => ds.items[i]!.path) })) };
  await claimFolder(req.out, plan);

  const mine = pairs.filter((_, k) => !req.shard || k % req.shard.count === req.shard.index);
  const done = readPairRecords(req.out);
  const todo = mine.filter((q) => !done.has(q.id));
  const tests = todo.reduce((s, q) => s + q.images.length, 0);
  req.onEvent?.({ kind: 'plan', pairs: mine.length, done: mine.length - todo.length, todo: todo.length, tests, passes: tests * (1 + SCREEN_KINDS.length * SCREEN_SIZES.length * SCREEN_POSITIONS.length) });

  const placements = gridPlacements(c.inputSize, SCREEN_SIZES, SCREEN_POSITIONS);
  // Pairs in groups whose icons render as one batch; each icon has its own random stream, so the grouping changes nothing.
  let finished = mine.length - todo.length;
  for (let g = 0; g < todo.length; ) {
    const group: PlannedPair[] = [];
    while (g < todo.length && (group.length === 0 || group.reduce((s, q) => s + 3 * q.images.length, 0) + 3 * todo[g]!.images.length <= p.iconBatch)) group.push(todo[g++]!);
    const prepared: PreparedTest[][] = [];
    for (const q of group) {
      const tests: PreparedTest[] = [];
      for (const i of q.images) tests.push(await prepareTest(ctx, ds.items[i]!, q, p));
      prepared.push(tests);
    }
    const icons = await renderIcons(c, ctx, prepared.flat(), p);
    for (const [k, q] of group.entries()) {
      const record: ScreenPairRecord = { format: 'patch-atlas-screen-pair/1', id: q.id, set: q.set, source: named(col(q.a)), target: named(col(q.b)), tests: [] };
      for (const t of prepared[k]!) record.tests.push(await measureTest(c, ctx, t, icons, placements, p, req.out));
      await writePairRecord(req.out, record);
      finished++;
      req.onEvent?.({ kind: 'pair', id: q.id, done: finished, total: mine.length, line: pairLine(record) });
    }
  }

  if (req.shard) return { file: null, files: null, measured: todo.length, reused: mine.length - todo.length };
  const assembled = await assembleScreen(req.out);
  return { file: assembled.file, files: assembled.files, measured: todo.length, reused: mine.length - todo.length };
}

/** screen.json and screen.csv from a folder's plan and pair records (all of them must be there). */
export async function assembleScreen(dir: string): Promise<{ file: ScreenFile; files: { json: string; csv: string } }> {
  const plan = readFormat(planFormat, join(dir, 'screen-plan.json'));
  const records = readPairRecords(dir);
  const missing = plan.pairs.filter((q) => !records.has(q.id)).map((q) => q.id);
  if (missing.length) throw new PatchAtlasError('BAD_RUN', `${dir} lacks ${missing.length} of its ${plan.pairs.length} pairs (e.g. ${missing[0]})`, 'run the missing shards, or the screen again with the same flags to finish it');
  const d = plan.design as Design & { run?: string; images?: string };
  const sets = (['auto', 'sensitivity', 'list'] as const)
    .map((name) => ({ name, pairs: plan.pairs.filter((q) => q.set === name).map((q) => records.get(q.id)!) }))
    .filter((s) => s.pairs.length)
    .map((s) => ({ ...s, analysis: analyse(s.pairs) }));
  const file: ScreenFile = { format: SCREEN_FORMAT, producer: producer(d.model), model: d.model, layer: d.layer, run: String(d.run ?? ''), images: String(d.images ?? ''), design: plan.design, sets };
  const files = await writeScreen(dir, file);
  return { file, files };
}

/**
 * Joins shard folders of one screen into `out`: the same plan everywhere, each pair record copied from
 * the shard that measured it; the result is the screen an unsharded run writes.
 */
export async function mergeScreens(shards: readonly string[], out: string): Promise<{ file: ScreenFile; files: { json: string; csv: string } }> {
  const plans = shards.map((s) => readFormat(planFormat, join(s, 'screen-plan.json'), { label: 'shard' }));
  const first = stableJson(plans[0]);
  plans.forEach((pl, k) => {
    if (stableJson(pl) !== first) throw new PatchAtlasError('RUN_MISMATCH', `shard ${shards[k]} was planned with other settings or pairs than ${shards[0]}`, 'merge shards of one `screen` command only');
  });
  await claimFolder(out, plans[0]!);
  const { copyFile, mkdir, readdir } = await import('node:fs/promises');
  for (const s of shards) {
    for (const [id] of readPairRecords(s)) {
      await mkdir(join(out, PAIRS_DIR), { recursive: true });
      await copyFile(join(s, PAIRS_DIR, `${id}.json`), join(out, PAIRS_DIR, `${id}.json`));
      const pngDir = join(s, PAIRS_DIR, id);
      if (existsSync(pngDir)) {
        await mkdir(join(out, PAIRS_DIR, id), { recursive: true });
        for (const f of await readdir(pngDir)) await copyFile(join(pngDir, f), join(out, PAIRS_DIR, id, f));
      }
    }
  }
  return assembleScreen(out);
}

// ---- the run, once ---------------------------------------------------------------------------------

interface RunData {
  m: RunManifest;
  dir: string;
  /** [N × C] activations and [N × K] attributions, all rows. */
  acts: Float32Array;
  attr: Float32Array;
  C: number;
  K: number;
  H: number;
  W: number;
  image: Int32Array;
  y: Int32Array;
  x: Int32Array;
  winner: Int32Array;
  label: Int32Array;
  pred: Int32Array;
  /** Per run image: path, label column (−1 none) and content hash. */
  paths: string[];
  labelOf: Int32Array;
  hash: Array<string | null>;
  /** Σ hhᵀ per block of MOMENT_ROWS rows (float64, C×C), for whitening with a test's rows held out. */
  moments: Float64Array[];
}

/** Rows per block of the whitening moment. */
const MOMENT_ROWS = 8192;

/** Σ hhᵀ over the given rows (float64, C×C, not divided). */
function momentOf(acts: Float32Array, C: number, rows: readonly number[]): Float64Array {
  if (rows.length === 0) return new Float64Array(C * C);
  const block = new Float32Array(rows.length * C);
  rows.forEach((r, k) => block.set(acts.subarray(r * C, (r + 1) * C), k * C));
  const m = secondMoment(block, C);
  for (let k = 0; k < m.length; k++) m[k]! *= rows.length;
  return m;
}

/** Attribution matrices above this many bytes are not loaded whole (the screen reads them for every pair). */
const MAX_IN_MEMORY = 2 ** 31;

async function openRunData(run: string, c: Classifier): Promise<RunData> {
  const reader = await RunReader.open(run);
  try {
    const m = reader.manifest;
    if (m.model !== c.descriptor.name) throw new PatchAtlasError('BAD_FLAG', `--run ${run} was collected with model "${m.model}", not "${c.descriptor.name}"`, `pass --model ${m.model}`);
    const N = reader.points;
    const K = m.classes.length;
    if (N * K * 4 > MAX_IN_MEMORY) throw new PatchAtlasError('BAD_RUN', `--run ${run} holds ${N} points × ${K} classes (${((N * K * 4) / 2 ** 30).toFixed(1)} GB of attribution); the screen keeps them in memory`, 'collect fewer positions per image, or screen a run of fewer images');
    const [H, W, C] = m.layerShape;
    const acts = await reader.all('acts');
    const attr = await reader.all('attr');
    const meta = await reader.all('meta');
    const colOf = (k: number) => Int32Array.from({ length: N }, (_, i) => meta[i * 6 + k]!);
    const paths = reader.images.map((r) => r.path);
    const labelOf = Int32Array.from(reader.images, (r) => (r.label ? m.classes.indexOf(r.label) : -1));
    const moments: Float64Array[] = [];
    for (let s = 0; s < N; s += MOMENT_ROWS) moments.push(momentOf(acts, C, Array.from({ length: Math.min(MOMENT_ROWS, N - s) }, (_, k) => s + k)));
    return { m, dir: run, acts, attr, C, K, H, W, image: colOf(META.image), y: colOf(META.y), x: colOf(META.x), winner: colOf(META.winClass), label: colOf(META.trueClass), pred: colOf(META.predClass), paths, labelOf, hash: await fileSha256s(paths), moments };
  } finally {
    await reader.close();
  }
}

// ---- pairs ----------------------------------------------------------------------------------------

async function planPairs(c: Classifier, items: ImageItem[], p: ScreenParams, onSkip?: (s: Skipped) => void): Promise<PlannedPair[]> {
  const off = c.labels.offset;
  const labelled = items.map((it, i) => ({ it, i })).filter((x) => x.it.label);
  const cands: Candidate[] = [];
  const index = new Map(labelled.map((x) => [x.it.path, x.i]));
  for await (const r of predictImages(c, labelled.map((x) => x.it), { top: 2, batchSize: p.batchSize, ...(onSkip ? { onSkip } : {}) })) {
    cands.push({ image: index.get(r.item.path)!, label: r.item.label!.index - off, top1: r.top[0]!.class.index - off, top2: r.top[1]!.class.index - off });
  }
  if (p.pairs === 'auto') {
    let nearest: (a: number) => number = () => -1;
    if (p.sensitivity) {
      const w = c.logitWeights();
      if (!w) throw new PatchAtlasError('BAD_FLAG', `the sensitivity set needs the final layer's weights, which model "${c.descriptor.name}" does not expose`, 'pass --no-sensitivity');
      nearest = (a) => nearestByWeights(w.weights, w.classes, a);
    }
    const { auto, sensitivity } = autoPairs(cands, p.maxPairs, p.seed, nearest);
    return p.sensitivity ? [...auto, ...sensitivity] : auto;
  }
  const named = await namedPairs(p.pairs);
  const resolved = named.map(([a, b]) => {
    const ra = c.labels.resolve(a, 'source class (--pairs)');
    const rb = c.labels.resolve(b, 'target class (--pairs)');
    if (ra.wnid === rb.wnid) throw new PatchAtlasError('BAD_FLAG', `--pairs names "${LabelSet.display(ra)}" twice in one pair`);
    return { a: ra.index - off, b: rb.index - off };
  });
  return listPairs(resolved, cands).pairs;
}

/** "A:B,C:D", or a file with one "A,B" / "A:B" pair per line (a header line "source,target" is skipped). */
async function namedPairs(v: string): Promise<Array<[string, string]>> {
  let text = v;
  if (existsSync(v)) {
    text = (await readTextFile(v)).split(/\r?\n/).filter((l) => l.trim() && !/^\s*source\s*[,:]\s*target\s*$/i.test(l)).join(',');
  }
  const pairs = text.split(/,(?=[^,:]*[:])|\n/).map((s) => s.trim()).filter(Boolean);
  return pairs.map((s) => {
    const parts = s.split(/[:,]/).map((x) => x.trim());
    if (parts.length !== 2 || parts.some((x) => !x)) throw new PatchAtlasError('BAD_FLAG', `--pairs "${s}" is not a pair "A:B"`, 'e.g. --pairs "grey whale:great white shark,frying pan:wok", or a file with one pair per line');
    return parts as [string, string];
  });
}

// ---- one test: a pair on one image ---------------------------------------------------------------

interface PreparedTest {
  pair: PlannedPair;
  item: ImageItem;
  key: string;
  sha256: string;
  heldRows: number;
  atlas: { points: number; cells: number };
  cells: ScreenCells;
  refs: Map<'bridge' | 'random' | 'bTypical', { ref: ScreenCellRef; meanAct: Float32Array }>;
  whitening: Whitening | null;
  /** Crop sources: run rows (for exemplar, exemplar-random, crop-B). */
  crops: Map<ScreenKind, number>;
}

async function prepareTest(ctx: RunData, item: ImageItem, pair: PlannedPair, p: ScreenParams): Promise<PreparedTest> {
  const [sha] = await fileSha256s([item.path]);
  if (!sha) throw new PatchAtlasError('BAD_IMAGE', `cannot read ${item.path} to test pair ${pair.id}`);
  const key = `${pair.id}/${sha.slice(0, 16)}`;
  const N = ctx.image.length;
  // Held out: every row of an image with s's bytes (its own file, or a duplicate under another name).
  const heldImage = Uint8Array.from(ctx.paths, (path, i) => (ctx.hash[i] === sha || resolve(path) === resolve(item.path) ? 1 : 0));
  const keep: number[] = [];
  for (let r = 0; r < N; r++) if (!heldImage[ctx.image[r]!]) keep.push(r);
  const heldRows = N - keep.length;
  const { a, b } = pair;
  const col = (k: number, rows: readonly number[]) => Float32Array.from(rows, (r) => ctx.attr[r * ctx.K + k]!);
  const int = (arr: Int32Array, rows: readonly number[]) => Int32Array.from(rows, (r) => arr[r]!);
  // The atlas's own filter, on the kept rows only: s's rows cannot change which others are chosen.
  const chosenK = pairFilter({ attrA: col(a, keep), attrB: col(b, keep), winner: int(ctx.winner, keep), a, b, topN: p.topN });
  const rows = Array.from(chosenK, (k) => keep[k]!);
  const empty: PreparedTest = { pair, item, key, sha256: sha, heldRows, atlas: { points: rows.length, cells: 0 }, cells: { aPoints: 0, bPoints: 0, hasBridge: false, noBridge: `only ${rows.length} atlas points`, bridge: null, random: null, bTypical: null }, refs: new Map(), whitening: null, crops: new Map() };
  if (rows.length < 3) return empty;
  const acts = new Float32Array(rows.length * ctx.C);
  rows.forEach((r, k) => acts.set(ctx.acts.subarray(r * ctx.C, (r + 1) * ctx.C), k * ctx.C));
  const attrA = col(a, rows);
  const attrB = col(b, rows);
  const result = await pairAtlas({
    acts,
    C: ctx.C,
    label: int(ctx.label, rows),
    image: int(ctx.image, rows),
    pred: int(ctx.pred, rows),
    attrA,
    attrB,
    winner: int(ctx.winner, rows),
    a,
    b,
    topN: p.topN,
    points: Int32Array.from(rows, (_, k) => k),
    grid: p.grid,
    minDensity: p.minDensity,
    umap: { seed: keyedSeed(p.seed, `umap/${key}`) },
    fromA: 'attribution',
  });
  const cells = screenCells(result, attrA, attrB, p.seed, key);
  const refs: PreparedTest['refs'] = new Map();
  const ref = (k: number | null) => {
    if (k === null) return undefined;
    const cell = result.cells[k]!;
    const bs = result.bridges.find((x) => x.cell === k)!;
    return { ref: { i: cell.i, j: cell.j, count: cell.count, rank: bs.rank, score: finite(bs.score), towardB: finite(bs.towardB) }, meanAct: cell.meanAct };
  };
  for (const [name, k] of [['bridge', cells.bridge], ['random', cells.random], ['bTypical', cells.bTypical]] as const) {
    const r = ref(k);
    if (r) refs.set(name, r);
  }
  const test: PreparedTest = { ...empty, atlas: { points: result.points.length, cells: result.cells.length }, cells, refs };
  if (!cells.hasBridge) return test;

  // Whitening without s: block moments of the run, the blocks holding s's rows summed again without them
  // (never "all minus s", whose rounding would carry s's values into the icons).
  const moment = new Float64Array(ctx.C * ctx.C);
  ctx.moments.forEach((m, bi) => {
    const start = bi * MOMENT_ROWS;
    const rows = Array.from({ length: Math.min(MOMENT_ROWS, N - start) }, (_, k) => start + k);
    const kept = rows.filter((r) => !heldImage[ctx.image[r]!]);
    const part = kept.length === rows.length ? m : momentOf(ctx.acts, ctx.C, kept);
    for (let k = 0; k < moment.length; k++) moment[k]! += part[k]!;
  });
  for (let k = 0; k < moment.length; k++) moment[k]! /= keep.length;
  test.whitening = whiteningFromMoment(moment, ctx.C);

  // Crops: the nearest kept point among images of neither A nor B; for crop-B the most B-attributed point of a B image.
  const other = keep.filter((r) => ctx.labelOf[ctx.image[r]!]! >= 0 && ctx.labelOf[ctx.image[r]!] !== a && ctx.labelOf[ctx.image[r]!] !== b);
  const bridgeRef = refs.get('bridge');
  const randomRef = refs.get('random');
  if (bridgeRef) test.crops.set('exemplar', nearestRow(ctx.acts, ctx.C, other, bridgeRef.meanAct));
  if (randomRef) test.crops.set('exemplar-random', nearestRow(ctx.acts, ctx.C, other, randomRef.meanAct));
  let bestB = -1;
  for (const r of keep) if (ctx.labelOf[ctx.image[r]!] === b && (bestB < 0 || ctx.attr[r * ctx.K + b]! > ctx.attr[bestB * ctx.K + b]!)) bestB = r;
  test.crops.set('crop-B', bestB);
  return test;
}

const ICON_KINDS = [['icon', 'bridge'], ['icon-random', 'random'], ['icon-B', 'bTypical']] as const;

/** Every icon the prepared tests need, rendered as one batch; keyed by `${test.key}/${kind}`. */
async function renderIcons(c: Classifier, ctx: RunData, tests: PreparedTest[], p: ScreenParams): Promise<Map<string, Uint8Array>> {
  const jobs: Array<{ id: string; vec: Float32Array; w: Whitening }> = [];
  for (const t of tests) {
    if (!t.cells.hasBridge || !t.whitening) continue;
    for (const [kind, cell] of ICON_KINDS) {
      const r = t.refs.get(cell);
      if (r && p.kinds.includes(kind)) jobs.push({ id: `${t.key}/${kind}`, vec: r.meanAct, w: t.whitening });
    }
  }
  const out = new Map<string, Uint8Array>();
  if (jobs.length === 0) return out;
  // Each icon whitened by its own test's statistics, with a random stream of its own.
  const settings = { iconPx: p.patchPx, steps: p.iconSteps, tries: 1, cossimPower: p.cossimPower, seed: p.seed };
  const r = await renderDirections(c, ctx.m.layer, jobs.map((j) => whiten(j.w, j.vec)), settings, jobs.map((j) => keyedSeed(p.seed, `icon/${j.id}`)));
  jobs.forEach((j, k) => out.set(j.id, r.images[k]!));
  return out;
}

/** Pastes every kind at every placement on the tested image and records what the model says. */
async function measureTest(c: Classifier, ctx: RunData, t: PreparedTest, icons: Map<string, Uint8Array>, placements: Placement[], p: ScreenParams, out: string): Promise<ScreenTest> {
  const img = await decodeImage(t.item.path, c.preprocess);
  const [clean] = await classify(c, [img], t.pair, p.batchSize);
  const cellOf = (name: 'bridge' | 'random' | 'bTypical') => t.refs.get(name)?.ref ?? null;
  const base: ScreenTest = {
    image: t.item.path,
    sha256: t.sha256,
    heldRows: t.heldRows,
    clean: { pred: clean!.pred, pA: clean!.pA, pB: clean!.pB, logPB: clean!.logPB },
    atlas: { ...t.atlas, aPoints: t.cells.aPoints, bPoints: t.cells.bPoints, hasBridge: t.cells.hasBridge, noBridge: t.cells.noBridge, bridge: cellOf('bridge') },
    kinds: [],
  };
  if (!t.cells.hasBridge) return base;

  // Each kind's pixels at each size: icons, noise and flat are one image; crops are cut at the pasted size.
  const decoded = new Map<number, DecodedImage>();
  const cropSource = async (row: number) => {
    const im = ctx.image[row]!;
    if (!decoded.has(im)) decoded.set(im, await decodeImage(ctx.paths[im]!, c.preprocess));
    return decoded.get(im)!;
  };
  const kinds: Array<{ kind: ScreenKind; pixels: (size: number) => { data: Uint8Array; size: number }; cell: ScreenCellRef | null; crop: KindOutcome['crop'] }> = [];
  for (const [kind, cell] of ICON_KINDS) {
    const rgb = icons.get(`${t.key}/${kind}`);
    if (rgb) kinds.push({ kind, pixels: () => ({ data: rgb, size: p.patchPx }), cell: cellOf(cell), crop: null });
  }
  const noise = noisePatch(p.patchPx, keyedSeed(p.seed, `noise/${t.key}`)).rgb;
  kinds.push({ kind: 'noise', pixels: () => ({ data: noise, size: p.patchPx }), cell: null, crop: null });
  const flat = flatPatch(img, p.patchPx);
  kinds.push({ kind: 'flat', pixels: () => ({ data: flat, size: p.patchPx }), cell: null, crop: null });
  for (const kind of ['exemplar', 'exemplar-random', 'crop-B'] as const) {
    const row = t.crops.get(kind);
    if (row === undefined || row < 0) continue;
    const src = await cropSource(row);
    const win = (side: number): Window => windowAt(ctx.y[row]!, ctx.x[row]!, [ctx.H, ctx.W], c.inputSize, side);
    const sideOf = (size: number) => placements.find((pl) => pl.size === size)!.side;
    const staticSide = placements.find((pl) => pl.id === STATIC_PLACEMENT)!.side;
    const cell = kind === 'exemplar' ? cellOf('bridge') : kind === 'exemplar-random' ? cellOf('random') : null;
    const im = ctx.image[row]!;
    kinds.push({ kind, pixels: (size) => ({ data: cropRgb(src, win(sideOf(size))), size: sideOf(size) }), cell, crop: { image: ctx.paths[im]!, label: ctx.labelOf[im]! >= 0 ? ctx.m.classes[ctx.labelOf[im]!]! : null, y: ctx.y[row]!, x: ctx.x[row]!, window: win(staticSide) } });
  }
  kinds.sort((u, v) => SCREEN_KINDS.indexOf(u.kind) - SCREEN_KINDS.indexOf(v.kind));
  for (let k = kinds.length - 1; k >= 0; k--) if (!p.kinds.includes(kinds[k]!.kind)) kinds.splice(k, 1);

  // Every kind × placement pasted on s; one forward pass per batch.
  const pasted: DecodedImage[] = [];
  for (const k of kinds) for (const pl of placements) pasted.push({ ...img, data: pasteRgb(img, k.pixels(pl.size), pl) });
  const preds = await classify(c, pasted, t.pair, p.batchSize);
  const stat = placements.find((pl) => pl.id === STATIC_PLACEMENT)!;
  const rel = (kind: string) => `${PAIRS_DIR}/${t.pair.id}/${t.key.split('/')[1]}-${kind}.png`;
  const [A, B] = [t.pair.a, t.pair.b].map((k) => c.labels.atOutput(k + c.labels.offset)!.wnid);
  for (const [ki, k] of kinds.entries()) {
    // What the report shows: each patch as pasted at the static placement.
    const px = k.pixels(stat.size);
    await writePng(join(out, rel(k.kind)), px.data, px.size, px.size);
    const outcomes = placements.map((pl, j) => {
      const r = preds[ki * placements.length + j]!;
      return { placement: pl.id, pred: r.pred, logPB: r.logPB, flip: r.pred === B, left: r.pred !== A };
    });
    base.kinds.push({ kind: k.kind, file: rel(k.kind), cell: k.cell, crop: k.crop, placements: outcomes });
  }
  return base;
}

/** The model's answer on decoded images: predicted class (WordNet id), p(A), p(B) and log p(B) from the logits. */
async function classify(c: Classifier, images: readonly DecodedImage[], pair: PlannedPair, batchSize: number): Promise<Array<{ pred: string; pA: number; pB: number; logPB: number }>> {
  const out: Array<{ pred: string; pA: number; pB: number; logPB: number }> = [];
  const [h, w] = c.inputSize;
  const off = c.labels.offset;
  for (let s = 0; s < images.length; s += batchSize) {
    const batch = images.slice(s, s + batchSize);
    const x = tf.tensor4d(toFloatBatch(batch), [batch.length, h, w, 3]);
    const logits = await c.forwardLogits(x);
    const logp = tf.tidy(() => tf.logSoftmax(logits));
    tf.dispose([x, logits]);
    const data = logp.dataSync();
    logp.dispose();
    const m = c.labels.outputs;
    for (let i = 0; i < batch.length; i++) {
      let best = off;
      for (let j = off + 1; j < m; j++) if (data[i * m + j]! > data[i * m + best]!) best = j;
      const logPB = data[i * m + pair.b + off]!;
      out.push({ pred: c.labels.atOutput(best)!.wnid, pA: Math.exp(data[i * m + pair.a + off]!), pB: Math.exp(logPB), logPB });
    }
    await new Promise((r) => setImmediate(r));
  }
  return out;
}

// ---- small things ----------------------------------------------------------------------------------

const named = (k: { wnid: string; name: string; long: string }) => ({ wnid: k.wnid, name: LabelSet.display(k as never) });
const finite = (v: number) => (Number.isFinite(v) ? v : null);

function omit<T extends object, K extends keyof T>(o: T, ...keys: K[]): Omit<T, K> {
  const out = { ...o };
  for (const k of keys) delete out[k];
  return out;
}

/** One line per finished pair, for progress logs. */
function pairLine(r: ScreenPairRecord): string {
  const t = r.tests[0]!;
  if (!t.atlas.hasBridge) return `${r.id} ${r.source.name} → ${r.target.name}: no bridge (${t.atlas.noBridge})`;
  const flips = t.kinds.filter((k) => k.placements.some((pl) => pl.flip)).map((k) => k.kind);
  return `${r.id} ${r.source.name} → ${r.target.name}: p(B) ${t.clean.pB?.toFixed(3)}; flipped by ${flips.length ? flips.join(', ') : 'none'}`;
}

/** The folder holds this screen's plan (or nothing yet): a screen with other settings or pairs is never mixed in. */
async function claimFolder(dir: string, plan: Plan): Promise<void> {
  const file = join(dir, 'screen-plan.json');
  if (existsSync(file)) {
    const old = readFormat(planFormat, file);
    if (stableJson(old) !== stableJson(plan)) throw new PatchAtlasError('BAD_FLAG', `--out ${dir} holds a screen planned with other settings or pairs`, 'use another --out, or the same flags to resume it');
    return;
  }
  await writeFormat(planFormat, file, plan);
}
