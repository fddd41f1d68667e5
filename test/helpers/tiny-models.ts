import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier, type LoadOptions } from '../../src/model/classifier.js';

/**
 * Tiny random models written to disk in tfjs format, with descriptors, so every part of model
 * loading runs in unit tests without the real weights.
 */
export const TINY_CLASSES: Array<[string, string, string]> = [
  ['n02066245', 'grey_whale', 'grey whale, gray whale, devilfish'],
  ['n01484850', 'great_white_shark', 'great white shark, white shark'],
  ['n02799071', 'baseball', 'baseball'],
  ['n03126707', 'crane', 'crane'],
  ['n02012849', 'crane', 'crane'],
];

function writeArtifacts(dir: string, topology: unknown, specs: tf.io.WeightsManifestEntry[], data: ArrayBuffer, format?: string) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'group1-shard1of1'), Buffer.from(data));
  const json = { ...(format ? { format } : {}), modelTopology: topology, weightsManifest: [{ paths: ['group1-shard1of1'], weights: specs }] };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
}

/** A MobileNet-shaped layers model: conv s2, bn, relu6, depthwise, pointwise, pool, 1x1 conv logits, softmax. */
export function tinyLayersModel(size = 32, classes = TINY_CLASSES.length): tf.LayersModel {
  const init = { kernelInitializer: tf.initializers.randomNormal({ stddev: 0.3, seed: 1 }) };
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'conv1', ...init }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'conv1_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'conv1_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'conv_dw_1', depthwiseInitializer: tf.initializers.randomNormal({ stddev: 0.3, seed: 2 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6', name: 'conv_dw_1_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 1, name: 'conv_pw_1', ...init }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6', name: 'conv_pw_1_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reshape({ targetShape: [1, 1, 16], name: 'reshape_1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: classes, kernelSize: 1, name: 'conv_preds', ...init }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'softmax', name: 'act_softmax' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reshape({ targetShape: [classes], name: 'reshape_2' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      writeArtifacts(dir, a.modelTopology, a.weightSpecs!, a.weightData as ArrayBuffer);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/**
 * A small TF graph (GraphDef JSON as tfjs-converter writes it): conv -> relu -> mean -> matmul -> softmax.
 * With `Selu` (an operator the ONNX conversion has no rule for) it stays on tfjs's GraphModel; with `Elu` it runs on onnxruntime, but has no backward graph. Returns the weights so tests can compute the same function with plain tf ops.
 */
export function writeTinyGraphModel(dir: string, size = 8, classes = TINY_CLASSES.length, activation: 'Relu' | 'Selu' | 'Elu' = 'Relu') {
  const w1 = tf.randomNormal([3, 3, 3, 4], 0, 0.5, 'float32', 3);
  const wd = tf.randomNormal([4, classes], 0, 0.5, 'float32', 4);
  const axes = tf.tensor1d([1, 2], 'int32');
  const f = { type: 'DT_FLOAT' };
  const nodes = [
    { name: 'input', op: 'Placeholder', attr: { dtype: f, shape: { shape: { dim: [{ size: '-1' }, { size: String(size) }, { size: String(size) }, { size: '3' }] } } } },
    { name: 'w1', op: 'Const', attr: { dtype: f, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '3' }, { size: '3' }, { size: '3' }, { size: '4' }] } } } } },
    { name: 'conv1', op: 'Conv2D', input: ['input', 'w1'], attr: { T: f, strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: b64('SAME') }, data_format: { s: b64('NHWC') }, dilations: { list: { i: ['1', '1', '1', '1'] } } } },
    { name: 'relu1', op: activation, input: ['conv1'], attr: { T: f } },
    { name: 'axes', op: 'Const', attr: { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32', tensorShape: { dim: [{ size: '2' }] } } } } },
    { name: 'gap', op: 'Mean', input: ['relu1', 'axes'], attr: { T: f, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
    { name: 'wd', op: 'Const', attr: { dtype: f, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '4' }, { size: String(classes) }] } } } } },
    { name: 'logits', op: 'MatMul', input: ['gap', 'wd'], attr: { T: f, transpose_a: { b: false }, transpose_b: { b: false } } },
    { name: 'probs', op: 'Softmax', input: ['logits'], attr: { T: f } },
  ];
  const specs: tf.io.WeightsManifestEntry[] = [
    { name: 'w1', shape: [3, 3, 3, 4], dtype: 'float32' },
    { name: 'axes', shape: [2], dtype: 'int32' },
    { name: 'wd', shape: [4, classes], dtype: 'float32' },
  ];
  const parts = [w1.dataSync(), axes.dataSync(), wd.dataSync()];
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), off);
    off += p.byteLength;
  }
  writeArtifacts(dir, { node: nodes, versions: { producer: 1 } }, specs, bytes.buffer, 'graph-model');
  axes.dispose();
  return { w1, wd };
}

/** A descriptor + label file for a tiny model in `dir`. */
export function writeTinyDescriptor(dir: string, opts: { format: 'layers' | 'graph'; size: number; logits: string; defaultLayer: string; offset?: number; url?: string }) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'labels.json'), JSON.stringify({ name: 'tiny', classes: TINY_CLASSES }));
  const desc = {
    name: `tiny_${opts.format}`,
    description: 'tiny random test model',
    format: opts.format,
    weights: { localName: `tiny_${opts.format}`, ...(opts.url ? { url: opts.url } : {}) },
    input: { size: [opts.size, opts.size], resizeShorter: null, range: [-1, 1], ...(opts.format === 'graph' ? { node: 'input' } : {}) },
    labels: { set: 'labels.json', offset: opts.offset ?? 0 },
    output: { kind: 'softmax', logits: opts.logits },
    layers: { default: opts.defaultLayer, aliases: { mid: opts.defaultLayer } },
  };
  const path = join(dir, `tiny_${opts.format}.json`);
  writeFileSync(path, JSON.stringify(desc, null, 2));
  return path;
}

/**
 * The usual unit-test classifier: the tiny layers model saved under `root`, a descriptor (logits conv_preds,
 * default layer conv_pw_1_relu) and a Classifier loaded on wasm with `root` as the models folder.
 */
export async function loadTinyClassifier(root: string, size = 32, backend?: LoadOptions['backend']): Promise<Classifier> {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(size), join(root, 'tiny_layers'));
  const desc = writeTinyDescriptor(join(root, 'desc'), { format: 'layers', size, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  return Classifier.load({ model: desc, env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') }, ...(backend ? { backend } : {}) });
}
