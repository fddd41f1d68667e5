import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, INPUT, OrtForward } from '../../../src/engine/index.js';
import { ExportUnsupported, exportLayersModel } from '../../../src/engine/onnx/export.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { tinyLayersModel } from '../../helpers/tiny-models.js';
import { relError } from './fixtures.js';

/** The tfjs → ONNX exporter: the written graph computes what the Keras model computes, in our executor and in onnxruntime. */

beforeAll(async () => {
  await initBackend('wasm');
});

/** Every layer kind the exporter writes, with non-trivial batch-norm statistics. */
function everyLayerModel(): tf.LayersModel {
  const seed = (s: number) => ({ kernelInitializer: tf.initializers.randomNormal({ stddev: 0.3, seed: s }) });
  const input = tf.input({ shape: [17, 17, 3] });
  let x = tf.layers.zeroPadding2d({ padding: [[1, 0], [0, 1]] }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'valid', ...seed(1) }).apply(x) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ epsilon: 1e-3 });
  x = bn.apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  const a = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2, activation: 'relu6', depthwiseInitializer: tf.initializers.randomNormal({ stddev: 0.3, seed: 2 }) }).apply(x) as tf.SymbolicTensor;
  const b = tf.layers.conv2d({ filters: 12, kernelSize: 1, activation: 'sigmoid', ...seed(3) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
  x = tf.layers.concatenate().apply([x, a]) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.5 }).apply(x) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(x) as tf.SymbolicTensor; // spatial 8×8: NHWC order matters here
  const pooled = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const d1 = tf.layers.dense({ units: 5, ...seed(4) }).apply(flat) as tf.SymbolicTensor;
  const d2 = tf.layers.dense({ units: 5, activation: 'tanh', ...seed(5) }).apply(pooled) as tf.SymbolicTensor;
  const out = tf.layers.add({ name: 'logits' }).apply([d1, d2]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const [g, be, m, v] = bn.getWeights();
  bn.setWeights([tf.randomUniform(g!.shape, 0.5, 1.5, 'float32', 6), tf.randomNormal(be!.shape, 0, 0.2, 'float32', 7), tf.randomNormal(m!.shape, 0, 0.2, 'float32', 8), tf.randomUniform(v!.shape, 0.5, 2, 'float32', 9)]);
  return model;
}

describe.each([
  ['the tiny MobileNet', () => tinyLayersModel(32), 32, 'conv_preds'],
  ['a model with every exported layer kind', everyLayerModel, 17, 'logits'],
] as const)('exportLayersModel: %s', (_name, make, size, logits) => {
  it('computes the Keras model in our ONNX executor and in onnxruntime', async () => {
    const model = make();
    const { bytes, input } = exportLayersModel(model);
    const x = tf.randomUniform([3, size, size, 3], -1, 1, 'float32', 11);
    const wantT = tf.tidy(() => {
      const layer = model.getLayer(logits);
      const sub = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor });
      return sub.predict(x) as tf.Tensor;
    });
    const want = wantT.dataSync();
    const exec = OnnxExecutor.fromBytes(bytes);
    const ours = tf.tidy(() => exec.run(new Map([[INPUT, x]]), [logits])[0]!.dataSync());
    expect(relError(ours, want)).toBeLessThan(1e-5);
    const session = await OrtForward.create(bytes, input, [logits]);
    if (!session) return expect.fail('onnxruntime-node is not installed (npm ci installs it)');
    const nchw = tf.transpose(x, [0, 3, 1, 2]);
    const [theirs] = await session.run(nchw.dataSync() as Float32Array, nchw.shape);
    expect(relError(theirs!, want)).toBeLessThan(1e-4);
    await session.dispose();
    exec.dispose();
    tf.dispose([x, wantT, nchw]);
    model.dispose();
  });
});

it('names the first layer it cannot write', () => {
  const input = tf.input({ shape: [8, 8, 3] });
  const pooled = tf.layers.maxPooling2d({ poolSize: 2, name: 'the_pool' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: pooled });
  expect(() => exportLayersModel(model)).toThrow(ExportUnsupported);
  expect(() => exportLayersModel(model)).toThrow(/layer the_pool \(MaxPooling2D\)/);
});
