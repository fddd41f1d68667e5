import type { Argv, CommandModule } from 'yargs';
import { parsePositions } from '../../attribution/positions.js';
import { readEnv } from '../../config.js';
import { PatchAtlasError } from '../../errors.js';
import { articlePhotoPatches, DEMO } from '../../pipeline/demo.js';
import { RUN_DEFAULTS, type RunBudget, type RunOptions } from '../../pipeline/options.js';
import type { RunResult } from '../../pipeline/run.js';
import type { Stage } from '../../pipeline/stage.js';
import { sampleImages } from '../../data/sample-images.js';
import type { CliIO } from '../io.js';
import { numberList, progressBar, withModel, type ModelArgs } from '../options.js';
import { parsePair } from '../../recipes/pair.js';
import { DEFAULT_MODEL } from '../../model/descriptor.js';

/** The budget flags as yargs gives them: RunBudget, with lists and counts still as text. */
export interface RunArgs extends ModelArgs, Omit<RunBudget, 'positions' | 'sizes' | 'placements' | 'evalImages'> {
  images?: string;
  pair?: string;
  patches?: string[];
  out?: string;
  layer?: string;
  positions: string;
  sizes: string;
  placements: string;
  evalImages: string;
  title?: string;
}

/** The budget flags `run` and `demo` share (defaults: RUN_DEFAULTS, sized for the 1000 sample images on 2 cores). */
export function withRunOptions<T>(y: Argv<T>) {
  const d = RUN_DEFAULTS;
  return withModel(y)
    .option('patches', { type: 'string', array: true, describe: 'photo patches (files or folders) evaluated beside the atlas patches, as controls' })
    .option('out', { type: 'string', describe: 'pipeline folder: pipeline.json and one folder per stage (default: reports/<A>-to-<B>)' })
    .option('layer', { type: 'string', describe: 'layer to collect (default: the model\'s atlas layer)' })
    .option('positions', { type: 'string', default: String(d.positions), describe: 'positions collected per image: a number, or "all"' })
    .option('seed', { type: 'number', default: d.seed, describe: 'seed of the split, position sampling, UMAP, icons and noise patch' })
    .option('test-fraction', { type: 'number', default: d.testFraction, describe: 'share of the images held out for evaluation; the rest build the atlas' })
    .option('grid', { type: 'number', default: d.grid, describe: 'pair atlas grid size G (G×G cells)' })
    .option('min-density', { type: 'number', default: d.minDensity, describe: 'points an atlas cell needs to be kept' })
    .option('icons', { type: 'number', default: d.icons, describe: 'icons (and icon patches) for this many top bridge cells' })
    .option('icon-px', { alias: 'icon-size', type: 'number', default: d.iconPx, describe: 'icon side in pixels' })
    .option('icon-steps', { type: 'number', default: d.iconSteps, describe: 'optimisation steps per icon' })
    .option('icon-power', { type: 'number', default: d.iconPower, describe: 'cosine exponent of the icon objective' })
    .option('eot-steps', { type: 'number', default: d.eotSteps, describe: 'also optimise EOT patches (from the top bridge icons and from noise) for this many steps each; 0 skips that stage (minutes per 100 steps on 2 cores)' })
    .option('eot-cells', { type: 'number', default: d.eotCells, describe: 'top bridge cells that get an EOT patch (with --eot-steps)' })
    .option('sizes', { type: 'string', default: d.sizes.join(','), describe: 'patch sides as fractions of the image side' })
    .option('placements', { type: 'string', default: d.placements.join(','), describe: 'where patches are pasted (corners, centre)' })
    .option('eval-images', { type: 'string', default: String(d.evalImages), describe: 'held-out images evaluated (a class-stratified subsample): a number, "all", or "auto" (as many as --eval-passes allow, at least 16)' })
    .option('eval-passes', { type: 'number', default: d.evalPasses, describe: 'forward-pass budget of --eval-images auto: images × (1 + patches × placements)' })
    .option('eval-mode', { choices: ['auto', 'targeted', 'universal'] as const, default: d.evalMode, describe: 'targeted: source-class images only; universal: every image not of the target; auto: targeted with ≥10 held-out source images' })
    .option('batch-size', { type: 'number', default: d.batchSize, describe: 'images per forward pass' })
    .option('icon-cells', { choices: ['bridges', 'all'] as const, default: d.iconCells, describe: 'icons for the top --icons bridge cells only, or for every atlas cell (a full atlas picture; the top --icons still become patches)' })
    .option('screen-pairs', { type: 'number', default: d.screenPairs, describe: 'also screen this many auto class pairs (and their sensitivity twins), each tested on an image held out of its atlas; 0 skips the screen' })
    .option('png', { type: 'boolean', default: d.png, describe: 'also write the report charts as PNG (--no-png to skip)' })
    .option('title', { type: 'string', describe: 'report title (default: the classes and model)' });
}

const slug = (s: string) => s.replace(/[^\w.-]+/g, '_').replace(/^_+|_+$/g, '');

/** Command-line arguments → RunOptions (images, pair and photo patches given by the caller). */
export function runOptions(a: RunArgs, images: string, pair: [string, string], patches: string[], defaultOut: string): RunOptions {
  const evalImages = a.evalImages === 'all' || a.evalImages === 'auto' ? a.evalImages : Number(a.evalImages);
  if (typeof evalImages === 'number' && !(Number.isInteger(evalImages) && evalImages >= 1)) throw new PatchAtlasError('BAD_FLAG', `--eval-images ${a.evalImages} must be a whole number >= 1, "all" or "auto"`);
  return {
    images,
    pair,
    out: a.out ?? defaultOut,
    model: a.model ?? DEFAULT_MODEL,
    ...(a.weights ? { weights: a.weights } : {}),
    backend: a.backend,
    download: !a.offline,
    patches,
    ...(a.layer ? { layer: a.layer } : {}),
    positions: parsePositions(a.positions),
    seed: a.seed,
    testFraction: a.testFraction,
    grid: a.grid,
    minDensity: a.minDensity,
    icons: a.icons,
    iconPx: a.iconPx,
    iconSteps: a.iconSteps,
    iconPower: a.iconPower,
    eotSteps: a.eotSteps,
    eotCells: a.eotCells,
    sizes: numberList('sizes', a.sizes),
    placements: a.placements.split(',').map((s) => s.trim()),
    evalImages,
    evalPasses: a.evalPasses,
    evalMode: a.evalMode,
    batchSize: a.batchSize,
    screenPairs: a.screenPairs,
    iconCells: a.iconCells,
    png: a.png,
    ...(a.title ? { title: a.title } : {}),
  };
}

/** Runs the pipeline with Ctrl-C wired to a clean stop, prints the stage times and the report path. */
export async function runWithSignals(opts: RunOptions, io: CliIO): Promise<RunResult> {
  const { runPipeline } = await import('../../pipeline/run.js');
  const abort = new AbortController();
  let current: Stage | undefined;
  const onSigint = () => {
    // Every stage writes atomically and pipeline.json marks it running, so stopping at once is safe: a
    // re-run reuses the finished stages and redoes (collect: resumes) this one. Collect stops at the
    // end of its batch unless asked twice.
    if (abort.signal.aborted || !current?.stopsOnSignal) {
      io.err(`\ninterrupted${current ? ` during ${current.name}` : ''}; re-run the same command to resume (finished stages are kept)`);
      process.exit(130);
    }
    abort.abort();
    io.err(`\ninterrupted: ${current.name} stops after its current batch; re-run the same command to resume`);
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await runPipeline(opts, { err: io.err, errStream: io.errStream }, { signal: abort.signal, onStage: (s) => (current = s) });
    const ran = r.stages.filter((s) => !s.reused);
    io.err(`done in ${r.seconds.toFixed(1)} s: ${r.stages.map((s) => `${s.name} ${s.reused ? 'reused' : `${s.seconds.toFixed(1)} s`}`).join(', ')}${ran.length ? '' : ' (nothing recomputed)'}`);
    io.out(r.report);
    return r;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export function runCommand(io: CliIO): CommandModule {
  return {
    command: 'run',
    describe: 'every stage in order (accuracy, collect, atlas, icons, evaluate, report) with content-hash caching; prints the report path',
    builder: (y: Argv) =>
      withRunOptions(y)
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest' })
        .option('pair', { type: 'string', demandOption: true, describe: '"A:B": source class A, target class B' })
        .example('$0 run --images ../shared/data/imagenet-sample --pair "grey whale:great white shark"', 'atlas, icon patches, flip rates and the report; re-running reuses every finished stage')
        .example('$0 run --images ./imgs --pair "grey whale:great white shark" --sizes 0.3,0.5', 'only the evaluation and the report are recomputed'),
    handler: async (raw) => {
      const a = raw as unknown as RunArgs;
      const pair = parsePair(a.pair!);
      await runWithSignals(runOptions(a, a.images!, pair, a.patches ?? [], `reports/${slug(pair[0])}-to-${slug(pair[1])}`), io);
    },
  };
}

export function demoCommand(io: CliIO): CommandModule {
  return {
    command: 'demo',
    describe: `the built-in default: \`run\` with ${DEMO.model} on the ImageNet sample images, ${DEMO.pair[0]} → ${DEMO.pair[1]}; prints the report path`,
    builder: (y: Argv) =>
      withRunOptions(y)
        .option('screen-pairs', { type: 'number', default: DEMO.screenPairs, describe: 'screen this many auto class pairs (and their sensitivity twins); 0 skips the screen' })
        .option('icon-cells', { choices: ['bridges', 'all'] as const, default: DEMO.iconCells, describe: 'icons for the top bridge cells only, or for every atlas cell (the atlas picture)' })
        .example('PATCH_ATLAS_MODELS=../shared/models PATCH_ATLAS_DATA=../shared/data $0 demo', 'weights and images from ../shared; without them both are downloaded into ~/.cache/patch-atlas'),
    handler: async (raw) => {
      const a = raw as unknown as RunArgs;
      const env = readEnv();
      const bar = progressBar(io, 'download', true, 'file');
      const sample = await sampleImages(env, {
        offline: a.offline,
        onStart: (url, dest, missing) => io.err(`downloading ${missing} ImageNet sample images from ${url} into ${dest} ...`),
        onProgress: bar.update,
      });
      bar.done();
      const patches = a.patches ?? (await articlePhotoPatches(env));
      io.err(`demo: ${sample.dir} (${sample.source === 'data' ? 'PATCH_ATLAS_DATA' : sample.source === 'cache' ? 'downloaded earlier' : 'downloaded now'})${patches.length ? `, ${patches.length} photo patches as controls` : ''}`);
      await runWithSignals(runOptions(a, sample.dir, [...DEMO.pair], patches, DEMO.out), io);
    },
  };
}
