import type { Argv, CommandModule } from 'yargs';
import { PatchAtlasError } from '../../errors.js';
import type { CellSelection } from '../../featurevis/cell-icons.js';
import { ICON_PARAMS, renderIcons } from '../../recipes/icons.js';
import { checkParams } from '../../recipes/params.js';
import type { CliIO } from '../io.js';
import { flagsNamed, loadFromArgs, progressBar, withModel, type ModelArgs } from '../options.js';
import { modelOfAtlas } from '../../recipes/recorded.js';

interface IconsArgs extends ModelArgs {
  atlas: string;
  cells: string;
  iconPx: number;
  steps: number;
  tries: number;
  batch: number;
  power: number;
  seed: number;
  force: boolean;
  json: boolean;
}

/** "all", "bridges" or a whole number (checked by the recipe). */
export function parseCells(v: string): CellSelection {
  if (v === 'all' || v === 'bridges') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PatchAtlasError('BAD_FLAG', `--cells ${v} must be "all", "bridges" or a number of top-ranked cells`);
  return n;
}

export function iconsCommand(io: CliIO): CommandModule {
  const d = ICON_PARAMS;
  return {
    command: 'icons',
    describe: 'feature-visualisation icon per atlas cell, and the atlas picture',
    builder: (y: Argv) =>
      withModel(y)
        .option('atlas', { type: 'string', demandOption: true, describe: 'atlas.json written by `patch-atlas atlas` (or its folder)' })
        .option('cells', { type: 'string', default: d.cells.default, describe: '"all", "bridges" (the 10 top-ranked) or N top-ranked cells' })
        .option('icon-px', { alias: 'size', type: 'number', default: d.iconPx.default, describe: 'icon side in pixels' })
        .option('steps', { type: 'number', default: d.steps.default, describe: 'optimisation steps per icon' })
        .option('tries', { type: 'number', default: d.tries.default, describe: 'independent tries per icon; the best is kept' })
        .option('batch', { type: 'number', default: d.batch.default, describe: 'icons optimised together' })
        .option('power', { type: 'number', default: d.cossimPower.default, describe: 'cosine exponent p in dot(h,v)·max(0.1,cos)^p (article: 2–4)' })
        .option('seed', { type: 'number', default: d.seed.default })
        .option('force', { type: 'boolean', default: d.force.default, describe: 're-render cells that already have an icon' })
        .option('json', { type: 'boolean', default: false })
        .example('$0 icons --atlas runs/pw11/atlas-grey_whale-vs-great_white_shark/atlas.json', 'icons for the top bridge cells, then atlas.png'),
    handler: async (raw) => {
      const a = raw as unknown as IconsArgs;
      // Checked before the model loads; the flag for cossimPower is --power.
      const params = checkParams(ICON_PARAMS, { cells: parseCells(a.cells), iconPx: a.iconPx, steps: a.steps, tries: a.tries, batch: a.batch, cossimPower: a.power, seed: a.seed, force: a.force }, flagsNamed({ cossimPower: 'power' }));
      const c = await loadFromArgs(a, io, a.json, a.model === undefined ? modelOfAtlas(a.atlas) : undefined);
      try {
        const bar = progressBar(io, 'icons', !a.json, 'icon');
        const r = await renderIcons(c, a.atlas, params, { onBatch: bar.update });
        bar.done();
        if (a.json) return io.out(JSON.stringify(r, null, 2));
        io.out(`${r.rendered} icons rendered, ${r.reused} kept; atlas picture ${r.picture}`);
      } finally {
        c.dispose();
      }
    },
  };
}
