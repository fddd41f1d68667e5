import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeStepGrads } from '../../src/featurevis/native-step.js';
import { directionCossimBatch } from '../../src/featurevis/objectives.js';
import { image } from '../../src/featurevis/param/image.js';
import { standardTransforms } from '../../src/featurevis/transforms.js';
import type { Classifier } from '../../src/model/classifier.js';
import { mulberry32 } from '../../src/util/random.js';
import { pasteTf } from '../../src/patch/paste.js';
import { randomPlacements } from '../../src/patch/placement.js';
import type { Objective } from '../../src/featurevis/objectives.js';
import { loadTinyClassifier } from '../helpers/tiny-models.js';

/** The chained step (tape for the image-sized parts, onnxruntime for the network) against the all-tfjs step. */
let c: Classifier;
beforeAll(async () => {
  c = await loadTinyClassifier(mkdtempSync(join(tmpdir(), 'pa-native-step-')));
});
afterAll(() => c.dispose());

describe('nativeStepGrads', () => {
  it('gives the all-tfjs step\'s objective values and variable gradients (Fourier param, decorrelation, transforms), leaking nothing', async () => {
    expect(c.onnx, 'the tiny model has an onnxruntime session after npm ci').toBeDefined();
    const r = mulberry32(9);
    const dirs = [0, 1].map(() => Array.from({ length: 16 }, () => r() - 0.3));
    const objective = directionCossimBatch('conv_pw_1_relu', dirs, 2);
    const param = image(2, 48, 48, { seed: 4 });
    const transform = standardTransforms();
    // The same transform draws each time the image is made.
    const img = () => transform(param.image(), mulberry32(5));
    const want = tf.variableGrads(() => {
      const x = img();
      const [h] = c.run(x, objective.layers);
      return tf.neg(tf.sum(objective.perItem(new Map([[objective.layers[0]!, h!]])))) as tf.Scalar;
    }, param.variables);
    const wantPer = tf.tidy(() => objective.perItem(new Map([[objective.layers[0]!, c.run(img(), objective.layers)[0]!]])).dataSync());
    await nativeStepGrads(c, objective, img, param.variables).then((g) => g && tf.dispose(Object.values(g.grads))); // builds the session
    const before = tf.memory().numTensors;
    const got = await nativeStepGrads(c, objective, img, param.variables);
    expect(got, c.noNativeGradient).toBeDefined();
    for (const [name, g] of Object.entries(want.grads)) {
      const err = tf.tidy(() => tf.norm(tf.sub(got!.grads[name]!, g)).dataSync()[0]! / tf.norm(g).dataSync()[0]!);
      expect(err, name).toBeLessThan(1e-4);
    }
    Array.from(wantPer).forEach((v, i) => expect(got!.per[i]).toBeCloseTo(v, 5));
    tf.dispose(Object.values(got!.grads));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([want.value, ...Object.values(want.grads)]);
    param.dispose();
  });
});

describe('nativeStepGrads for an EOT patch', () => {
  it('gives the all-tfjs gradient of log p(target) for a patch pasted on images at random placements', async () => {
    const r = mulberry32(21);
    const images = tf.tensor4d(Float32Array.from({ length: 4 * 32 * 32 * 3 }, () => r()), [4, 32, 32, 3]);
    const theta = tf.variable(tf.randomNormal([8, 8, 3], 0, 1, 'float32', 6), true, 'patch-logits');
    const placements = randomPlacements([32, 32], 4, { sizeRange: [0.4, 0.6], maxRotation: 22.5, seed: 2 });
    const target = c.labels.resolve('n03126707').index;
    // The EOT loss as an objective on the logits: per image log p(target).
    const objective: Objective = {
      name: 'log p(target)',
      layers: ['logits'],
      perItem: (acts) => tf.squeeze(tf.slice(tf.logSoftmax(acts.get('logits')!), [0, target], [-1, 1]), [1]) as tf.Tensor1D,
      fn: (acts) => tf.sum(objective.perItem(acts)) as tf.Scalar,
    };
    const img = () => pasteTf(images, tf.sigmoid(theta) as tf.Tensor3D, placements);
    const want = tf.variableGrads(() => tf.neg(objective.fn(new Map([['logits', c.logits(img())]]))) as tf.Scalar, [theta]);
    const got = await nativeStepGrads(c, objective, img, [theta]);
    expect(got, c.noNativeGradient).toBeDefined();
    const g = want.grads[theta.name]!;
    const err = tf.tidy(() => tf.norm(tf.sub(got!.grads[theta.name]!, g)).dataSync()[0]! / tf.norm(g).dataSync()[0]!);
    expect(err).toBeLessThan(1e-4);
    tf.dispose([images, theta, want.value, ...Object.values(want.grads), ...Object.values(got!.grads)]);
  });
});

