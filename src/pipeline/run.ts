import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { readEnv, type Env } from '../config.js';
import { openDataset } from '../data/dataset.js';
import { splitItems } from '../data/split.js';
import { PatchAtlasError } from '../errors.js';
import { Classifier } from '../model/classifier.js';
import { loadDescriptor, loadLabels } from '../model/descriptor.js';
import { LabelSet } from '../model/labels.js';
import { checkPositions } from '../patch/placement.js';
import { resolvePair } from '../recipes/pair.js';
import { checkParams } from '../recipes/params.js';
import { packageVersion } from '../util/paths.js';
import { lazyProgress } from '../util/progress.js';
import { imageListHash, stageKey } from './hash.js';
import { RUN_PARAMS, type RunBudget, type RunOptions } from './options.js';
import type { PipelineContext, Stage, StageProgress } from './stage.js';
import { pipelineStages } from './stages/index.js';
import { fileDigests } from '../data/digest.js';
import { listPatchFiles } from '../data/patches.js';
import { PIPELINE_FORMAT, readPipelineState, STATE_FILE, writePipelineState, type PipelineState, type StageOutputs, type StageRecord } from '../formats/pipeline.js';
import { producer } from '../formats/producer.js';

export interface PipelineIO {
  /** Status lines: the budget, one line per stage, notes. */
  err: (s: string) => void;
  /** Where progress bars are drawn (only on a TTY). */
  errStream?: NodeJS.WriteStream;
}

export interface StageReport {
  name: string;
  key: string;
  /** Finished earlier with the same key: nothing was recomputed. */
  reused: boolean;
  /** Continued an interrupted run with the same key. */
  resumed: boolean;
  seconds: number;
  summary: string;
}

export interface RunResult {
  dir: string;
  /** report.html */
  report: string;
  stages: StageReport[];
  seconds: number;
}

export interface RunRuntime {
  env?: Env;
  /** Ctrl-C: the current stage stops at its next safe point (collect: after the current batch). */
  signal?: AbortSignal;
  /** The stage list (default: pipelineStages()); tests and future stages plug in here. */
  stages?: Stage[];
  /** Called as each stage starts (reused or not). */
  onStage?: (stage: Stage) => void;
}

/**
 * `patch-atlas run`: accuracy → collect → atlas → icons → evaluate → report, each stage cached by a
 * content key (its settings, the keys of the stages it reads, the tool version, the model and the
 * image list) recorded with its outputs in DIR/pipeline.json. A stage whose key and files are
 * unchanged is reused without loading the model; a changed key empties that stage's folder and
 * reruns it, and so (through the keys) everything after it; an interrupted stage with the same key
 * resumes in its folder.
 */
export async function runPipeline(opts: RunOptions, io: PipelineIO, rt: RunRuntime = {}): Promise<RunResult> {
  const t0 = Date.now();
  const stages = rt.stages ?? pipelineStages(opts);
  const ctx = await prepare(opts, io);
  const { dir } = ctx;
  const tool = packageVersion();
  const model = ctx.descriptor.name + (opts.weights ? `@${resolve(opts.weights)}` : '');
  const images = await imageListHash(ctx.dataset.items);

  await checkFolder(dir);
  await mkdir(dir, { recursive: true });
  const prev = readPipelineState(dir);
  const state: PipelineState = { format: PIPELINE_FORMAT, producer: producer(ctx.descriptor.name), tool, model, images: { source: ctx.dataset.source, count: ctx.dataset.items.length, hash: images }, stages: prev?.stages ?? {} };
  await writePipelineState(dir, state);

  io.err(`pipeline ${dir}: ${ctx.descriptor.name}, ${ctx.dataset.items.length} images (${ctx.split.train.length} for the atlas, ${ctx.split.test.length} held out), ${LabelSet.display(ctx.source)} → ${LabelSet.display(ctx.target)}`);
  io.err('budget (flags of `run --help` change it):');
  for (const [k, s] of stages.entries()) io.err(`  [${k + 1}/${stages.length}] ${s.budget(ctx)}`);

  const keys = new Map<string, string>();
  const outputs = new Map<string, StageOutputs>();
  const reports: StageReport[] = [];
  let classifier: Promise<Classifier> | undefined;
  const abs = (p: string) => resolve(dir, p);
  const rel = (p: string) => {
    const r = relative(dir, p);
    return r.startsWith('..') || isAbsolute(r) ? resolve(p) : r;
  };
  try {
    for (const [k, stage] of stages.entries()) {
      const label = `[${k + 1}/${stages.length}] ${stage.name}`;
      if (rt.signal?.aborted) throw interrupted(stage.name);
      rt.onStage?.(stage);
      const settings = stage.settings(ctx);
      const deps = Object.fromEntries(stage.deps.map((d) => {
        const key = keys.get(d);
        if (!key) throw new Error(`stage ${stage.name} depends on "${d}", which does not run before it`);
        return [d, key];
      }));
      const key = stageKey({ stage: stage.name, settings, deps, tool, model, images });
      keys.set(stage.name, key);
      const rec = state.stages[stage.name];
      if (reusable(rec, key, dir)) {
        outputs.set(stage.name, rec.outputs);
        reports.push({ name: stage.name, key, reused: true, resumed: false, seconds: 0, summary: 'reused' });
        io.err(`${label}: reused (${key.slice(0, 8)}, finished ${rec.finished ?? '?'})`);
        continue;
      }
      const stageDir = join(dir, stage.name);
      const resuming = rec?.key === key && rec.status === 'running' && existsSync(stageDir);
      if (!resuming) await rm(stageDir, { recursive: true, force: true });
      await mkdir(stageDir, { recursive: true });
      const started = Date.now();
      state.stages[stage.name] = { key, status: 'running', settings, deps, started: new Date(started).toISOString() };
      await writePipelineState(dir, state);
      if (resuming) io.err(`${label}: resuming an interrupted run`);
      let bar: StageProgress | undefined;
      const result = await stage.run({
        ...ctx,
        stageDir,
        resuming,
        classifier: () => (classifier ??= Classifier.load({ model: opts.model, backend: opts.backend, download: opts.download, env: rt.env ?? readEnv(), ...(opts.weights ? { weights: opts.weights } : {}) })),
        outputs: (name) => {
          const o = outputs.get(name);
          if (!o) throw new Error(`stage ${stage.name} reads "${name}", which it does not depend on`);
          return o;
        },
        abs,
        rel,
        progress: (unit) => (bar = stageBar(label, io, unit)),
        signal: rt.signal ?? new AbortController().signal,
        note: (n) => io.err(`note: ${n}`),
      });
      bar?.done();
      const seconds = (Date.now() - started) / 1000;
      if (result.interrupted) {
        io.err(`${label}: ${result.summary}`);
        throw interrupted(stage.name);
      }
      const { summary, interrupted: _, ...out } = result;
      state.stages[stage.name] = { ...state.stages[stage.name]!, status: 'done', finished: new Date().toISOString(), seconds, outputs: out };
      await writePipelineState(dir, state);
      outputs.set(stage.name, out);
      reports.push({ name: stage.name, key, reused: false, resumed: resuming, seconds, summary });
      io.err(`${label}: ${summary} (${seconds.toFixed(1)} s)`);
    }
  } finally {
    if (classifier) (await classifier.catch(() => undefined))?.dispose();
  }
  const last = outputs.get(stages[stages.length - 1]!.name);
  const report = last?.files.html ? abs(last.files.html) : '';
  return { dir, report, stages: reports, seconds: (Date.now() - t0) / 1000 };
}

/** Everything the stages' settings depend on, checked before any stage runs. */
async function prepare(opts: RunOptions, io: PipelineIO): Promise<PipelineContext> {
  const budget = Object.fromEntries(Object.keys(RUN_PARAMS).map((k) => [k, opts[k as keyof RunBudget]])) as Partial<RunBudget>;
  checkParams(RUN_PARAMS, budget);
  checkPositions(opts.placements);
  const descriptor = loadDescriptor(opts.model);
  const labels = loadLabels(descriptor);
  const { source, target } = resolvePair(labels, opts.pair[0], opts.pair[1]);
  const layer = opts.layer ? (descriptor.layers.aliases[opts.layer] ?? opts.layer) : descriptor.layers.default;
  const dataset = await openDataset(opts.images, labels);
  if (dataset.skipped.length) io.err(`warning: ${dataset.skipped.length} entr${dataset.skipped.length === 1 ? 'y' : 'ies'} of ${opts.images} skipped, e.g. ${dataset.skipped[0]!.path}: ${dataset.skipped[0]!.reason}`);
  const split = splitItems(dataset.items, { testFraction: opts.testFraction, seed: opts.seed });
  if (split.train.length === 0 || split.test.length === 0) {
    throw new PatchAtlasError('NO_IMAGES', `${dataset.items.length} image${dataset.items.length === 1 ? '' : 's'} in ${opts.images} cannot be split into an atlas half and a held-out half`, 'give more images');
  }
  const files = await patchFiles(opts.patches);
  const digests = await fileDigests(files);
  const photoPatches = files.map((path, i) => ({ path, ...digests[i]! }));
  return { dir: resolve(opts.out), opts, descriptor, labels, source, target, layer, dataset, split, photoPatches };
}

/** Patch files for --patches, absolute, in loadPatches' order. */
async function patchFiles(paths: readonly string[]): Promise<string[]> {
  return (await listPatchFiles(paths)).map((f) => resolve(f));
}

/** Refuse to take over a folder with other content: a changed stage empties its sub-folder. */
async function checkFolder(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const s = await stat(dir);
  if (!s.isDirectory()) throw new PatchAtlasError('BAD_FLAG', `--out ${dir} is a file`, 'give a folder for the pipeline');
  const entries = await readdir(dir);
  if (entries.length && !entries.includes(STATE_FILE)) {
    throw new PatchAtlasError('BAD_FLAG', `--out ${dir} is not empty and holds no ${STATE_FILE}`, 'give a new folder (or one an earlier `run` wrote)');
  }
}

function interrupted(stage: string): PatchAtlasError {
  return new PatchAtlasError('BAD_RUN', `interrupted during ${stage}`, 're-run the same command to resume (finished stages are kept)');
}

function stageBar(label: string, io: PipelineIO, unit?: string): StageProgress {
  return lazyProgress(label, { ...(io.errStream ? { stream: io.errStream } : { enabled: false }), ...(unit ? { unit } : {}) });
}

/** A finished stage whose key matches and whose files are all still there. */
function reusable(rec: StageRecord | undefined, key: string, dir: string): rec is StageRecord & { outputs: StageOutputs } {
  if (!rec || rec.key !== key || rec.status !== 'done' || !rec.outputs) return false;
  const files = [...Object.values(rec.outputs.files), ...(rec.outputs.patches ?? [])];
  return files.every((f) => existsSync(join(dir, f)));
}
