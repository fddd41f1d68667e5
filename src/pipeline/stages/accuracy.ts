import { join } from 'node:path';
import { ACCURACY_FILE } from '../../formats/accuracy.js';
import { accuracy } from '../../recipes/accuracy.js';
import type { Stage } from '../stage.js';

/** Clean top-1 / top-5 over every image (both halves): how good the model is on this data before any patch. */
export const accuracyStage: Stage = {
  name: 'accuracy',
  deps: [],
  settings: () => ({}),
  budget: (ctx) => `accuracy: clean top-1/top-5 on ${ctx.dataset.items.filter((i) => i.label).length} labelled images`,
  async run(ctx) {
    const c = await ctx.classifier();
    const total = ctx.dataset.items.filter((i) => i.label).length;
    const bar = ctx.progress();
    let done = 0;
    const file = join(ctx.stageDir, ACCURACY_FILE);
    const r = await accuracy(c, ctx.dataset, { params: { batchSize: ctx.opts.batchSize }, out: file, onProgress: (n) => bar.update((done += n), total) });
    bar.done();
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    return {
      files: { json: ctx.rel(file) },
      facts: { images: r.images, top1: r.top1, top5: r.top5, skipped: r.skipped.length },
      summary: `top-1 ${pct(r.top1)}, top-5 ${pct(r.top5)} on ${r.images} images${r.skipped.length ? ` (${r.skipped.length} skipped)` : ''}`,
    };
  },
};
