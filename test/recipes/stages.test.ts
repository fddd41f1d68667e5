import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset, type Dataset } from '../../src/data/dataset.js';
import { writePatch } from '../../src/formats/patch.js';
import { readAccuracy } from '../../src/formats/accuracy.js';
import { readEvaluation } from '../../src/formats/evaluation.js';
import type { Classifier } from '../../src/model/classifier.js';
import { accuracy } from '../../src/recipes/accuracy.js';
import { buildAtlas } from '../../src/recipes/atlas.js';
import { collect } from '../../src/recipes/collect.js';
import { eligibleImages, evaluate } from '../../src/recipes/evaluate.js';
import { renderIcons } from '../../src/recipes/icons.js';
import { pairFor } from '../../src/recipes/pair.js';
import { makePatches } from '../../src/recipes/patches.js';
import { buildReportData, writeReport } from '../../src/recipes/report.js';
import { removeDir } from '../helpers/images.js';
import { TINY_CLASSES, loadTinyClassifier } from '../helpers/tiny-models.js';

/**
 * Every stage's recipe once, in pipeline order, on the tiny model: each leaves no tensor behind, and the
 * files they hand each other are read back by the next one's reader.
 */
const root = mkdtempSync(join(tmpdir(), 'pa-stages-'));
const images = join(root, 'images');
let c: Classifier;
let ds: Dataset;
let atlasPath: string;

beforeAll(async () => {
  c = await loadTinyClassifier(root);
  mkdirSync(images);
  for (let i = 0; i < 12; i++) {
    const wnid = TINY_CLASSES[i % 3]![0];
    const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => ((k * (i + 5) * 2654435761) >>> 24) & 255));
    await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(images, `${wnid}_${i}.png`));
  }
  ds = await openDataset(images, c.labels);
});

afterAll(async () => {
  c?.dispose();
  await removeDir(root);
});

/** Runs `f` and checks that it leaves as many tensors as it found. */
async function noLeak<T>(f: () => Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const r = await f();
  expect(tf.memory().numTensors).toBe(before);
  return r;
}

describe('stage recipes on a tiny model', () => {
  it('accuracy writes accuracy.json that its reader takes back', async () => {
    const out = join(root, 'accuracy.json');
    const r = await noLeak(() => accuracy(c, ds, { out, params: { batchSize: 5 } }));
    expect(r.images).toBe(12);
    // Gradients on wasm; forward passes on onnxruntime where it is installed (it is, after npm ci).
    expect(readAccuracy(out)).toMatchObject({ images: 12, correctTop1: r.correctTop1, backend: c.forwardBackend, producer: { model: 'tiny_layers', engine: c.forwardBackend === 'onnxruntime' ? 'wasm+onnxruntime' : 'wasm' } });
  });

  it('accuracy lists each unlabelled image and why it has none', async () => {
    const mixed = join(root, 'mixed');
    mkdirSync(mixed);
    // Three colours: the same picture under three names would be counted once.
    const png = (name: string, r: number) => sharp({ create: { width: 40, height: 40, channels: 3, background: { r, g: 20, b: 200 } } }).png().toFile(join(mixed, name));
    await Promise.all([png(`${TINY_CLASSES[0]![0]}_a.png`, 10), png('n09999999_b.png', 90), png('holiday.png', 170)]);
    const r = await accuracy(c, await openDataset(mixed, c.labels));
    expect(r.images).toBe(1);
    expect(r.unlabelled).toBe(2);
    expect(r.unlabelledImages).toEqual([
      { path: join(mixed, 'holiday.png'), reason: 'no WordNet id at the start of the file name' },
      { path: join(mixed, 'n09999999_b.png'), reason: "WordNet id n09999999 is not among the model's classes" },
    ]);
  });

  it('collect → atlas → icons → patches leave no tensors behind', async () => {
    await noLeak(() => collect(c, ds, { layer: 'conv_pw_1_relu', out: join(root, 'run'), positions: 'all', seed: 1, shard: null }));
    atlasPath = (await noLeak(() => buildAtlas({ run: join(root, 'run'), classes: ['grey whale', 'great white shark'], grid: 4, minDensity: 1, umap: { seed: 1, nEpochs: 30 } }))).path;
    const icons = await noLeak(() => renderIcons(c, atlasPath, { cells: 2, iconPx: 32, steps: 2, batch: 2 }));
    expect(icons.rendered).toBe(2);
    const made = await noLeak(() => makePatches({ classifier: c, atlas: atlasPath, images, out: join(root, 'patches'), params: { cells: 1, patchPx: 32, iconSteps: 2, steps: 2, batchSize: 2, noise: false } }));
    expect(made.patches.map((p) => p.name)).toEqual([expect.stringMatching(/^icon-1-cell-/), expect.stringMatching(/^eot-1-cell-/)]);
  });

  it('evaluate names its noise control apart from the patches, records it, and leaves no tensors behind', async () => {
    // A photo patch already called "noise": the control becomes "noise-2".
    await writePatch(join(root, 'photos', 'noise.png'), { rgb: new Uint8Array(8 * 8 * 3).fill(90), px: 8 }, { name: 'noise', kind: 'photo', model: 'tiny_layers', target: { wnid: 'n01484850', name: 'great white shark' } });
    const pair = await pairFor(c.labels, { patches: [join(root, 'patches')] });
    expect(pair.origin).toBe('sidecars');
    const items = eligibleImages(ds.items, { target: pair.target, where: images });
    const out = join(root, 'eval');
    const r = await noLeak(() => evaluate({ classifier: c, images: items, patches: [join(root, 'patches'), join(root, 'photos')], target: pair.target, params: { sizes: [0.5], positions: ['centre'], noisePx: 8, noiseSeed: 3 }, out }));
    expect(r.results.map((p) => p.patch)).toEqual([expect.stringMatching(/^eot-1-/), expect.stringMatching(/^icon-1-/), 'noise', 'noise-2']);
    const file = readEvaluation(out);
    expect(file.noise).toEqual({ name: 'noise-2', patchPx: 8, seed: 3 });
    expect(file.source).toBeNull();
    expect(file.images).toHaveLength(items.length);
    expect(file.patches.map((p) => p.patch)).toEqual(r.results.map((p) => p.patch));
  });

  it('the report reads what the stages wrote', async () => {
    const data = await buildReportData({ atlas: atlasPath, evaluation: join(root, 'eval'), accuracy: join(root, 'accuracy.json'), patches: [join(root, 'patches'), join(root, 'photos')], model: join(root, 'desc', 'tiny_layers.json') });
    expect(data.patches!.patches.find((p) => p.name === 'noise-2')!.kind).toBe('noise');
    expect(data.patches!.patches.find((p) => p.name === 'noise')!.kind).toBe('photo');
    expect(data.atlas!.icons).toBe(2);
    const files = await writeReport(data, join(root, 'report'), { png: false });
    expect(files.charts).toEqual([]);
  });
});
