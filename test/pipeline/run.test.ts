import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { RUN_DEFAULTS, type RunOptions } from '../../src/pipeline/options.js';
import { runPipeline, type RunResult } from '../../src/pipeline/run.js';
import { pipelineStages } from '../../src/pipeline/stages/index.js';
import { runCli } from '../helpers/cli.js';
import { saveLayersModel, tinyLayersModel, TINY_CLASSES, writeTinyDescriptor } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-pipeline-'));
const images = join(root, 'images');
const weights = join(root, 'w');
const env = { ...readEnv({}), modelsDir: undefined, cacheDir: join(root, 'cache') };
let desc: string;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), weights);
  desc = writeTinyDescriptor(join(root, 'd'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  mkdirSync(images);
  for (let i = 0; i < 24; i++) {
    const wnid = TINY_CLASSES[i % 3]![0];
    const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => ((k * (i + 3) * 2654435761) >>> 24) & 255));
    await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(images, `${wnid}_${i}.png`));
  }
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** A small budget for the tiny model: every stage runs, in seconds. */
function options(out: string, over: Partial<RunOptions> = {}): RunOptions {
  return {
    ...RUN_DEFAULTS,
    images,
    pair: ['grey whale', 'great white shark'],
    out,
    model: desc,
    weights,
    backend: 'wasm',
    download: false,
    patches: [],
    positions: 'all',
    grid: 4,
    minDensity: 2,
    icons: 2,
    iconPx: 32,
    iconSteps: 4,
    sizes: [0.3, 0.5],
    placements: ['top-left', 'bottom-right'],
    evalImages: 'all',
    png: false,
    ...over,
  };
}

const quiet = { err: () => {} };
const ran = (r: RunResult) => r.stages.filter((s) => !s.reused).map((s) => s.name);
const STAGES = ['accuracy', 'collect', 'atlas', 'icons', 'evaluate', 'report'];
/** One output file per stage, for mtime checks. */
const FILES = ['accuracy/accuracy.json', 'collect/manifest.json', 'atlas/atlas.json', 'icons/atlas.json', 'icons/atlas.png', 'evaluate/results.json', 'report/report.html'];
const mtimes = (dir: string) => Object.fromEntries(FILES.map((f) => [f, statSync(join(dir, f)).mtimeMs]));

describe('run: the whole pipeline with content-hash caching', () => {
  const out = join(root, 'run');

  it('runs every stage from the CLI, prints the budget, the stage lines and the report path', async () => {
    const r = await runCli(['run', '--images', images, '--pair', 'grey whale:great white shark', '--out', out, '--model', desc, '--weights', weights, '--offline',
      '--positions', 'all', '--grid', '4', '--min-density', '2', '--icons', '2', '--icon-size', '32', '--icon-steps', '4', '--sizes', '0.3,0.5', '--placements', 'top-left,bottom-right', '--eval-images', 'all', '--no-png']);
    expect(r.err).not.toMatch(/unexpected error/);
    expect(r.code).toBe(0);
    const report = r.out.trim().split('\n').pop()!;
    expect(report).toBe(join(out, 'report', 'report.html'));
    expect(readFileSync(report, 'utf8')).toMatch(/<html/i);
    expect(r.err).toMatch(/^budget .*\n.*\n  \[2\/6\] collect: 12 training images × all positions at conv_pw_1_relu$/m);
    for (const [k, s] of STAGES.entries()) expect(r.err).toMatch(new RegExp(`^\\[${k + 1}/6\\] ${s}: `, 'm'));
    const state = JSON.parse(readFileSync(join(out, 'pipeline.json'), 'utf8'));
    expect(Object.keys(state.stages)).toEqual(STAGES);
    for (const s of STAGES) expect(state.stages[s]).toMatchObject({ status: 'done', key: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // Icon patches carry a sidecar, so the report counts them as atlas patches; the noise control is there too.
    const results = JSON.parse(readFileSync(join(out, 'evaluate', 'results.json'), 'utf8'));
    expect(results.patches.map((p: { patch: string }) => p.patch)).toEqual([expect.stringMatching(/^icon-1-cell-/), expect.stringMatching(/^icon-2-cell-/), 'noise']);
    expect(results.source).toBeNull(); // 6 held-out grey whales are fewer than auto's 10: universal
    const sidecar = JSON.parse(readFileSync(join(out, state.stages.icons.outputs.patches[0].replace(/\.png$/, '.json')), 'utf8'));
    expect(sidecar).toMatchObject({ kind: 'icon', target: { wnid: 'n01484850' }, cell: { rank: 1 } });
    // The atlas stage's own file is not touched by the icons stage.
    expect(JSON.parse(readFileSync(join(out, 'atlas', 'atlas.json'), 'utf8')).cells.some((c: { icon?: string }) => c.icon)).toBe(false);
  });

  it('re-running with the same arguments reuses every stage: no model load, no file rewritten', async () => {
    const before = mtimes(out);
    const load = vi.spyOn(Classifier, 'load');
    const r = await runPipeline(options(out), quiet, { env });
    expect(r.stages.map((s) => [s.name, s.reused])).toEqual(STAGES.map((s) => [s, true]));
    expect(load).not.toHaveBeenCalled();
    expect(mtimes(out)).toEqual(before);
    expect(r.report).toBe(join(out, 'report', 'report.html'));
  });

  it('changing only the patch sizes reruns only the evaluation and the report', async () => {
    const before = mtimes(out);
    const r = await runPipeline(options(out, { sizes: [0.4] }), quiet, { env });
    expect(ran(r)).toEqual(['evaluate', 'report']);
    const after = mtimes(out);
    for (const f of FILES.slice(0, 5)) expect(after[f], f).toBe(before[f]);
    expect(after['evaluate/results.json']).not.toBe(before['evaluate/results.json']);
    expect(JSON.parse(readFileSync(join(out, 'evaluate', 'results.json'), 'utf8')).sizes).toEqual([0.4]);
  });

  it('changing the layer reruns collect and everything after it, not accuracy', async () => {
    const r = await runPipeline(options(out, { sizes: [0.4], layer: 'conv1_relu' }), quiet, { env });
    expect(ran(r)).toEqual(['collect', 'atlas', 'icons', 'evaluate', 'report']);
    expect(JSON.parse(readFileSync(join(out, 'collect', 'manifest.json'), 'utf8')).layer).toBe('conv1_relu');
    // Same arguments again: nothing reruns.
    const again = await runPipeline(options(out, { sizes: [0.4], layer: 'conv1_relu' }), quiet, { env });
    expect(ran(again)).toEqual([]);
  });

  it('EOT patches are one more patch-making stage: turning them on reruns only patch, evaluate and report', async () => {
    const r = await runPipeline(options(out, { sizes: [0.4], layer: 'conv1_relu', eotSteps: 2 }), quiet, { env });
    expect(r.stages.map((s) => s.name)).toEqual(['accuracy', 'collect', 'atlas', 'icons', 'patch', 'evaluate', 'report']);
    expect(ran(r)).toEqual(['patch', 'evaluate', 'report']);
    const names = JSON.parse(readFileSync(join(out, 'evaluate', 'results.json'), 'utf8')).patches.map((p: { patch: string }) => p.patch);
    expect(names).toEqual([expect.stringMatching(/^icon-1-/), expect.stringMatching(/^icon-2-/), expect.stringMatching(/^eot-1-cell-/), 'eot-noise', 'noise']);
  });

  it('an interrupted collect resumes in its folder on the next run', async () => {
    const dir = join(root, 'interrupted');
    const abort = new AbortController();
    // Abort as collect starts: it finishes its first batch (4 images with all positions) and stops.
    const stages = pipelineStages().map((s) => (s.name === 'collect' ? { ...s, run: (ctx: Parameters<typeof s.run>[0]) => (abort.abort(), s.run(ctx)) } : s));
    await expect(runPipeline(options(dir), quiet, { env, signal: abort.signal, stages })).rejects.toThrow(/interrupted during collect; re-run the same command to resume/);
    const state = JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8'));
    expect(state.stages.accuracy.status).toBe('done');
    expect(state.stages.collect.status).toBe('running');
    const r = await runPipeline(options(dir, { evalImages: 4 }), quiet, { env });
    expect(r.stages.find((s) => s.name === 'accuracy')!.reused).toBe(true);
    expect(r.stages.find((s) => s.name === 'collect')).toMatchObject({ reused: false, resumed: true, summary: expect.stringMatching(/\(4 resumed\)/) });
    expect(existsSync(r.report)).toBe(true);
  });

  it('rejects bad input before any stage runs, in one line', async () => {
    const bad = await runCli(['run', '--images', images, '--pair', 'grey whale', '--out', join(root, 'bad'), '--model', desc, '--weights', weights, '--offline']);
    expect(bad.code).toBe(2);
    expect(bad.err.trim().split('\n')).toEqual([expect.stringMatching(/--pair "grey whale" must be two classes separated by a colon/)]);
    const same = runPipeline(options(join(root, 'bad'), { pair: ['grey whale', 'n02066245'] }), quiet, { env });
    await expect(same).rejects.toThrow(/names "grey whale" twice/);
    await expect(runPipeline(options(images), quiet, { env })).rejects.toThrow(/not empty and holds no pipeline.json/);
    expect(existsSync(join(root, 'bad'))).toBe(false);
  });
});
