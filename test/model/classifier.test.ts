import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor, writeTinyGraphModel } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-classifier-'));
const env = { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') };
const relErr = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / Math.max(tf.max(tf.abs(b)).dataSync()[0]!, 1e-12));

let reference: tf.LayersModel;
let layersDesc: string;
let graphDesc: string;
let graphWeights: { w1: tf.Tensor; wd: tf.Tensor };

beforeAll(async () => {
  await initBackend('wasm');
  reference = tinyLayersModel(32);
  await saveLayersModel(reference, join(root, 'tiny_layers'));
  layersDesc = writeTinyDescriptor(join(root, 'desc'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  graphWeights = writeTinyGraphModel(join(root, 'tiny_graph'), 8);
  graphDesc = writeTinyDescriptor(join(root, 'desc'), { format: 'graph', size: 8, logits: 'logits', defaultLayer: 'relu1' });
});

const image = (n: number, size: number, seed = 7) => tf.randomUniform([n, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;

describe('Classifier on a layers model', () => {
  it('gives the same probabilities as the original model, and logits whose softmax they are', async () => {
    const c = await Classifier.load({ model: layersDesc, env });
    const x = image(3, 32);
    const probs = c.probabilities(x);
    const want = tf.tidy(() => reference.predict(tf.sub(tf.mul(x, 2), 1)) as tf.Tensor);
    expect(relErr(probs, want)).toBeLessThan(1e-5);
    const logits = c.logits(x);
    expect(logits.shape).toEqual([3, 5]);
    expect(relErr(tf.softmax(logits), want)).toBeLessThan(1e-5);
    tf.dispose([x, probs, want, logits]);
    c.dispose();
  });

  it('returns any layer\'s activation, by name or alias, equal to a truncated model', async () => {
    const c = await Classifier.load({ model: layersDesc, env });
    const x = image(2, 32);
    const act = c.activation(x, 'mid');
    const trunc = tf.model({ inputs: reference.inputs, outputs: reference.getLayer('conv_pw_1_relu').output as tf.SymbolicTensor });
    const want = tf.tidy(() => trunc.predict(tf.sub(tf.mul(x, 2), 1)) as tf.Tensor);
    expect(act.shape).toEqual([2, 8, 8, 16]);
    expect(relErr(act, want)).toBeLessThan(1e-5);
    tf.dispose([x, act, want]);
    c.dispose();
  });

  it('names the closest layers on a typo', async () => {
    const c = await Classifier.load({ model: layersDesc, env });
    expect(() => c.resolveLayer('conv_pw_1_rel')).toThrow(/no layer "conv_pw_1_rel".*closest: conv_pw_1_relu/);
    c.dispose();
  });

  it('input gradients on wasm match the cpu backend', async () => {
    const x = image(2, 32);
    const grads: tf.Tensor[] = [];
    for (const backend of ['cpu', 'wasm'] as const) {
      const c = await Classifier.load({ model: layersDesc, env, backend });
      const xb = tf.tensor(x.dataSync(), x.shape) as tf.Tensor4D;
      const { grad } = c.inputGradient(xb, ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, 1], [-1, 1])));
      grads.push(tf.tensor(grad.dataSync(), grad.shape));
      tf.dispose([xb, grad]);
      c.dispose();
    }
    await initBackend('wasm');
    expect(relErr(grads[1]!, grads[0]!)).toBeLessThan(1e-4);
    tf.dispose([x, ...grads]);
  });

  it('gradients w.r.t. a hidden layer equal finite differences of the logit', async () => {
    const c = await Classifier.load({ model: layersDesc, env });
    const x = image(1, 32);
    const cls = 2;
    const objective = ([l]: tf.Tensor[]) => tf.sum(tf.slice(l!, [0, cls], [-1, 1])) as tf.Scalar;
    const { activation, grad } = c.layerGradient(x, 'conv_pw_1_relu', ['logits'], objective);
    // The logit after the layer is linear in it except through relu6 kinks upstream, which are behind the layer:
    // downstream (pool -> 1x1 conv) is linear, so the gradient is exact and a directional derivative checks it.
    const dir = tf.randomNormal(activation.shape, 0, 1, 'float32', 5);
    const eps = 1e-2;
    const f = (h: tf.Tensor) => tf.tidy(() => objective(c.run(x, ['logits'], new Map([['conv_pw_1_relu', h]]))).dataSync()[0]!);
    const fd = (f(tf.add(activation, tf.mul(dir, eps))) - f(tf.sub(activation, tf.mul(dir, eps)))) / (2 * eps);
    const analytic = tf.sum(tf.mul(grad, dir)).dataSync()[0]!;
    expect(Math.abs(fd - analytic) / Math.abs(analytic)).toBeLessThan(1e-3);
    tf.dispose([x, activation, grad, dir]);
    c.dispose();
  });

  it('leaks no tensors in run, gradients and top-k', async () => {
    const c = await Classifier.load({ model: layersDesc, env });
    const x = image(2, 32);
    const before = tf.memory().numTensors;
    tf.dispose(c.run(x, ['conv1_relu', 'logits', 'probs']));
    const g = c.inputGradient(x, ['probs'], ([p]) => tf.sum(p!));
    g.grad.dispose();
    const h = c.layerGradient(x, 'conv1_relu', ['logits'], ([l]) => tf.sum(l!));
    tf.dispose([h.activation, h.grad]);
    const p = c.probabilities(x);
    c.topK(p, 3);
    p.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    c.dispose();
  });

  it('rejects a label set that does not match the output width, with the fix', async () => {
    const bad = writeTinyDescriptor(join(root, 'desc-bad'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu', offset: 1 });
    await expect(Classifier.load({ model: bad, env })).rejects.toThrow(/outputs 5 values but its label set/);
  });
});

describe('Classifier on a graph model', () => {
  it('takes images of any size when the graph\'s input size is fixed: resampled, with gradients (icons, patches)', async () => {
    const c = await Classifier.load({ model: graphDesc, env });
    const small = image(1, 8, 3);
    const big = tf.tidy(() => tf.image.resizeBilinear(small, [20, 20]) as tf.Tensor4D);
    // The big image is resampled back to the graph's 8×8 before it runs: close to the original's logits.
    const [a, b] = [c.logits(small), c.logits(big)];
    expect(b.shape).toEqual(a.shape);
    const { grad } = c.inputGradient(big, ['logits'], ([l]) => tf.sum(l!));
    expect(grad.shape).toEqual([1, 20, 20, 3]);
    expect(tf.tidy(() => tf.max(tf.abs(grad)).dataSync()[0]!)).toBeGreaterThan(0);
    tf.dispose([small, big, a, b, grad]);
    c.dispose();
  });

  it('computes the graph, reads hidden nodes and gets gradients w.r.t. them', async () => {
    const c = await Classifier.load({ model: graphDesc, env });
    const x = image(2, 8);
    const [relu, logits] = c.run(x, ['relu1', 'logits']);
    const want = tf.tidy(() => {
      const r = tf.relu(tf.conv2d(tf.sub(tf.mul(x, 2), 1) as tf.Tensor4D, graphWeights.w1 as tf.Tensor4D, 1, 'same'));
      return [r, tf.matMul(tf.mean(r, [1, 2]), graphWeights.wd as tf.Tensor2D)];
    });
    expect(relErr(relu!, want[0]!)).toBeLessThan(1e-5);
    expect(relErr(logits!, want[1]!)).toBeLessThan(1e-5);
    expect(c.layers.find((l) => l.name === 'relu1')?.shape).toEqual([8, 8, 4]);
    // d logit_0 / d relu1 = wd[:,0] / (8*8) at every position.
    const { grad, activation } = c.layerGradient(x, 'relu1', ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, 0], [-1, 1])));
    const expected = tf.tidy(() => tf.broadcastTo(tf.div(tf.reshape(tf.slice(graphWeights.wd, [0, 0], [-1, 1]), [1, 1, 1, 4]), 64), [2, 8, 8, 4]));
    expect(relErr(grad, expected)).toBeLessThan(1e-5);
    const ig = c.inputGradient(x, ['logits'], ([l]) => tf.sum(l!));
    expect(ig.grad.shape).toEqual([2, 8, 8, 3]);
    tf.dispose([x, relu!, logits!, ...want, grad, activation, expected, ig.grad]);
    c.dispose();
  });
});
