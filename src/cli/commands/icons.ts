import type { Argv, CommandModule } from 'yargs';
import { PatchAtlasError } from '../../errors.js';
import { renderAtlasIcons, type CellSelection } from '../../featurevis/atlas-icons.js';
import { progress } from '../../util/progress.js';
import type { CliIO } from '../io.js';
import { wholeNumber } from '../validate.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

interface IconsArgs extends ModelArgs {
  atlas: string;
  cells: string;
  size: number;
  steps: number;
  tries: number;
  batch: number;
  power: number;
  seed: number;
  force: boolean;
  json: boolean;
}

function parseCells(v: string): CellSelection {
  if (v === 'all' || v === 'bridges') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PatchAtlasError('BAD_FLAG', `--cells ${v} must be "all", "bridges" or a number of top-ranked cells`);
  return n;
}

export function iconsCommand(io: CliIO): CommandModule {
  return {
    command: 'icons',
    describe: 'feature-visualisation icon per atlas cell, and the atlas picture',
    builder: (y: Argv) =>
      withModel(y)
        .option('atlas', { type: 'string', demandOption: true, describe: 'atlas.json written by `patch-atlas atlas`' })
        .option('cells', { type: 'string', default: 'bridges', describe: '"all", "bridges" (the 10 top-ranked) or N top-ranked cells' })
        .option('size', { type: 'number', default: 96, describe: 'icon side in pixels' })
        .option('steps', { type: 'number', default: 512, describe: 'optimisation steps per icon' })
        .option('tries', { type: 'number', default: 1, describe: 'independent tries per icon; the best is kept' })
        .option('batch', { type: 'number', default: 8, describe: 'icons optimised together' })
        .option('power', { type: 'number', default: 2, describe: 'cosine exponent p in dot(h,v)·max(0.1,cos)^p (article: 2–4)' })
        .option('seed', { type: 'number', default: 0 })
        .option('force', { type: 'boolean', default: false, describe: 're-render cells that already have an icon' })
        .option('json', { type: 'boolean', default: false })
        .example('$0 icons --atlas runs/pw11/atlas-grey_whale-vs-great_white_shark/atlas.json', 'icons for the top bridge cells, then atlas.png'),
    handler: async (raw) => {
      const a = raw as unknown as IconsArgs;
      const cells = parseCells(a.cells);
      for (const [flag, v, min] of [['size', a.size, 16], ['steps', a.steps, 0], ['tries', a.tries, 1], ['batch', a.batch, 1]] as const) wholeNumber(flag, v, min);
      if (!(a.power >= 0)) throw new PatchAtlasError('BAD_FLAG', `--power ${a.power} must be >= 0`);
      const c = await loadFromArgs(a, io, a.json);
      try {
        let bar: ReturnType<typeof progress> | undefined;
        let last = 0;
        const r = await renderAtlasIcons(c, {
          atlas: a.atlas,
          cells,
          size: a.size,
          steps: a.steps,
          tries: a.tries,
          batch: a.batch,
          cossimPower: a.power,
          seed: a.seed,
          force: a.force,
          onBatch: (done, total) => {
            bar ??= progress('icons', total, { enabled: !a.json, stream: io.errStream, unit: 'icon' });
            bar.tick(done - last);
            last = done;
          },
        });
        bar?.done();
        if (a.json) return io.out(JSON.stringify(r, null, 2));
        io.out(`${r.rendered} icons rendered, ${r.reused} kept; atlas picture ${r.picture}`);
      } finally {
        c.dispose();
      }
    },
  };
}
