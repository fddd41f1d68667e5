import type { Argv, CommandModule } from 'yargs';
import { openDataset } from '../../data/dataset.js';
import { PatchAtlasError } from '../../errors.js';
import { checkParams } from '../../recipes/params.js';
import { PREDICT_PARAMS, predictImages, type ImagePrediction } from '../../recipes/predict.js';
import { LabelSet } from '../../model/labels.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

export function classifyCommand(io: CliIO): CommandModule {
  return {
    command: 'classify <images...>',
    describe: 'top-k classes for one or more images',
    builder: (y: Argv) =>
      withModel(y)
        .positional('images', { type: 'string', array: true, describe: 'image files' })
        .option('top', { type: 'number', default: PREDICT_PARAMS.top.default, describe: 'how many classes to show per image' })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
        .example('$0 classify whale.jpg', 'the five most likely ImageNet classes'),
    handler: async (raw) => {
      const a = raw as unknown as ModelArgs & { images: string[]; top: number; json: boolean };
      checkParams(PREDICT_PARAMS, { top: a.top });
      const c = await loadFromArgs(a, io, a.json);
      try {
        const ds = await openDataset(a.images, c.labels);
        const skips = skipReporter(io, a.json);
        for (const s of ds.skipped) skips.onSkip(s);
        const results: ImagePrediction[] = [];
        for await (const p of predictImages(c, ds.items, { top: Math.min(a.top, c.labels.size), onSkip: skips.onSkip })) results.push(p);
        if (a.json) {
          const rows = results.map((r) => ({ path: r.item.path, top: r.top.map((t) => ({ wnid: t.class.wnid, name: LabelSet.display(t.class), probability: t.probability })) }));
          io.out(JSON.stringify({ model: c.descriptor.name, results: rows, skipped: skips.count }, null, 2));
        } else {
          for (const r of results) {
            io.out(r.item.path);
            r.top.forEach((t, i) => io.out(`  ${i + 1}. ${LabelSet.display(t.class)} (${t.class.wnid})  ${(t.probability * 100).toFixed(1)} %`));
          }
        }
        if (results.length === 0) throw new PatchAtlasError('NO_IMAGES', `none of the ${ds.items.length} image file(s) in ${ds.source} could be read`, 'the warnings above say why for each');
      } finally {
        c.dispose();
      }
    },
  };
}
