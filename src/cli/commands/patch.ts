import { dirname, join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { PatchAtlasError } from '../../errors.js';
import { BRIDGE_PATCHES, SYNTH_DEFAULTS, synthesisePatches } from '../../patch/synthesise.js';
import { progress } from '../../util/progress.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

interface PatchArgs extends ModelArgs {
  atlas: string;
  cells: string;
  out?: string;
  images: string;
  side: number;
  steps: number;
  batchSize: number;
  lr?: number;
  iconSteps: number;
  power: number;
  sizesRange: string;
  maxRotation: number;
  seed: number;
  testFraction: number;
  splitSeed: number;
  noise: boolean;
  force: boolean;
  json: boolean;
}

const bad = (msg: string, hint?: string) => new PatchAtlasError('BAD_FLAG', msg, hint);

function parseCells(v: string): 'bridges' | number {
  if (v === 'bridges') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw bad(`--cells ${v} must be "bridges" (the top ${BRIDGE_PATCHES}) or a number of top-ranked bridge cells`);
  return n;
}

function parseRange(v: string): [number, number] {
  const parts = v.split(',').map((s) => s.trim());
  const [lo, hi] = parts.map(Number);
  if (parts.length !== 2 || parts.some((s) => !s) || !(lo! > 0 && hi! <= 1 && lo! <= hi!)) {
    throw bad(`--sizes-range ${v} must be two fractions of the image side, lo,hi with 0 < lo ≤ hi ≤ 1`, 'e.g. --sizes-range 0.2,0.5');
  }
  return [lo!, hi!];
}

export function patchCommand(io: CliIO): CommandModule {
  return {
    command: 'patch',
    describe: 'icon patches and EOT-optimised patches (from each icon and from noise) for the top bridge cells of a pair atlas',
    builder: (y: Argv) =>
      withModel(y)
        .option('atlas', { type: 'string', demandOption: true, describe: 'atlas.json of a pair atlas (`patch-atlas atlas --pair A:B`); patches target class B' })
        .option('cells', { type: 'string', default: 'bridges', describe: `"bridges" (the top ${BRIDGE_PATCHES}) or N top-ranked bridge cells` })
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest; its train side trains the EOT patches' })
        .option('out', { type: 'string', describe: 'folder for the patches and split.json (default: patches/ beside atlas.json)' })
        .option('side', { type: 'number', default: SYNTH_DEFAULTS.side, describe: 'patch side in pixels (icons are rendered at this size)' })
        .option('steps', { type: 'number', default: SYNTH_DEFAULTS.steps, describe: 'EOT optimisation steps per patch; 0 writes icon patches only' })
        .option('batch-size', { type: 'number', default: SYNTH_DEFAULTS.batchSize, describe: 'images per EOT step' })
        .option('lr', { type: 'number', describe: 'Adam learning rate on the patch logits (default 0.1)' })
        .option('icon-steps', { type: 'number', default: SYNTH_DEFAULTS.iconSteps, describe: 'optimisation steps per icon' })
        .option('power', { type: 'number', default: SYNTH_DEFAULTS.cossimPower, describe: 'cosine exponent of the icon objective (as `icons --power`)' })
        .option('sizes-range', { type: 'string', default: SYNTH_DEFAULTS.sizeRange.join(','), describe: 'EOT patch side drawn from lo,hi (fractions of the image side)' })
        .option('max-rotation', { type: 'number', default: SYNTH_DEFAULTS.maxRotation, describe: 'EOT rotation drawn from ±this many degrees' })
        .option('seed', { type: 'number', default: SYNTH_DEFAULTS.seed, describe: 'seed of the icons, the noise start and the EOT batches and placements' })
        .option('test-fraction', { type: 'number', default: SYNTH_DEFAULTS.testFraction, describe: 'share of --images held out for evaluation (not trained on)' })
        .option('split-seed', { type: 'number', default: SYNTH_DEFAULTS.splitSeed, describe: 'seed of the train/test split' })
        .option('noise', { type: 'boolean', default: true, describe: 'also optimise a patch from noise, for comparison; --no-noise to skip' })
        .option('force', { type: 'boolean', default: false, describe: 're-make patches that already exist (and replace a split.json made with other settings)' })
        .option('json', { type: 'boolean', default: false, describe: 'print a JSON summary' })
        .example('$0 patch --atlas runs/pw11/atlas-grey_whale-vs-great_white_shark/atlas.json --images ./val --out patches/whale-shark', 'icon + EOT patches for the top 3 bridge cells, and an EOT patch from noise')
        .example('$0 evaluate --patches patches/whale-shark --split patches/whale-shark/split.json --images ./val --source "grey whale" --target "great white shark"', 'then measure them on the held-out images'),
    handler: async (raw) => {
      const a = raw as unknown as PatchArgs;
      const cells = parseCells(a.cells);
      const sizeRange = parseRange(a.sizesRange);
      for (const [flag, v, min] of [['side', a.side, 8], ['steps', a.steps, 0], ['batch-size', a.batchSize, 1], ['icon-steps', a.iconSteps, 0]] as const) {
        if (!Number.isInteger(v) || v < min) throw bad(`--${flag} ${v} must be a whole number >= ${min}`);
      }
      if (a.side > 1024) throw bad(`--side ${a.side} is over 1024 px`, 'the patch is resampled to each placement; 32–128 px is plenty');
      if (a.lr !== undefined && !(a.lr > 0 && Number.isFinite(a.lr))) throw bad(`--lr ${a.lr} must be a positive number`, 'e.g. 0.1');
      if (!(a.power >= 0)) throw bad(`--power ${a.power} must be >= 0`);
      if (!(a.maxRotation >= 0 && a.maxRotation <= 180)) throw bad(`--max-rotation ${a.maxRotation} must be between 0 and 180 degrees`);
      if (!(a.testFraction > 0 && a.testFraction < 1)) throw bad(`--test-fraction ${a.testFraction} must be between 0 and 1 (exclusive)`, 'e.g. 0.5');
      for (const [flag, v] of [['seed', a.seed], ['split-seed', a.splitSeed]] as const) {
        if (!Number.isInteger(v)) throw bad(`--${flag} ${v} must be a whole number`);
      }
      const out = a.out ?? join(dirname(a.atlas), 'patches');
      const c = await loadFromArgs(a, io, a.json);
      try {
        const skips = skipReporter(io, a.json);
        let bar: ReturnType<typeof progress> | undefined;
        const r = await synthesisePatches({
          classifier: c,
          atlas: a.atlas,
          cells,
          out,
          images: a.images,
          side: a.side,
          steps: a.steps,
          batchSize: a.batchSize,
          ...(a.lr !== undefined ? { lr: a.lr } : {}),
          iconSteps: a.iconSteps,
          cossimPower: a.power,
          sizeRange,
          maxRotation: a.maxRotation,
          seed: a.seed,
          testFraction: a.testFraction,
          splitSeed: a.splitSeed,
          noise: a.noise,
          force: a.force,
          onSkip: skips.onSkip,
          onEvent: (e) => {
            if (a.json) return;
            if (e.kind === 'plan') {
              io.err(`${e.make} patch${e.make === 1 ? '' : 'es'} to make, ${e.keep} already in ${out}`);
              if (e.eotSteps) bar = progress('eot', e.eotSteps, { enabled: true, stream: io.errStream, unit: 'step' });
            } else if (e.kind === 'step') bar?.tick();
            else io.err(`${e.status === 'kept' ? 'kept   ' : 'wrote  '} ${e.png}`);
          },
        });
        bar?.done();
        if (a.json) return io.out(JSON.stringify(r, null, 2));
        io.out(`${r.patches.length} patches for ${r.source.name} → ${r.target.name} in ${r.out} (${r.patches.filter((p) => p.kept).length} kept); split ${r.split}: ${r.train} train (${r.trainPool} used), ${r.test} held out`);
        for (const p of r.patches) {
          const cell = p.cell ? ` cell (${p.cell.i},${p.cell.j}) rank ${p.cell.rank}` : '';
          const pt = p.pTarget !== undefined ? `; p(target) ${(p.pTarget * 100).toFixed(1)} % at the end of training` : '';
          io.out(`  ${p.name}: ${p.kind}${cell}${p.init ? ` from ${p.init}` : ''}${pt}`);
        }
        io.out(`next: patch-atlas evaluate --patches ${r.out} --split ${r.split} --images ${a.images} --source "${r.source.name}" --target "${r.target.name}"`);
      } finally {
        c.dispose();
      }
    },
  };
}
