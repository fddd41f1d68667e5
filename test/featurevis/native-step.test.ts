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
