import { mkdirSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { runCli } from '../helpers/cli.js';
import { removeDir } from '../helpers/images.js';
import { saveLayersModel, tinyLayersModel, TINY_CLASSES, writeTinyDescriptor } from '../helpers/tiny-models.js';

/**
 * A model of the user's own (a descriptor file, weights in a folder of their choosing) is named once, to
 * `collect`; every later command finds it from the files it reads, with class names throughout.
 */
const root = mkdtempSync(join(tmpdir(), 'pa-recorded-'));
const images = join(root, 'images');
const weights = join(root, 'weights', 'tiny_layers');
let desc: string;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), weights);
  desc = writeTinyDescriptor(join(root, 'my-model'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  mkdirSync(images);
  for (let i = 0; i < 12; i++) {
    const wnid = TINY_CLASSES[i % 3]![0];
    const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => ((k * (i + 3) * 2654435761) >>> 24) & 255));
    await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(images, `${wnid}_${i}.png`));
  }
});

afterAll(() => removeDir(root));

const ok = async (args: string[]) => {
  const r = await runCli(args[0] === 'report' ? args : [...args, '--offline']);
  expect(r.err + r.out, args[0]).not.toMatch(/unknown model|not known here/);
  expect(r.code, `${args[0]}: ${r.err}`).toBe(0);
  return r;
};

describe('a run made with a descriptor file', () => {
  it('names classes in atlas.json, bridges and the report, and the report draws before/after examples, with --model given once', async () => {
    await ok(['collect', '--model', desc, '--weights', weights, '--images', images, '--out', join(root, 'run'), '--positions', 'all', '--batch-size', '6']);
    const atlasDir = join(root, 'atlas');
    await runCli(['atlas', '--run', join(root, 'run'), '--pair', 'grey whale:great white shark', '--grid', '4', '--min-density', '2', '--out', atlasDir]).then((r) => expect(r.code, r.err).toBe(0));
    const atlas = JSON.parse(readFileSync(join(atlasDir, 'atlas.json'), 'utf8'));
    expect(atlas.classes.map((c: { name: string }) => c.name)).toEqual(['grey whale', 'great white shark']);
    expect(atlas.producer.source.path).toBe(desc);
    expect(atlas.bridges.length).toBeGreaterThan(0);
    expect(atlas.bridges[0].reason).toMatch(/toward great white shark/);

    // No --model and no --weights from here on: the atlas, then the patches' sidecars, say which model.
    await ok(['icons', '--atlas', atlasDir, '--cells', '2', '--steps', '2', '--icon-px', '32']);
    await ok(['patch', '--atlas', atlasDir, '--images', images, '--cells', '2', '--steps', '0', '--icon-steps', '2', '--side', '32', '--out', join(root, 'patches')]);
    await ok(['evaluate', '--patches', join(root, 'patches'), '--images', images, '--universal', '--sizes', '0.3', '--positions', 'top-left', '--out', join(root, 'eval')]);
    const rep = await ok(['report', '--atlas', atlasDir, '--evaluation', join(root, 'eval'), '--patches', join(root, 'patches'), '--out', join(root, 'report')]);
    expect(rep.err).not.toMatch(/no before\/after|examples/i);
    const data = JSON.parse(readFileSync(join(root, 'report', 'report-data.json'), 'utf8'));
    expect(data.producer.source.path).toBe(desc);
    const patches = data.patches.patches as Array<{ name: string; example?: { before: { src: string }; after: { src: string } } }>;
    expect(patches.length).toBe(3);
    for (const p of patches) {
      expect(p.example?.before.src, p.name).toMatch(/^data:image\//);
      expect(p.example?.after.src, p.name).toMatch(/^data:image\//);
    }
    const html = readFileSync(join(root, 'report', 'report.html'), 'utf8');
    expect(html).toContain('grey whale');
    expect(html).toContain('great white shark');
  });

  it('says in one line which descriptor has gone when the recorded file was moved', async () => {
    renameSync(join(root, 'my-model'), join(root, 'moved'));
    try {
      const r = await runCli(['icons', '--atlas', join(root, 'atlas'), '--cells', '1', '--steps', '1', '--offline']);
      expect(r.code).not.toBe(0);
      expect(r.err.trim().split('\n')[0]).toMatch(new RegExp(`--atlas .* was made with model "tiny_layers" from .*tiny_layers\\.json, which no longer exists`));
    } finally {
      renameSync(join(root, 'moved'), join(root, 'my-model'));
    }
  });
});
