import { join } from 'node:path';
import { collect } from '../../recipes/collect.js';
import type { Stage, StageResult } from '../stage.js';

/** Activations and attributions at sampled positions of the training half, into a resumable run folder. */
export const collectStage: Stage = {
  name: 'collect',
  deps: [],
  stopsOnSignal: true,
  settings: (ctx) => ({ layer: ctx.layer, positions: ctx.opts.positions, seed: ctx.opts.seed, split: { testFraction: ctx.opts.testFraction, seed: ctx.opts.seed, half: 'train' } }),
  budget: (ctx) => `collect: ${ctx.split.train.length} training images × ${ctx.opts.positions === 'all' ? 'all' : ctx.opts.positions} position${ctx.opts.positions === 1 ? '' : 's'} at ${ctx.layer}`,
  async run(ctx): Promise<StageResult> {
    const c = await ctx.classifier();
    const bar = ctx.progress();
    const r = await collect(c, { ...ctx.dataset, items: ctx.split.train }, {
      layer: ctx.layer,
      out: ctx.stageDir,
      positions: ctx.opts.positions,
      seed: ctx.opts.seed,
      shard: null,
      signal: ctx.signal,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.done();
    const m = r.manifest;
    if (!r.complete) return { files: {}, interrupted: true, summary: `interrupted after ${r.resumed + r.processed} of ${ctx.split.train.length} images` };
    return {
      files: { run: ctx.rel(ctx.stageDir), manifest: ctx.rel(join(ctx.stageDir, 'manifest.json')) },
      facts: { points: m.points, images: m.processedImages, skipped: m.skippedImages.length, channels: m.channels, method: r.method },
      summary: `${m.points} points from ${m.processedImages} images${r.resumed ? ` (${r.resumed} resumed)` : ''}, ${m.channels} channels`,
    };
  },
};
