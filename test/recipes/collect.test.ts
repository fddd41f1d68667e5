import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../src/recipes/collect.js';
import { META, RunReader, fromHalf } from '../../src/formats/run/index.js';
import { buildAtlas } from '../../src/recipes/atlas.js';
import { renderIcons } from '../../src/recipes/icons.js';
import { openDataset } from '../../src/data/dataset.js';
import { Classifier } from '../../src/model/classifier.js';
import { readEnv } from '../../src/config.js';
import { TINY_CLASSES, loadTinyClassifier, writeTinyDescriptor, writeTinyGraphModel } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-collect-unit-'));
const images = join(root, 'images');
let c: Classifier;

beforeAll(async () => {
  c = await loadTinyClassifier(root);
  mkdirSync(images);
  for (let i = 0; i < 12; i++) {
    const wnid = TINY_CLASSES[i % 3]![0];
    const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => ((k * (i + 3) * 2654435761) >>> 24) & 255));
    await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(images, `${wnid}_${i}.png`));
  }
});

describe('collect + atlas on a tiny model', () => {
  it('stores activations, attributions and point metadata that match the model, without leaking tensors', async () => {
    const ds = await openDataset(images, c.labels);
    const before = tf.memory().numTensors;
    const r = await collect(c, ds, { layer: 'conv_pw_1_relu', out: join(root, 'run'), positions: 'all', seed: 3, shard: null, batchSize: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r).toMatchObject({ complete: true, method: 'jvp', resumed: 0, processed: 12 });
    expect(r.manifest.points).toBe(12 * 36);
    const run = await RunReader.open(join(root, 'run'));
    const meta = await run.rows('meta', [0, 1, 36]);
    expect(Array.from(meta.subarray(0, 6))).toEqual([0, 1, 1, meta[3], meta[4], meta[5]]);
    expect(meta[6 * 2 + META.image]).toBe(1);
    // Point 0's activation equals the layer output of its image at (1, 1).
    const items = ds.items.slice(0, 1);
    const { imageBatches } = await import('../../src/data/batches.js');
    for await (const b of imageBatches(items, { pre: { size: [32, 32], resizeShorter: null }, batchSize: 1 })) {
      const act = tf.tidy(() => c.activation(tf.tensor4d(b.pixels, b.shape), 'conv_pw_1_relu').slice([0, 1, 1, 0], [1, 1, 1, 16]).dataSync());
      const stored = await run.rows('acts', [0]);
      expect(Array.from(stored)).toEqual(Array.from(act));
    }
    // Winning class column = argmax of the stored (half-precision) attribution row.
    const attr = await run.rows('attr', [0]);
    expect(attr.indexOf(Math.max(...attr))).toBe(meta[META.winClass]);
    expect(fromHalf(new Uint16Array([0x3c00]))[0]).toBe(1);
    await run.close();
    const again = await collect(c, ds, { layer: 'conv_pw_1_relu', out: join(root, 'run'), positions: 'all', seed: 3, shard: null });
    expect(again).toMatchObject({ complete: true, resumed: 12, processed: 0 });
    await expect(collect(c, ds, { layer: 'conv1_relu', out: join(root, 'run'), positions: 'all', seed: 3, shard: null })).rejects.toThrow(/layer "conv_pw_1_relu".*pick another --out/);
  });

  it('builds a pair atlas with ranked bridges, naming classes by WordNet id', async () => {
    const { path, atlas } = await buildAtlas({ run: join(root, 'run'), classes: ['n02066245', 'n01484850'], grid: 4, minDensity: 2, umap: { seed: 1, nEpochs: 50 } });
    expect(existsSync(path)).toBe(true);
    expect(JSON.parse(readFileSync(path, 'utf8')).format).toBe('patch-atlas-atlas/2');
    expect(atlas.cells.length).toBeGreaterThan(0);
    expect(atlas.bridges).toHaveLength(atlas.cells.length);
    for (const cell of atlas.cells) {
      expect(cell.meanAct).toHaveLength(16);
      for (const im of cell.images) expect(im.path.startsWith(images)).toBe(true);
    }
    await expect(buildAtlas({ run: join(root, 'run'), classes: ['n02066245', 'n02066245'] })).rejects.toThrow(/two different classes/);
    await expect(buildAtlas({ run: join(root, 'run'), classes: ['n09999999'] })).rejects.toThrow(/unknown class "n09999999"/);
  });

  it('renders icons for the top cells, records them in atlas.json, composes atlas.png, and resumes', async () => {
    const { path } = await buildAtlas({ run: join(root, 'run'), classes: ['n02066245', 'n01484850'], grid: 4, minDensity: 2, umap: { seed: 1, nEpochs: 50 } });
    const before = tf.memory().numTensors;
    const opts = { cells: 2, iconPx: 32, steps: 4, tries: 1, batch: 2, cossimPower: 2, seed: 0 } as const;
    const r = await renderIcons(c, path, opts);
    expect(tf.memory().numTensors).toBe(before);
    expect(r).toMatchObject({ rendered: 2, reused: 0 });
    const atlas = JSON.parse(readFileSync(path, 'utf8'));
    const withIcons = atlas.cells.filter((cell: { icon?: string }) => cell.icon);
    expect(withIcons).toHaveLength(2);
    expect(withIcons.map((cell: { i: number; j: number }) => `${cell.i},${cell.j}`).sort()).toEqual(
      atlas.bridges.slice(0, 2).map((b: { cell: number }) => `${atlas.cells[b.cell].i},${atlas.cells[b.cell].j}`).sort(),
    );
    for (const cell of withIcons) expect(Number.isFinite(cell.iconObjective)).toBe(true);
    const meta = await sharp(r.picture).metadata();
    expect([meta.width, meta.height]).toEqual([4 * 32, 4 * 32]);
    const again = await renderIcons(c, path, opts);
    expect(again).toMatchObject({ rendered: 0, reused: 2 });
  });
});

describe('collect announces a slow attribution before the run', () => {
  it('says nothing for a model with forward-mode rules, and names the reverse-mode cost and its cause otherwise', async () => {
    const notes: string[] = [];
    const ds = await openDataset(images, c.labels);
    await collect(c, ds, { layer: 'conv_pw_1_relu', out: join(root, 'run-notes'), positions: 1, seed: 0, shard: null, batchSize: 6, onNote: (n) => notes.push(n) });
    expect(notes).toEqual([]);
    writeTinyGraphModel(join(root, 'tiny_graph'), 8, undefined, 'Selu');
    const g = await Classifier.load({ model: writeTinyDescriptor(join(root, 'gdesc'), { format: 'graph', size: 8, logits: 'logits', defaultLayer: 'relu1' }), env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') } });
    const gds = await openDataset(images, g.labels);
    const r = await collect(g, gds, { layer: 'relu1', out: join(root, 'run-graph'), positions: 1, seed: 0, shard: null, batchSize: 6, onNote: (n) => notes.push(n) });
    expect(r.method).toBe('reverse');
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/^tiny_graph has no forward-mode rule on the path from relu1 to the logits: attribution takes one backward pass per class \(\d+\), about \d+ (s|min) per image \(node relu1 \(Selu\): no ONNX rule\)$/);
    g.dispose();
  });
});

