import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../../src/engine/backend.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-cli-'));
let desc: string;
let weights: string;

beforeAll(async () => {
  await initBackend('wasm');
  weights = join(root, 'w');
  await saveLayersModel(tinyLayersModel(32), weights);
  desc = writeTinyDescriptor(join(root, 'd'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  for (const [i, wnid] of ['n02066245', 'n01484850', 'n02799071'].entries()) {
    await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 80 * i, g: 100, b: 200 - 60 * i } } }).jpeg().toFile(join(root, `${wnid}_${i}.JPEG`));
  }
  writeFileSync(join(root, 'n02066245_broken.JPEG'), 'not an image');
});

const tiny = () => ['--model', desc, '--weights', weights, '--offline'];

describe('CLI', () => {
  it('classify prints top-k per image and JSON on request', async () => {
    const r = await runCli(['classify', join(root, 'n02066245_0.JPEG'), '--top', '2', ...tiny()]);
    expect(r.code).toBe(0);
    expect(r.out.split('\n').filter((l) => /^\s+\d\. /.test(l))).toHaveLength(2);
    const j = await runCli(['classify', join(root, 'n02066245_0.JPEG'), join(root, 'n01484850_1.JPEG'), '--json', ...tiny()]);
    const parsed = JSON.parse(j.out);
    expect(parsed.results).toHaveLength(2);
    expect(parsed.results[0].top).toHaveLength(5);
    const sum = parsed.results[0].top.reduce((a: number, t: { probability: number }) => a + t.probability, 0);
    expect(sum).toBeCloseTo(1, 4);
  });

  it('--engine is another name for --backend', async () => {
    const r = await runCli(['classify', join(root, 'n02066245_0.JPEG'), '--json', '--engine', 'wasm', ...tiny()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).results).toHaveLength(1);
    const bad = await runCli(['classify', join(root, 'n02066245_0.JPEG'), '--engine', 'gpu', ...tiny()]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/backend|engine/);
    expect(bad.err).toMatch(/onnxruntime/);
  });

  it('accuracy skips and counts unreadable files instead of dying', async () => {
    const r = await runCli(['accuracy', '--images', root, '--json', ...tiny()]);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.images).toBe(3);
    expect(rep.skipped.map((s: { path: string }) => s.path)).toContain(join(root, 'n02066245_broken.JPEG'));
    expect(rep.top1).toBeCloseTo(rep.correctTop1 / 3, 9);
    expect(rep.perClass).toHaveLength(3);
  });

  it('models info lists every layer with its output shape', async () => {
    const r = await runCli(['models', 'info', ...tiny()]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/conv_pw_1_relu\s+Activation\s+\[8, 8, 16\]\s+\(mid\)/);
    expect(r.out).toMatch(/conv_preds\s+Conv2D\s+\[1, 1, 5\]/);
  });

  it('bad input gives one line naming the flag or value, and the closest valid names', async () => {
    const typo = await runCli(['classify', 'x.jpg', '--model', 'mobilenet_v1_075']);
    expect(typo.code).toBe(1);
    expect(typo.err.trim().split('\n')).toHaveLength(1);
    expect(typo.err).toMatch(/unknown model "mobilenet_v1_075"; did you mean "mobilenet_v1_0.75"/);
    const flag = await runCli(['classify', 'x.jpg', '--tpo', '3']);
    expect(flag.code).toBe(2);
    expect(flag.err).toMatch(/Unknown argument: tpo/);
    const missing = await runCli(['accuracy', '--images', join(root, 'nope'), ...tiny()]);
    expect(missing.code).toBe(1);
    expect(missing.err.trim().split('\n')).toHaveLength(1);
    expect(missing.err).toMatch(/nope/);
    const top = await runCli(['classify', 'x.jpg', '--top', '0', ...tiny()]);
    expect(top.err).toMatch(/--top 0 must be/);
  });

  it('the installed bin runs the compiled CLI, with a stack trace only under --debug', () => {
    const bin = join(import.meta.dirname, '../../bin/patch-atlas');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const plain = spawnSync(bin, ['accuracy', '--images', join(root, 'nope'), ...tiny()], { encoding: 'utf8' });
    expect(plain.status).toBe(1);
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    const debug = spawnSync(bin, ['accuracy', '--images', join(root, 'nope'), '--debug', ...tiny()], { encoding: 'utf8' });
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('evaluate writes results.json and results.csv with a noise control and Wilson intervals', async () => {
    const red = join(mkdtempSync(join(tmpdir(), 'pa-patch-')), 'red.png');
    await sharp({ create: { width: 12, height: 12, channels: 3, background: { r: 250, g: 10, b: 10 } } }).png().toFile(red);
    const out = join(root, 'eval');
    const r = await runCli(['evaluate', '--patches', red, '--images', root, '--target', 'baseball', '--sizes', '0.3,0.5', '--positions', 'top-left,centre', '--out', out, '--json', ...tiny()]);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out);
    expect(s.summary.map((p: { patch: string }) => p.patch)).toEqual(['red', 'noise']);
    const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(1 + 2 * (4 + 1));
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    // The baseball-labelled image is left out of universal success (it is already the target class).
    expect(res.images).toHaveLength(2);
    for (const p of res.patches) expect(p.metrics.universal.dynamic.hi).toBeGreaterThanOrEqual(p.metrics.universal.dynamic.p);
    const bad = await runCli(['evaluate', '--patches', red, '--images', root, '--target', 'baseball', '--sizes', '30', ...tiny()]);
    expect(bad.err).toMatch(/for 30 % write 0.3/);
  });
});
