import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { openDataset } from '../../data/dataset.js';
import { PatchAtlasError } from '../../errors.js';
import { evaluatePatches, noisePatch } from '../../evaluate/evaluate-patches.js';
import type { Proportion } from '../../evaluate/metrics.js';
import { writeEvaluation } from '../../evaluate/write-results.js';
import { LabelSet } from '../../model/labels.js';
import { loadPatches } from '../../patch/load.js';
import { readSplitFile } from '../../patch/synthesise.js';
import { checkPositions, checkSizes, gridPlacements } from '../../patch/placement.js';
import { progress } from '../../util/progress.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

interface EvaluateArgs extends ModelArgs {
  patches: string[];
  images: string;
  split?: string;
  source?: string;
  target: string;
  sizes: string;
  positions: string;
  circular: boolean;
  noise: boolean;
  seed: number;
  out?: string;
  batchSize: number;
  json: boolean;
}

const numberList = (flag: string, v: string) =>
  v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!s.trim() || !Number.isFinite(n)) throw new PatchAtlasError('BAD_FLAG', `--${flag} "${v}" must be comma-separated numbers`, 'e.g. --sizes 0.2,0.3,0.4');
    return n;
  });

export function evaluateCommand(io: CliIO): CommandModule {
  return {
    command: 'evaluate',
    describe: 'paste patches at corners × sizes and measure how often the model flips to the target class',
    builder: (y: Argv) =>
      withModel(y)
        .option('patches', { type: 'string', array: true, demandOption: true, describe: 'patch images or folders of them (PNG/JPEG/WebP)' })
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest' })
        .option('split', { type: 'string', describe: 'split.json written by `patch`: evaluate only its held-out (test) images' })
        .option('source', { type: 'string', describe: 'source class A: only images labelled A count (success = flips to B ÷ A images correct before)' })
        .option('target', { type: 'string', demandOption: true, describe: 'target class B' })
        .option('sizes', { type: 'string', default: '0.2,0.3,0.4', describe: 'patch sides as fractions of the image side' })
        .option('positions', { type: 'string', default: 'top-left,top-right,bottom-left,bottom-right,centre', describe: 'where to paste' })
        .option('circular', { type: 'boolean', default: false, describe: 'circular patch mask' })
        .option('noise', { type: 'boolean', default: true, describe: 'also measure a random-noise patch of the same sizes (control); --no-noise to skip' })
        .option('seed', { type: 'number', default: 0, describe: 'seed of the noise patch' })
        .option('batch-size', { type: 'number', default: 16, describe: 'images per forward pass' })
        .option('out', { type: 'string', describe: 'folder for results.json and results.csv (default: evaluate-<source>-to-<target>)' })
        .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' })
        .example('$0 evaluate --patches ../shared/data/article-patches --images ./val --source "grey whale" --target "great white shark"', 'static and dynamic success of each patch, with a noise control')
        .example('$0 evaluate --patches p.png --images ./many-classes --target "great white shark"', 'universal targeted success over every class'),
    handler: async (raw) => {
      const a = raw as unknown as EvaluateArgs;
      const sizes = checkSizes(numberList('sizes', a.sizes));
      const positions = checkPositions(a.positions.split(',').map((s) => s.trim()));
      const c = await loadFromArgs(a, io, a.json);
      try {
        const target = c.labels.resolve(a.target, 'target class');
        const source = a.source !== undefined ? c.labels.resolve(a.source, 'source class') : undefined;
        if (source && source.wnid === target.wnid) throw new PatchAtlasError('BAD_FLAG', `--source and --target are both "${LabelSet.display(target)}"`, 'pick two different classes');
        const patches = await loadPatches(a.patches);
        if (a.noise) patches.push({ ...noisePatch(64, a.seed), name: 'noise' });
        const ds = await openDataset(a.images, c.labels);
        // Universal success is about images of other classes: images labelled B are left out.
        let items = source ? ds.items.filter((i) => i.label?.wnid === source.wnid) : ds.items.filter((i) => i.label?.wnid !== target.wnid);
        if (items.length === 0) throw new PatchAtlasError('NO_IMAGES', `no images labelled "${LabelSet.display(source!)}" in ${a.images}`, 'omit --source to measure universal success over every image');
        // Held-out images only: a patch trained on the split's train side is measured on images it never saw.
        if (a.split) {
          const held = readSplitFile(a.split).test;
          const before = items.length;
          items = items.filter((i) => held.has(resolve(i.path)));
          if (items.length === 0) throw new PatchAtlasError('NO_IMAGES', `none of the ${before} eligible images in ${a.images} are on the test side of --split ${a.split}`, 'pass the --images the split was made from');
        }
        const skips = skipReporter(io, a.json);
        for (const s of ds.skipped) skips.onSkip(s);
        const placements = gridPlacements(c.inputSize, sizes, positions, { circular: a.circular });
        let bar: ReturnType<typeof progress> | undefined;
        let last = 0;
        const r = await evaluatePatches({
          classifier: c,
          images: items,
          patches,
          placements,
          target,
          batchSize: a.batchSize,
          ...(source ? { source } : {}),
          onSkip: skips.onSkip,
          onProgress: (done, total) => {
            bar ??= progress('evaluate', total, { enabled: !a.json, stream: io.errStream });
            bar.tick(done - last);
            last = done;
          },
        });
        bar?.done();
        const slug = (s: string) => s.replace(/[^\w.-]+/g, '_');
        const out = a.out ?? `evaluate-${source ? slug(source.name) : 'all'}-to-${slug(target.name)}`;
        const files = await writeEvaluation(out, { model: c.descriptor.name, source: source ? { wnid: source.wnid, name: LabelSet.display(source) } : null, target: { wnid: target.wnid, name: LabelSet.display(target) }, sizes, positions, circular: a.circular, ...(a.split ? { split: a.split } : {}) }, r);
        const pct = (p: Proportion) => (p.n ? `${(p.p * 100).toFixed(1)} % [${(p.lo * 100).toFixed(1)}, ${(p.hi * 100).toFixed(1)}] (${p.k}/${p.n})` : 'n/a (no eligible images)');
        const summary = r.results.map((p) => ({
          patch: p.patch,
          static: { placement: p.metrics.static.placement, ...p.metrics.static.targeted },
          dynamic: p.metrics.dynamic.targeted,
          untargetedDynamic: p.metrics.dynamic.untargeted,
          universalStatic: { placement: p.metrics.universal.static.placement, ...p.metrics.universal.static.rate },
          universalDynamic: p.metrics.universal.dynamic,
          pTarget: p.metrics.dynamic.pTarget,
        }));
        if (a.json) return io.out(JSON.stringify({ ...files, images: r.images.length, skipped: r.skipped.length, summary }, null, 2));
        io.out(`${r.images.length} images${source ? ` of ${LabelSet.display(source)}` : ''}, target ${LabelSet.display(target)}, ${placements.length} placements; results in ${files.json} and ${files.csv}`);
        for (const s of summary) {
          io.out(`${s.patch}`);
          if (source) {
            io.out(`  static  ${pct(s.static)} at ${s.static.placement}`);
            io.out(`  dynamic ${pct(s.dynamic)}; leaves ${LabelSet.display(source)}: ${pct(s.untargetedDynamic)}`);
          }
          io.out(`  universal static ${pct(s.universalStatic)} at ${s.universalStatic.placement}; dynamic ${pct(s.universalDynamic)}`);
        }
      } finally {
        c.dispose();
      }
    },
  };
}
