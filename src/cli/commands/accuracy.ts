import type { Argv, CommandModule } from 'yargs';
import { openDataset } from '../../data/dataset.js';
import { ACCURACY_PARAMS, accuracy } from '../../recipes/accuracy.js';
import { progress } from '../../util/progress.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

export function accuracyCommand(io: CliIO): CommandModule {
  return {
    command: 'accuracy',
    describe: 'clean top-1 / top-5 accuracy over a labelled image folder',
    builder: (y: Argv) =>
      withModel(y)
        .option('images', { type: 'string', demandOption: true, describe: 'folder (class sub-folders or <wnid>_*.JPEG files) or a CSV manifest path,label' })
        .option('batch-size', { type: 'number', default: ACCURACY_PARAMS.batchSize.default, describe: 'images per forward pass' })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output, with per-class and per-image results' })
        .example('$0 accuracy --images ./imagenet-sample', 'top-1 / top-5 over the folder'),
    handler: async (raw) => {
      const a = raw as unknown as ModelArgs & { images: string; batchSize: number; json: boolean };
      const c = await loadFromArgs(a, io, a.json);
      try {
        const ds = await openDataset(a.images, c.labels);
        const skips = skipReporter(io, a.json);
        for (const s of ds.skipped) skips.onSkip(s);
        const bar = progress('accuracy', ds.items.filter((i) => i.label).length, { enabled: !a.json, stream: io.errStream });
        const r = await accuracy(c, ds, { params: { batchSize: a.batchSize }, onProgress: (n) => bar.tick(n), onSkip: skips.onSkip });
        bar.done();
        if (a.json) return io.out(JSON.stringify(r, null, 2));
        const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
        io.out(`${r.model} on ${r.source} (${r.backend})`);
        io.out(`images: ${r.images}   top-1: ${pct(r.top1)} (${r.correctTop1})   top-5: ${pct(r.top5)} (${r.correctTop5})`);
        io.out(`classes: ${r.perClass.length}   unlabelled: ${r.unlabelled}   skipped: ${r.skipped.length}`);
        const first = r.unlabelledImages?.[0];
        if (first) io.out(`unlabelled images are not counted, e.g. ${first.path}: ${first.reason} (each one and why: --json, "unlabelledImages")`);
        io.out('per-class and per-image results: --json');
      } finally {
        c.dispose();
      }
    },
  };
}
