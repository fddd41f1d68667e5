import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layersAsGraph } from '../../bench/graph-model.js';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { renderDirections } from '../../src/featurevis/cell-icons.js';
import { Classifier } from '../../src/model/classifier.js';
import { optimisePatch } from '../../src/patch/optimise.js';
import { pasteTf } from '../../src/patch/paste.js';
import { randomPlacements } from '../../src/patch/placement.js';
import { mulberry32 } from '../../src/util/random.js';
import { tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';

/**
 * A graph model that only takes 32×32 images (its Placeholder says so, as TF-Hub graphs do): icons and patches of
 * other sizes are resampled to its input inside the differentiable path, and optimising them works at every size.
 */
const root = mkdtempSync(join(tmpdir(), 'pa-fixed-'));
const S = 32;
let c: Classifier;

beforeAll(async () => {
  await initBackend('wasm');
  const m = tinyLayersModel(S);
  const g = layersAsGraph(m);
  g.write(join(root, 'tiny_graph'));
  g.dispose();
  m.dispose();
  const desc = writeTinyDescriptor(join(root, 'desc'), { format: 'graph', size: S, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  c = await Classifier.load({ model: desc, env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') }, backend: 'wasm' });
});

afterAll(() => c.dispose());

describe('a model with a fixed input size', () => {
  it.each([48, 64, 96])('renders %i-px icons whose objective rises with optimisation', async (px) => {
    const r = mulberry32(px);
    const dir = Array.from({ length: 16 }, () => r() - 0.3);
    const settings = { iconPx: px, tries: 1, cossimPower: 2, seed: 5 };
    const start = await renderDirections(c, 'conv_pw_1_relu', [dir], { ...settings, steps: 0 });
    const end = await renderDirections(c, 'conv_pw_1_relu', [dir], { ...settings, steps: 24 });
    expect([end.height, end.width]).toEqual([px, px]);
    expect(end.values[0]!).toBeGreaterThan(start.values[0]! + 1e-3);
  });

  it.each([8, 24, 64])('optimises %i-px patches whose target probability rises at placements not trained on', async (px) => {
    const r = mulberry32(11);
    const images = Float32Array.from({ length: 16 * S * S * 3 }, () => r());
    const target = c.labels.resolve('n03126707');
    const opts = { classifier: c, images, target, patchPx: px, batchSize: 4, lr: 0.3, sizeRange: [0.4, 0.6] as [number, number], seed: 3 };
    const before = await optimisePatch({ ...opts, steps: 0 });
    const after = await optimisePatch({ ...opts, steps: 20 });
    const logP = (rgb: Uint8Array) =>
      tf.tidy(() => {
        const placements = randomPlacements([S, S], 16, { sizeRange: [0.4, 0.6], maxRotation: 22.5, seed: 1234 });
        const patch = tf.div(tf.tensor3d(rgb, [px, px, 3], 'float32'), 255) as tf.Tensor3D;
        const lp = tf.logSoftmax(c.logits(pasteTf(tf.tensor4d(images, [16, S, S, 3]), patch, placements)));
        return tf.mean(tf.slice(lp, [0, target.index], [-1, 1])).dataSync()[0]!;
      });
    expect(after.rgb.length).toBe(px * px * 3);
    expect(logP(after.rgb)).toBeGreaterThan(logP(before.rgb) + 0.02);
  });
});
