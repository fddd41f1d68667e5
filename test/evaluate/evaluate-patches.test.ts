import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, toFloatBatch } from '../../src/data/decode.js';
import { noisePatch } from '../../src/evaluate/evaluate-patches.js';
import { measurePatches } from '../../src/recipes/evaluate.js';
import type { Classifier } from '../../src/model/classifier.js';
import { resizePatchRgb } from '../../src/patch/paste.js';
import { gridPlacements } from '../../src/patch/placement.js';
import { loadTinyClassifier } from '../helpers/tiny-models.js';
import { removeDir } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'pa-evalpatch-'));
let c: Classifier;
const paths: string[] = [];

beforeAll(async () => {
  c = await loadTinyClassifier(root);
  // Five 40×36 images: solid colours, two with noise, so the model sees different inputs.
  const colours = [[200, 40, 30], [20, 160, 220], [240, 240, 240], [10, 10, 10], [90, 200, 60]] as const;
  for (const [i, [r, g, b]] of colours.entries()) {
    const noise = i % 2 ? { noise: { type: 'gaussian' as const, mean: 128, sigma: 60 } } : {};
    const path = join(root, 'images', `img${i}.png`);
    await sharp({ create: { width: 40, height: 36, channels: 3, background: { r, g, b }, ...noise } }).png().toFile(await ensure(path));
    paths.push(path);
  }
});

afterAll(async () => {
  c?.dispose();
  await removeDir(root);
});

async function ensure(path: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  return path;
}

/** Argmax and probabilities of a direct classifier call on [0,1] pixels. */
function classify(pixels: Float32Array, n: number): { pred: number[]; probs: Float32Array } {
  const probs = tf.tidy(() => c.probabilities(tf.tensor4d(pixels, [n, 32, 32, 3])));
  const data = probs.dataSync() as Float32Array;
  probs.dispose();
  const m = c.labels.outputs;
  const pred = Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < m; j++) if (data[i * m + j]! > data[i * m + best]!) best = j;
    return best;
  });
  return { pred, probs: data };
}

describe('evaluatePatches (through measurePatches) on a tiny model', () => {
  it('gives a placements × images matrix per patch whose clean row equals a direct classifier call', async () => {
    const source = c.labels.resolve('grey_whale');
    const target = c.labels.resolve('baseball');
    const placements = gridPlacements(c.inputSize, [0.25, 0.5], ['top-left', 'centre']);
    const solid = { name: 'grey', rgb: new Uint8Array(8 * 8 * 3).fill(128), px: 8 };
    const progress: Array<[number, number]> = [];
    const res = await measurePatches({
      classifier: c,
      items: paths.map((path) => ({ path })),
      patches: [noisePatch(16, 1), solid],
      placements,
      source,
      target,
      batchSize: 2, // 5 images → batches of 2, 2, 1: exercises the offsets
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(res.images).toEqual(paths);
    expect(res.results.map((r) => r.patch)).toEqual(['noise-1', 'grey']);
    expect(progress.at(-1)).toEqual([5 * (1 + 2 * 4), 5 * (1 + 2 * 4)]);

    const decoded = await Promise.all(paths.map((p) => decodeImage(p, c.preprocess)));
    const direct = classify(toFloatBatch(decoded), 5);
    for (const { matrix, metrics } of res.results) {
      expect(matrix.placements).toEqual(['top-left@0.25', 'top-left@0.5', 'centre@0.25', 'centre@0.5']);
      expect(matrix.images).toHaveLength(5);
      expect(matrix.patched).toHaveLength(4);
      for (const row of matrix.patched) {
        expect(row.pred).toHaveLength(5);
        expect(row.pTarget).toHaveLength(5);
      }
      expect(Array.from(matrix.clean.pred)).toEqual(direct.pred);
      for (let i = 0; i < 5; i++) {
        expect(matrix.clean.pTarget[i]).toBeCloseTo(direct.probs[i * 5 + target.index]!, 6);
        expect(matrix.clean.correct[i]).toBe(direct.pred[i] === source.index ? 1 : 0);
      }
      expect(metrics.correctBefore).toBe(direct.pred.filter((p) => p === source.index).length);
      expect(metrics.placements).toHaveLength(4);
    }
  });

  it('with a patch covering the whole image, every prediction is the prediction of the patch alone', async () => {
    const target = c.labels.resolve('baseball');
    const patch = noisePatch(20, 3); // resized 20 → 32 px by the paste
    const [full] = gridPlacements(c.inputSize, [1], ['top-left']);
    expect(full!.side).toBe(32);
    const res = await measurePatches({ classifier: c, items: paths.map((path) => ({ path })), patches: [patch], placements: [full!], target, batchSize: 4 });
    const alone = classify(Float32Array.from(resizePatchRgb({ data: patch.rgb, size: 20 }, 32), (v) => v / 255), 1);
    const row = res.results[0]!.matrix.patched[0]!;
    expect(Array.from(row.pred)).toEqual(Array(5).fill(alone.pred[0]));
    for (const p of row.pTarget) expect(p).toBeCloseTo(alone.probs[target.index]!, 6);
    // No source and unlabelled images: nothing is "correct before", so targeted rates have n = 0.
    expect(res.results[0]!.metrics.correctBefore).toBe(0);
    expect(res.results[0]!.metrics.dynamic.targeted.n).toBe(0);
  });

  it('skips unreadable images and rejects bad arguments before decoding anything', async () => {
    const target = c.labels.resolve('baseball');
    const broken = join(root, 'images', 'broken.png');
    await writeFile(broken, 'not a png');
    const skipped: string[] = [];
    const placements = gridPlacements(c.inputSize, [0.5], ['centre']);
    const res = await measurePatches({
      classifier: c,
      items: [{ path: paths[0]! }, { path: broken }, { path: paths[1]! }],
      patches: [noisePatch(8, 1)],
      placements,
      target,
      onSkip: (s) => skipped.push(s.path),
    });
    expect(skipped).toEqual([broken]);
    expect(res.images).toEqual([paths[0], paths[1]]);
    expect(res.results[0]!.matrix.patched[0]!.pred).toHaveLength(2);

    const base = { classifier: c, items: [{ path: paths[0]! }], patches: [noisePatch(8, 1)], placements, target };
    await expect(measurePatches({ ...base, source: target })).rejects.toThrow(/source and target are the same class \(baseball\)/);
    await expect(measurePatches({ ...base, patches: [{ name: 'x', rgb: new Uint8Array(10), px: 4 }] })).rejects.toThrow(/patch "x" has 10 bytes, expected 4×4×3/);
    await expect(measurePatches({ ...base, placements: gridPlacements([224, 224], [0.5], ['centre']) })).rejects.toThrow(/placement "centre@0.5" \(112 px at 56,56\) does not fit the model's 32×32 input/);
    await expect(measurePatches({ ...base, patches: [noisePatch(8, 1), noisePatch(9, 1)] })).rejects.toThrow(/two patches are named "noise-1"/);
    await expect(measurePatches({ ...base, batchSize: 0 })).rejects.toThrow(/batch size/);
  });
});

describe('noisePatch', () => {
  it('is uniform random bytes, reproducible from the seed', () => {
    const a = noisePatch(32, 5);
    expect(a).toMatchObject({ name: 'noise-5', px: 32 });
    expect(a.rgb).toHaveLength(32 * 32 * 3);
    expect(noisePatch(32, 5).rgb).toEqual(a.rgb);
    expect(noisePatch(32, 6).rgb).not.toEqual(a.rgb);
    const mean = a.rgb.reduce((s, v) => s + v, 0) / a.rgb.length;
    expect(Math.abs(mean - 127.5)).toBeLessThan(5);
    expect(Math.min(...a.rgb)).toBe(0);
    expect(Math.max(...a.rgb)).toBe(255);
    expect(() => noisePatch(0, 1)).toThrow(/whole number of pixels/);
  });
});
