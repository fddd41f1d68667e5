import type { Argv, CommandModule } from 'yargs';
import { openDataset } from '../../data/dataset.js';
import type { Proportion } from '../../evaluate/metrics.js';
import { readSplit } from '../../formats/split.js';
import { LabelSet } from '../../model/labels.js';
import { checkPositions } from '../../patch/placement.js';
import { EVALUATE_PARAMS, eligibleImages, evaluate } from '../../recipes/evaluate.js';
import { pairFor } from '../../recipes/pair.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, numberList, progressBar, withModel, type ModelArgs } from '../options.js';
import { modelOfAtlas, modelOfPatches } from '../../recipes/recorded.js';

interface EvaluateArgs extends ModelArgs {
  patches: string[];
  images: string;
  atlas?: string;
  split?: string;
  source?: string;
  target?: string;
  universal: boolean;
  sizes: string;
  positions: string;
  circular: boolean;
  noise: boolean;
  seed: number;
  out?: string;
  batchSize: number;
  json: boolean;
}

export function evaluateCommand(io: CliIO): CommandModule {
  const d = EVALUATE_PARAMS;
  return {
    command: 'evaluate',
    describe: 'paste patches at corners × sizes and measure how often the model flips to the target class',
    builder: (y: Argv) =>
      withModel(y)
        .option('patches', { type: 'string', array: true, demandOption: true, describe: 'patch images or folders of them (PNG/JPEG/WebP)' })
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest' })
        .option('split', { type: 'string', describe: 'split.json written by `patch`: evaluate only its held-out (test) images' })
        .option('source', { type: 'string', describe: 'source class A: only images labelled A count (success = flips to B ÷ A images correct before); default: from --atlas or the patches\' sidecars' })
        .option('target', { type: 'string', describe: 'target class B (default: from --atlas or the patches\' sidecars)' })
        .option('atlas', { type: 'string', describe: 'a pair atlas.json: its classes are the source and target' })
        .option('universal', { type: 'boolean', default: false, describe: 'count every image not of the target, even when the atlas or sidecars name a source' })
        .option('sizes', { type: 'string', default: d.sizes.default.join(','), describe: 'patch sides as fractions of the image side' })
        .option('positions', { type: 'string', default: d.positions.default.join(','), describe: 'where to paste' })
        .option('circular', { type: 'boolean', default: d.circular.default, describe: 'circular patch mask' })
        .option('noise', { type: 'boolean', default: d.noise.default, describe: 'also measure a random-noise patch of the same sizes (control); --no-noise to skip' })
        .option('seed', { type: 'number', default: d.noiseSeed.default, describe: 'seed of the noise patch' })
        .option('batch-size', { type: 'number', default: d.batchSize.default, describe: 'images per forward pass' })
        .option('out', { type: 'string', describe: 'folder for results.json and results.csv (default: evaluate-<source>-to-<target>)' })
        .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' })
        .example('$0 evaluate --patches ../shared/data/article-patches --images ./val --source "grey whale" --target "great white shark"', 'static and dynamic success of each patch, with a noise control')
        .example('$0 evaluate --patches patches/whale-shark --split patches/whale-shark/split.json --images ./val', 'patches made by `patch`: the classes come from their sidecars')
        .example('$0 evaluate --patches p.png --images ./many-classes --target "great white shark"', 'universal targeted success over every class'),
    handler: async (raw) => {
      const a = raw as unknown as EvaluateArgs;
      const params = { sizes: numberList('sizes', a.sizes), positions: checkPositions(a.positions.split(',').map((s) => s.trim())), circular: a.circular, noise: a.noise, noiseSeed: a.seed, batchSize: a.batchSize };
      const recorded = a.model !== undefined ? undefined : a.atlas ? modelOfAtlas(a.atlas) : await modelOfPatches(a.patches);
      const c = await loadFromArgs(a, io, a.json, recorded);
      try {
        const pair = await pairFor(c.labels, { ...pick(a, 'source', 'target', 'atlas'), patches: a.patches, universal: a.universal });
        const { source, target } = pair;
        if (pair.origin !== 'flags' && !a.json) io.err(`classes from the ${pair.origin === 'atlas' ? 'atlas' : 'patches\' sidecars'}: ${source ? `${LabelSet.display(source)} → ` : 'any → '}${LabelSet.display(target)}`);
        const ds = await openDataset(a.images, c.labels);
        const skips = skipReporter(io, a.json);
        for (const s of ds.skipped) skips.onSkip(s);
        const split = a.split ? readSplit(a.split) : undefined;
        const items = eligibleImages(ds.items, { ...(source ? { source } : {}), target, where: a.images, ...(split ? { split, splitFile: `--split ${a.split}` } : {}) });
        const slug = (s: string) => s.replace(/[^\w.-]+/g, '_');
        const bar = progressBar(io, 'evaluate', !a.json);
        const r = await evaluate({
          classifier: c,
          images: items,
          patches: a.patches,
          ...(source ? { source } : {}),
          target,
          params,
          out: a.out ?? `evaluate-${source ? slug(source.name) : 'all'}-to-${slug(target.name)}`,
          ...(a.split ? { split: { file: a.split, testFraction: split!.testFraction, seed: split!.seed, candidates: null } } : {}),
          onSkip: skips.onSkip,
          onProgress: bar.update,
        });
        bar.done();
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
        if (a.json) return io.out(JSON.stringify({ ...r.files, images: r.images.length, skipped: r.skipped.length, summary }, null, 2));
        io.out(`${r.images.length} images${source ? ` of ${LabelSet.display(source)}` : ''}, target ${LabelSet.display(target)}, ${r.placements.length} placements; results in ${r.files.json} and ${r.files.csv}`);
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

/** The named keys of `o` that are set. */
function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Partial<Pick<T, K>> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Partial<Pick<T, K>>;
}
