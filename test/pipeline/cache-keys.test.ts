import { describe, expect, it } from 'vitest';
import { splitItems } from '../../src/data/split.js';
import { loadDescriptor, loadLabels } from '../../src/model/descriptor.js';
import { stageKey } from '../../src/pipeline/hash.js';
import { RUN_DEFAULTS, type RunOptions } from '../../src/pipeline/options.js';
import type { PipelineContext } from '../../src/pipeline/stage.js';
import { pipelineStages } from '../../src/pipeline/stages/index.js';

/**
 * `run` reuses a finished stage when its key is unchanged, so a refactor that changes a key silently
 * reruns every user's pipeline (or, worse, a changed meaning keeps a stale one). These keys were
 * recorded before the one-house refactor; they must stay the same for the same settings.
 */
function context(over: Partial<RunOptions> = {}): PipelineContext {
  const descriptor = loadDescriptor('mobilenet_v1_0.75');
  const labels = loadLabels(descriptor);
  const source = labels.resolve('grey whale');
  const target = labels.resolve('great white shark');
  const wnids = ['n02066245', 'n01484850', 'n02799071', 'n01440764'];
  const items = Array.from({ length: 80 }, (_, i) => ({ path: `/data/img/${wnids[i % 4]}_${i}.JPEG`, label: labels.resolve(wnids[i % 4]!) }));
  const opts = { ...RUN_DEFAULTS, sizes: [...RUN_DEFAULTS.sizes], images: '/data/img', pair: ['grey whale', 'great white shark'], out: '/tmp/out', model: 'mobilenet_v1_0.75', backend: 'wasm', download: false, patches: ['/p'], ...over } as RunOptions;
  const dataset = { source: '/data/img', layout: 'wnid-files' as const, items, unlabelled: 0, skipped: [] };
  return {
    dir: '/tmp/out',
    opts,
    descriptor,
    labels,
    source,
    target,
    layer: descriptor.layers.default,
    dataset,
    split: splitItems(items, { testFraction: opts.testFraction, seed: opts.seed }),
    photoPatches: [{ path: '/p/baseball-01.png', name: 'baseball-01.png', sha256: 'ab'.repeat(32) }],
  };
}

function keys(ctx: PipelineContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const stage of pipelineStages(ctx.opts)) {
    const deps = Object.fromEntries(stage.deps.map((d) => [d, out[d]!]));
    out[stage.name] = stageKey({ stage: stage.name, settings: stage.settings(ctx), deps, tool: '0.1.0', model: 'mobilenet_v1_0.75', images: 'sha256:0' }).slice(0, 16);
  }
  return out;
}

describe('run: stage cache keys', () => {
  it('are the keys recorded before the refactor, with the defaults', () => {
    expect(keys(context())).toEqual(GOLDEN_DEFAULT);
  });

  it('are the keys recorded before the refactor, with EOT patches and other settings', () => {
    expect(keys(context({ eotSteps: 50, eotCells: 2, sizes: [0.3], placements: ['top-left', 'centre'], evalImages: 'all', evalMode: 'targeted', seed: 3, iconPx: 64, title: 't', png: false, positions: 'all', grid: 6 }))).toEqual(GOLDEN_EOT);
  });
});

const GOLDEN_DEFAULT = {
  accuracy: '192a90d731335327',
  collect: '7ebf59d1936afeb7',
  atlas: '086466168e3ccb88',
  icons: 'c7f7837ddee3046e',
  evaluate: '74a93631180e4888',
  report: 'adaebe35d5df2ce7',
};
const GOLDEN_EOT = {
  accuracy: '192a90d731335327',
  collect: '910e8a39b9bcd5d0',
  atlas: 'b3cd142bafb70e8a',
  icons: 'f131308868692366',
  patch: '4e3caa98d9c24c7e',
  evaluate: '6b3ec2487a3a4942',
  report: '8dd97194ca85c454',
};
