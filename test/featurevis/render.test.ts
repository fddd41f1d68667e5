import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Classifier } from '../../src/model/classifier.js';
import { batch, channel, classLogit, directionCossimBatch, neuron } from '../../src/featurevis/objectives.js';
import { image } from '../../src/featurevis/param/index.js';
import { evaluate, render } from '../../src/featurevis/render.js';
import { standardTransforms, jitter, randomRotate, randomScale } from '../../src/featurevis/transforms.js';
import { loadTinyClassifier } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-fv-render-'));
const LAYER = 'conv_pw_1_relu';
let c: Classifier;

beforeAll(async () => {
  c = await loadTinyClassifier(root);
});
afterAll(() => c?.dispose());

const small = [jitter(2), randomScale([0.95, 1, 1.05]), randomRotate([-10, 0, 10]), jitter(2)];

describe('batched render', () => {
  it('three different objectives rise together, tries keep the best per item, and nothing leaks', async () => {
    const objective = batch([channel(LAYER, 3), neuron(LAYER, 5), classLogit(2)]);
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const r = await render({
      classifier: c,
      objective,
      param: (seed) => image(3, 36, 36, { seed }),
      transforms: small,
      steps: 20,
      tries: 2,
      seed: 3,
      onStep: (s) => seen.push(s.try * 100 + s.step),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(seen.length).toBe(40);
    expect([r.batch, r.height, r.width]).toEqual([3, 36, 36]);
    expect(r.trace.length).toBe(2);
    for (const tr of r.trace) {
      expect(tr.length).toBe(20);
      for (let i = 0; i < 3; i++) expect(tr[19]![i]!).toBeGreaterThan(tr[0]![i]!);
    }
    for (let i = 0; i < 3; i++) {
      const best = Math.max(r.tryValues[0]![i]!, r.tryValues[1]![i]!);
      expect(r.values[i]).toBe(best);
      expect(r.tryValues[r.bestTry[i]!]![i]).toBe(best);
      expect(r.images[i]!.length).toBe(36 * 36 * 3);
    }
    // The kept bytes are the kept try's image: re-evaluating them gives (nearly, after 8-bit rounding) its value.
    const x = tf.tidy(() => tf.div(tf.tensor4d(Uint8Array.from(r.images.flatMap((im) => Array.from(im))), [3, 36, 36, 3], 'int32').toFloat(), 255) as tf.Tensor4D);
    const again = evaluate(c, objective, x);
    x.dispose();
    for (let i = 0; i < 3; i++) expect(Math.abs(again[i]! - r.values[i]!)).toBeLessThan(0.05 * Math.abs(r.values[i]!) + 1e-3);
  });

  it('is reproducible from its seed; per-item directions render as one batch', async () => {
    const dirs = [0, 1].map((k) => Array.from({ length: 16 }, (_, j) => Math.cos(j * (k + 1))));
    const opts = { classifier: c, objective: directionCossimBatch(LAYER, dirs, 2), param: (seed: number | readonly number[]) => image(2, 32, 32, { seed }), transforms: small, steps: 5, seed: 7 };
    const a = await render(opts);
    const b = await render(opts);
    expect(a.images.map((im) => Array.from(im))).toEqual(b.images.map((im) => Array.from(im)));
    expect(Array.from(a.trace[0]![4]!)).toEqual(Array.from(b.trace[0]![4]!));
    const other = await render({ ...opts, seed: 8 });
    expect(Array.from(other.images[0]!)).not.toEqual(Array.from(a.images[0]!));
  });

  it('with a seed per item, an item renders the same bytes alone or in any batch', async () => {
    const dirs = [0, 1, 2].map((k) => Array.from({ length: 16 }, (_, j) => Math.cos(j * (k + 1.5))));
    const run = (items: number[]) =>
      render({ classifier: c, objective: directionCossimBatch(LAYER, items.map((k) => dirs[k]!), 2), param: (seed) => image(items.length, 32, 32, { seed }), transforms: standardTransforms(), steps: 6, itemSeeds: items.map((k) => 1000 + k) });
    const batch3 = await run([0, 1, 2]);
    const alone = await run([1]);
    const reordered = await run([2, 1]);
    expect(Array.from(alone.images[0]!)).toEqual(Array.from(batch3.images[1]!));
    expect(Array.from(reordered.images[1]!)).toEqual(Array.from(batch3.images[1]!));
    expect(Array.from(reordered.images[0]!)).toEqual(Array.from(batch3.images[2]!));
    // The seeds matter: items with other seeds render otherwise.
    expect(Array.from(batch3.images[0]!)).not.toEqual(Array.from(batch3.images[1]!));
  });
});
