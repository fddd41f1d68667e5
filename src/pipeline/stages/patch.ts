import { makePatches } from '../../recipes/patches.js';
import type { Stage } from '../stage.js';

/** Images per EOT step; fixed here so the key need not carry a batch-size flag that changes results. */
const EOT_BATCH = 8;

/**
 * Optional (`--eot-steps N`, N > 0): EOT-optimised patches (Brown et al. 2017) for the top bridge
 * cells, each started from the cell's icon, plus one started from noise, trained on the same training
 * half that built the atlas (`patch` splits the images with the same fraction and seed), so the
 * evaluation's held-out half stays unseen. Only the EOT patches are pasted: the icons stage already
 * gives the icon patches.
 */
export const patchStage: Stage = {
  name: 'patch',
  deps: ['atlas'],
  makesPatches: true,
  settings: (ctx) => ({ cells: ctx.opts.eotCells, side: ctx.opts.iconPx, steps: ctx.opts.eotSteps, batch: EOT_BATCH, iconSteps: ctx.opts.iconSteps, power: ctx.opts.iconPower, seed: ctx.opts.seed, split: { testFraction: ctx.opts.testFraction, seed: ctx.opts.seed, half: 'train' }, noise: true }),
  budget: (ctx) => `patch: EOT patches for the top ${ctx.opts.eotCells} bridge cell${ctx.opts.eotCells === 1 ? '' : 's'} and from noise, ${ctx.opts.eotSteps} steps of ${EOT_BATCH} training images each (${((ctx.opts.eotCells + 1) * ctx.opts.eotSteps).toLocaleString('en-US')} steps)`,
  async run(ctx) {
    const c = await ctx.classifier();
    const bar = ctx.progress('step');
    let steps = 0;
    let total = 0;
    const r = await makePatches({
      classifier: c,
      atlas: ctx.abs(ctx.outputs('atlas').files.atlas!),
      out: ctx.stageDir,
      images: ctx.opts.images,
      params: { cells: ctx.opts.eotCells, patchPx: ctx.opts.iconPx, steps: ctx.opts.eotSteps, batchSize: EOT_BATCH, iconSteps: ctx.opts.iconSteps, cossimPower: ctx.opts.iconPower, seed: ctx.opts.seed, testFraction: ctx.opts.testFraction, splitSeed: ctx.opts.seed, noise: true },
      onEvent: (e) => {
        if (e.kind === 'plan') total = e.eotSteps;
        else if (e.kind === 'step') bar.update(++steps, total);
      },
    });
    const eot = r.patches.filter((p) => p.kind === 'eot');
    const pct = (p: number | undefined) => (p === undefined ? '?' : `${(p * 100).toFixed(1)} %`);
    return {
      files: { split: ctx.rel(r.split) },
      patches: eot.map((p) => ctx.rel(p.png)),
      facts: { trainPool: r.trainPool, kept: eot.filter((p) => p.kept).length },
      summary: `${eot.length} EOT patches on ${r.trainPool} training images; p(target) at the end of training: ${eot.map((p) => `${p.name} ${pct(p.pTarget)}`).join(', ')}`,
    };
  },
};
