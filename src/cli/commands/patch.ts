import type { Argv, CommandModule } from 'yargs';
import { PatchAtlasError } from '../../errors.js';
import { checkParams } from '../../recipes/params.js';
import { BRIDGE_PATCHES, MAKE_PATCH_PARAMS, makePatches, type MakePatchParams } from '../../recipes/patches.js';
import { progress } from '../../util/progress.js';
import { skipReporter, type CliIO } from '../io.js';
import { flagsNamed, loadFromArgs, numberList, withModel, type ModelArgs } from '../options.js';
import { modelOfAtlas } from '../../recipes/recorded.js';

/** The patch recipe's parameters as yargs gives them (the objective's exponent is --power, the size range text). */
interface PatchArgs extends ModelArgs, Omit<MakePatchParams, 'cells' | 'cossimPower' | 'sizeRange' | 'iconTries'> {
  atlas: string;
  images: string;
  out?: string;
  cells: string;
  power: number;
  sizesRange: string;
  json: boolean;
}

function parseCells(v: string): 'bridges' | number {
  if (v === 'bridges') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PatchAtlasError('BAD_FLAG', `--cells ${v} must be "bridges" (the top ${BRIDGE_PATCHES}) or a number of top-ranked bridge cells`);
  return n;
}

export function patchCommand(io: CliIO): CommandModule {
  return {
    command: 'patch',
    describe: 'icon patches and EOT-optimised patches (from each icon and from noise) for the top bridge cells of a pair atlas',
    builder: (y: Argv) => {
      const d = MAKE_PATCH_PARAMS;
      return withModel(y)
        .option('atlas', { type: 'string', demandOption: true, describe: 'atlas.json of a pair atlas (`patch-atlas atlas --pair A:B`); patches target class B' })
        .option('cells', { type: 'string', default: String(d.cells.default), describe: `"bridges" (the top ${BRIDGE_PATCHES}) or N top-ranked bridge cells` })
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest; its train side trains the EOT patches' })
        .option('out', { type: 'string', describe: 'folder for the patches and split.json (default: patches/ beside atlas.json)' })
        .option('patch-px', { alias: 'side', type: 'number', default: d.patchPx.default, describe: 'patch side in pixels (icons are rendered at this size)' })
        .option('steps', { type: 'number', default: d.steps.default, describe: 'EOT optimisation steps per patch; 0 writes icon patches only' })
        .option('batch-size', { type: 'number', default: d.batchSize.default, describe: 'images per EOT step' })
        .option('lr', { type: 'number', default: d.lr.default, describe: 'Adam learning rate on the patch logits' })
        .option('icon-steps', { type: 'number', default: d.iconSteps.default, describe: 'optimisation steps per icon' })
        .option('power', { type: 'number', default: d.cossimPower.default, describe: 'cosine exponent of the icon objective (as `icons --power`)' })
        .option('sizes-range', { type: 'string', default: d.sizeRange.default.join(','), describe: 'EOT patch side drawn from lo,hi (fractions of the image side)' })
        .option('max-rotation', { type: 'number', default: d.maxRotation.default, describe: 'EOT rotation drawn from ±this many degrees' })
        .option('seed', { type: 'number', default: d.seed.default, describe: 'seed of the icons, the noise start and the EOT batches and placements' })
        .option('test-fraction', { type: 'number', default: d.testFraction.default, describe: 'share of --images held out for evaluation (not trained on)' })
        .option('split-seed', { type: 'number', default: d.splitSeed.default, describe: 'seed of the train/test split' })
        .option('noise', { type: 'boolean', default: d.noise.default, describe: 'also optimise a patch from noise, for comparison; --no-noise to skip' })
        .option('force', { type: 'boolean', default: d.force.default, describe: 're-make patches that already exist (and replace a split.json made with other settings)' })
        .option('json', { type: 'boolean', default: false, describe: 'print a JSON summary' })
        .example('$0 patch --atlas runs/pw11/atlas-grey_whale-vs-great_white_shark/atlas.json --images ./val --out patches/whale-shark', 'icon + EOT patches for the top 3 bridge cells, and an EOT patch from noise')
        .example('$0 evaluate --patches patches/whale-shark --split patches/whale-shark/split.json --images ./val', 'then measure them on the held-out images (the classes come from their sidecars)');
    },
    handler: async (raw) => {
      const a = raw as unknown as PatchArgs;
      // Every setting checked before the model loads, named as its flag.
      const params = checkParams(
        MAKE_PATCH_PARAMS,
        { cells: parseCells(a.cells), patchPx: a.patchPx, steps: a.steps, batchSize: a.batchSize, lr: a.lr, iconSteps: a.iconSteps, cossimPower: a.power, sizeRange: numberList('sizes-range', a.sizesRange) as [number, number], maxRotation: a.maxRotation, seed: a.seed, testFraction: a.testFraction, splitSeed: a.splitSeed, noise: a.noise, force: a.force },
        flagsNamed({ cossimPower: 'power', sizeRange: 'sizes-range' }),
      );
      const c = await loadFromArgs(a, io, a.json, a.model === undefined ? modelOfAtlas(a.atlas) : undefined);
      try {
        const skips = skipReporter(io, a.json);
        let bar: ReturnType<typeof progress> | undefined;
        const r = await makePatches({
          classifier: c,
          atlas: a.atlas,
          images: a.images,
          ...(a.out ? { out: a.out } : {}),
          params,
          onSkip: skips.onSkip,
          onEvent: (e) => {
            if (a.json) return;
            if (e.kind === 'plan') {
              io.err(`${e.make} patch${e.make === 1 ? '' : 'es'} to make, ${e.keep} already there`);
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
        io.out(`next: patch-atlas evaluate --patches ${r.out} --split ${r.split} --images ${a.images}   (the classes come from the patches' sidecars)`);
      } finally {
        c.dispose();
      }
    },
  };
}
