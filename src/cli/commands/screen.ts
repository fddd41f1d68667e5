import type { Argv, CommandModule } from 'yargs';
import { parseShard } from '../../formats/run/index.js';
import { checkParams } from '../../recipes/params.js';
import { SCREEN_PARAMS, screen, type ScreenParams } from '../../recipes/screen.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, progressBar, withModel, type ModelArgs } from '../options.js';
import { modelOfRun } from '../../recipes/recorded.js';

interface ScreenArgs extends ModelArgs {
  run: string;
  images: string;
  pairs: string;
  maxPairs: number;
  sensitivity: boolean;
  kinds?: string;
  seed: number;
  patchPx: number;
  iconSteps: number;
  grid: number;
  topN: number;
  out: string;
  shard?: string;
  batchSize: number;
  json: boolean;
}

export function screenCommand(io: CliIO): CommandModule {
  const d = SCREEN_PARAMS;
  return {
    command: 'screen',
    describe: 'do bridges make patches? The patch experiment pooled over many class pairs, each tested on an image held out of its atlas, against matched controls',
    builder: (y: Argv) =>
      withModel(y)
        .option('run', { type: 'string', demandOption: true, describe: 'collect run of the atlas layer (one run serves every pair; each pair holds its tested image out of it)' })
        .option('images', { type: 'string', demandOption: true, describe: 'labelled images: the tested images, the exemplar and B crops' })
        .option('pairs', { type: 'string', default: d.pairs.default, describe: '"auto" (B = the runner-up on each tested image), "A:B,C:D", or a file with one pair per line' })
        .option('max-pairs', { type: 'number', default: d.maxPairs.default, describe: 'auto: pairs to draw (a seeded sample of the correctly classified images)' })
        .option('sensitivity', { type: 'boolean', default: d.sensitivity.default, describe: 'auto: also the sensitivity set (B = the class nearest A by final-layer weights); --no-sensitivity to skip' })
        .option('kinds', { type: 'string', describe: `patch kinds to measure, comma-separated (default all: ${d.kinds.default.join(', ')})` })
        .option('seed', { type: 'number', default: d.seed.default, describe: 'seed of the pair sample, the icons, the noise patches and the random cells' })
        .option('patch-px', { type: 'number', default: d.patchPx.default, describe: 'side of the icon, noise and flat patches in pixels' })
        .option('icon-steps', { type: 'number', default: d.iconSteps.default, describe: 'optimisation steps per icon' })
        .option('grid', { type: 'number', default: d.grid.default, describe: 'pair atlas grid size G (G×G cells)' })
        .option('top-n', { type: 'number', default: d.topN.default, describe: 'points kept per class by attribution in each pair atlas' })
        .option('out', { type: 'string', demandOption: true, describe: 'screen folder (re-run the same command to resume)' })
        .option('shard', { type: 'string', describe: 'i/N: measure every N-th pair (join the shard folders with `merge`)' })
        .option('batch-size', { type: 'number', default: d.batchSize.default, describe: 'images per forward pass' })
        .option('json', { type: 'boolean', default: false, describe: 'print the pooled analysis as JSON' })
        .example('$0 screen --run runs/pw11 --images ../shared/data/imagenet-sample --max-pairs 300 --out screens/auto', '300 runner-up pairs and their sensitivity twins'),
    handler: async (raw) => {
      const a = raw as unknown as ScreenArgs;
      const kinds = a.kinds?.split(',').map((k) => k.trim()) as ScreenParams['kinds'] | undefined;
      const params = checkParams(SCREEN_PARAMS, { ...(kinds ? { kinds } : {}), pairs: a.pairs, maxPairs: a.maxPairs, sensitivity: a.sensitivity, seed: a.seed, patchPx: a.patchPx, iconSteps: a.iconSteps, grid: a.grid, topN: a.topN, batchSize: a.batchSize });
      const shard = a.shard ? parseShard(a.shard) : null;
      const c = await loadFromArgs(a, io, a.json, a.model === undefined ? await modelOfRun(a.run) : undefined);
      try {
        const skips = skipReporter(io, a.json);
        const bar = progressBar(io, `screen${shard ? ` ${a.shard}` : ''}`, !a.json, 'pair');
        const r = await screen({
          classifier: c,
          run: a.run,
          images: a.images,
          out: a.out,
          params,
          shard,
          onSkip: skips.onSkip,
          onEvent: (e) => {
            if (a.json) return;
            if (e.kind === 'plan') io.err(`screen ${a.out}: ${e.pairs} pairs${shard ? ` in shard ${a.shard}` : ''}, ${e.done} already measured, ${e.todo} to measure (${e.tests} tested images, ≤${e.passes.toLocaleString('en-US')} forward passes and 3 icons each)`);
            else {
              io.err(e.line);
              bar.update(e.done, e.total);
            }
          },
        });
        bar.done();
        if (!r.file) return io.out(`${a.out}: shard ${a.shard} done (${r.measured} pairs measured, ${r.reused} kept); join the shards with \`patch-atlas merge SHARD... --out DIR\``);
        if (a.json) return io.out(JSON.stringify({ files: r.files, sets: r.file.sets.map((s) => ({ name: s.name, analysis: s.analysis })) }, null, 2));
        const { screenSummary } = await import('../../screen/summary.js');
        for (const line of screenSummary(r.file)) io.out(line);
        io.out(`results: ${r.files!.json}, ${r.files!.csv}`);
      } finally {
        c.dispose();
      }
    },
  };
}
