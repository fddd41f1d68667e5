import { join } from 'node:path';
import { SCREEN_FILE } from '../../formats/screen.js';
import { screen } from '../../recipes/screen.js';
import type { Stage } from '../stage.js';

/**
 * The screen (issue "Do bridges make patches?"), sized for the run's budget: `--screen-pairs` auto pairs
 * and their sensitivity twins, drawn from every image of the run's data set, each tested on an image
 * held out of its own atlas; the collect run of the training half serves every pair. Its pooled result
 * heads the report.
 */
export const screenStage: Stage = {
  name: 'screen',
  deps: ['collect'],
  settings: (ctx) => ({ pairs: 'auto', maxPairs: ctx.opts.screenPairs, sensitivity: true, seed: ctx.opts.seed, patchPx: ctx.opts.iconPx, iconSteps: ctx.opts.iconSteps, power: ctx.opts.iconPower, grid: ctx.opts.grid, minDensity: ctx.opts.minDensity }),
  budget: (ctx) => `screen: ${ctx.opts.screenPairs} auto class pairs and their ${ctx.opts.screenPairs} sensitivity twins, each tested on an image held out of its atlas: 3 icons (${ctx.opts.iconSteps} steps at ${ctx.opts.iconPx} px) and 8 patch kinds × 12 placements per pair`,
  async run(ctx) {
    const c = await ctx.classifier();
    const bar = ctx.progress('pair');
    const r = await screen({
      classifier: c,
      run: ctx.abs(ctx.outputs('collect').files.run!),
      images: ctx.opts.images,
      out: ctx.stageDir,
      params: { pairs: 'auto', maxPairs: ctx.opts.screenPairs, sensitivity: true, seed: ctx.opts.seed, patchPx: ctx.opts.iconPx, iconSteps: ctx.opts.iconSteps, cossimPower: ctx.opts.iconPower, grid: ctx.opts.grid, minDensity: ctx.opts.minDensity, batchSize: ctx.opts.batchSize },
      onEvent: (e) => {
        if (e.kind === 'pair') bar.update(e.done, e.total);
      },
    });
    bar.done();
    const { primarySentence } = await import('../../screen/summary.js');
    const auto = r.file!.sets.find((s) => s.name === 'auto')!;
    return {
      files: { screen: ctx.rel(join(ctx.stageDir, SCREEN_FILE)) },
      facts: { pairs: auto.analysis.pairs, withBridge: auto.analysis.withBridge, primaryP: auto.analysis.primary.p },
      summary: `${auto.analysis.withBridge} of ${auto.analysis.pairs} auto pairs with a bridge; ${primarySentence(auto.analysis)}`,
    };
  },
};
