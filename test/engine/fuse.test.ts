import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { INPUT } from '../../src/engine/executor.js';
import { LayersExecutor } from '../../src/engine/layers-executor.js';

/**
 * Conv → batch norm → activation chains folded into fused kernels (src/engine/fuse.ts) must compute what the
 * layers compute. Reading an inner tensor (a conv or bn output) switches a call to the plain layer-by-layer
 * schedule, which is the reference here.
 */
const relErr = (a: tf.Tensor, b: tf.Tensor) =>
  tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / Math.max(tf.max(tf.abs(b)).dataSync()[0]!, 1e-12));

/**
 * Every pattern fuse.ts handles, plus one it must half leave alone (a bn output read by two layers: conv and bn
 * fold, the activation stays a layer). `variants` adds batch norms without scale / without centre, which tfjs
 * itself cannot differentiate (their gradient saves the missing tensor), so the gradient test leaves them out.
 */
function model(variants = true): tf.LayersModel {
  const init = (seed: number) => tf.initializers.randomNormal({ stddev: 0.4, seed });
  const input = tf.input({ shape: [16, 16, 3], name: 'input_1' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(1), name: 'c1' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'c1_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'c1_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false, depthwiseInitializer: init(2), name: 'dw' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'dw_bn', scale: !variants }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6', name: 'dw_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: true, kernelInitializer: init(3), biasInitializer: init(4), name: 'pw' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'pw_bn', center: !variants }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'pw_relu' }).apply(x) as tf.SymbolicTensor;
  // One filter per channel, stride 1, 'same': its input gradient uses the precomputed rotated filter.
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init(7), name: 'dw2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'dw2_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6', name: 'dw2_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'valid', useBias: false, kernelInitializer: init(5), name: 'c2' }).apply(x) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'c2_bn' }).apply(x) as tf.SymbolicTensor; // read twice: not fused
  const a = tf.layers.activation({ activation: 'relu6', name: 'c2_relu' }).apply(bn) as tf.SymbolicTensor;
  x = tf.layers.add({ name: 'skip' }).apply([a, bn]) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 5, kernelInitializer: init(6), name: 'logits' }).apply(x) as tf.SymbolicTensor;
  const m = tf.model({ inputs: input, outputs: x });
  // Non-trivial batch-norm statistics, so folding has something to fold.
  let seed = 10;
  for (const layer of m.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    layer.setWeights(layer.getWeights().map((w, k, all) => {
      const isVariance = k === all.length - 1;
      return isVariance ? tf.randomUniform(w.shape, 0.3, 2, 'float32', seed++) : tf.randomNormal(w.shape, 0, 0.5, 'float32', seed++);
    }));
  }
  return m;
}

let exec: LayersExecutor;
let x: tf.Tensor4D;

beforeAll(async () => {
  await initBackend('wasm');
  exec = new LayersExecutor(model());
  x = tf.randomUniform([3, 16, 16, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
});

const feeds = () => new Map([[INPUT, x as tf.Tensor]]);

describe('fused conv → batch norm → activation', () => {
  it('fuses every chain, stopping where an inner tensor is read twice', () => {
    // c1, dw, pw, dw2 whole; c2 → c2_bn folds, but c2_relu stays a layer because skip also reads c2_bn.
    expect(exec.fusedChains).toBe(5);
  });

  it('gives the layers’ outputs (fused vs layer by layer)', () => {
    const [fused] = exec.run(feeds(), ['logits']);
    const [plain, inner] = exec.run(feeds(), ['logits', 'pw_bn']); // reading pw_bn forces the plain schedule
    expect(inner!.shape).toEqual([3, 8, 8, 12]);
    expect(relErr(fused!, plain!)).toBeLessThan(1e-5);
    for (const name of ['c1_relu', 'dw_relu', 'pw_relu']) {
      const [f] = exec.run(feeds(), [name]);
      const [p] = exec.run(feeds(), [name, 'c1_bn']);
      expect(relErr(f!, p!), name).toBeLessThan(1e-5);
    }
    // Also matches tf.layers' own predict.
    const viaKeras = (exec as unknown as { model: tf.LayersModel }).model.predict(x) as tf.Tensor;
    expect(relErr(fused!, viaKeras)).toBeLessThan(1e-5);
  });

  it('feeds a fused chain’s output as a hidden layer', () => {
    const [h] = exec.run(feeds(), ['dw_relu']);
    const [fromH] = exec.run(new Map([['dw_relu', h!]]), ['logits']);
    const [direct] = exec.run(feeds(), ['logits']);
    expect(relErr(fromH!, direct!)).toBeLessThan(1e-6);
  });

  it('has the layers’ input gradient', () => {
    const e = new LayersExecutor(model(false));
    const logit = (outputs: string[]) => (v: tf.Tensor) => tf.sum(tf.slice(e.run(new Map([[INPUT, v]]), outputs)[0]!, [0, 2], [-1, 1]));
    const fused = tf.grad(logit(['logits']))(x);
    const plain = tf.grad(logit(['logits', 'pw_bn']))(x);
    expect(tf.max(tf.abs(fused)).dataSync()[0]).toBeGreaterThan(0);
    expect(relErr(fused, plain)).toBeLessThan(1e-4);
    e.dispose();
  });

  it('has the layers’ forward-mode derivative (JVP) through fused chains', () => {
    const [h] = exec.run(feeds(), ['c1_relu']);
    const groups = 2;
    const t = tf.randomNormal([3 * groups, ...h!.shape.slice(1)], 0, 1, 'float32', 9);
    const fused = exec.jvp(new Map([['c1_relu', h!]]), 'c1_relu', t, groups, ['logits'])!;
    const plain = exec.jvp(new Map([['c1_relu', h!]]), 'c1_relu', t, groups, ['logits', 'pw_bn'])!;
    expect(relErr(fused.primal[0]!, plain.primal[0]!)).toBeLessThan(1e-5);
    expect(relErr(fused.tangent[0]!, plain.tangent[0]!)).toBeLessThan(1e-4);
    // And the derivative is right: (f(h + εt) − f(h − εt)) / 2ε for the first tangent of each example.
    const eps = 1e-3;
    const first = tf.gather(t, [0, 2, 4]);
    const plus = exec.run(new Map([['c1_relu', tf.add(h!, tf.mul(first, eps))]]), ['logits'])[0]!;
    const minus = exec.run(new Map([['c1_relu', tf.sub(h!, tf.mul(first, eps))]]), ['logits'])[0]!;
    const fd = tf.div(tf.sub(plus, minus), 2 * eps);
    expect(relErr(tf.gather(fused.tangent[0]!, [0, 2, 4]), fd)).toBeLessThan(5e-2);
  });

  it('leaks no tensors, and dispose frees the folded weights', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      exec.run(feeds(), ['logits']);
    });
    tf.tidy(() => {
      tf.grad((v: tf.Tensor) => tf.sum(exec.run(new Map([[INPUT, v]]), ['logits'])[0]!))(x);
    });
    tf.tidy(() => {
      const [h] = exec.run(feeds(), ['dw_relu']);
      exec.jvp(new Map([['dw_relu', h!]]), 'dw_relu', tf.onesLike(h!), 1, ['logits']);
    });
    expect(tf.memory().numTensors).toBe(before);
    const other = new LayersExecutor(model());
    const withBoth = tf.memory().numTensors;
    other.dispose();
    expect(withBoth - tf.memory().numTensors).toBeGreaterThan(10); // model weights + folded filters, biases, adjoints
  });
});
