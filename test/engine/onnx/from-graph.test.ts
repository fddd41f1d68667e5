import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { attr, GraphBuilder } from '../../../bench/graph-model.js';
import { initBackend } from '../../../src/engine/backend.js';
import { INPUT } from '../../../src/engine/executor.js';
import { ExportUnsupported } from '../../../src/engine/onnx/export.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { graphToOnnx, type GraphNode } from '../../../src/engine/onnx/from-graph.js';

const r = (shape: number[], seed: number, sd = 0.4) => tf.randomNormal(shape, 0, sd, 'float32', seed);
const i32 = (v: number[] | number[][]) => (Array.isArray(v[0]) ? tf.tensor2d(v as number[][], undefined, 'int32') : tf.tensor1d(v as number[], 'int32'));

/** Every operator the converter has a rule for, in the shapes tfjs-converter writes them. */
function opZoo(): { g: GraphBuilder; image: string[]; flat: string[] } {
  const g = new GraphBuilder();
  const x = g.input('input', [12, 12]);
  const c1 = g.conv('c1', x, r([3, 3, 3, 8], 1) as tf.Tensor4D, { bias: r([8], 2) as tf.Tensor1D, act: 'Relu6', strides: 2 });
  const d1 = g.conv('d1', c1, r([3, 3, 8, 2], 3) as tf.Tensor4D, { bias: r([16], 4) as tf.Tensor1D, act: 'Relu', depthwise: true });
  const p1 = g.op('p1', 'Pad', [d1, g.const('p1/pads', i32([[0, 0], [1, 0], [0, 1], [0, 0]]))]);
  const v1 = g.conv('v1', p1, r([3, 3, 16, 8], 5) as tf.Tensor4D, { strides: 2, padding: 'VALID' });
  const bn = g.op('bn', 'FusedBatchNormV3', [v1, g.const('bn/g', r([8], 6)), g.const('bn/b', r([8], 7)), g.const('bn/m', r([8], 8)), g.const('bn/v', tf.abs(r([8], 9)))], { epsilon: attr.float(1e-3), data_format: attr.str('NHWC') });
  const a1 = g.op('a1', 'AddV2', [bn, g.const('a1/c', r([8], 10))]);
  const m1 = g.op('m1', 'Mul', [g.const('m1/c', r([1, 1, 8], 11)), a1]);
  const s1 = g.op('s1', 'Sub', [m1, g.const('s1/c', tf.scalar(0.1))]);
  const sg = g.op('sg', 'Sigmoid', [s1]);
  const ap = g.op('ap', 'AvgPool', [c1], { ksize: attr.ints([1, 3, 3, 1]), strides: attr.ints([1, 2, 2, 1]), padding: attr.str('SAME'), data_format: attr.str('NHWC') });
  const mp = g.op('mp', 'MaxPool', [c1], { ksize: attr.ints([1, 2, 2, 1]), strides: attr.ints([1, 2, 2, 1]), padding: attr.str('VALID'), data_format: attr.str('NHWC') });
  const cat = g.op('cat', 'ConcatV2', [sg, ap, mp, g.const('cat/axis', tf.scalar(-1, 'int32'))], { N: attr.int(3) });
  const bias = g.op('bias', 'BiasAdd', [cat, g.const('bias/b', r([24], 12))], { data_format: attr.str('NHWC') });
  const gm = g.op('gm', 'Mean', [bias, g.const('gm/axes', i32([1, 2]))], { keep_dims: attr.bool(true) });
  const sq = g.op('sq', 'Squeeze', [gm], { squeeze_dims: attr.ints([1, 2]) });
  // A transposed tensor reduced over its last two axes: the NCHW bookkeeping must undo the permutation.
  const tr = g.op('tr', 'Transpose', [bias, g.const('tr/perm', i32([0, 3, 1, 2]))]);
  const tm = g.op('tm', 'Max', [tr, g.const('tm/axes', i32([2, 3]))], { keep_dims: attr.bool(false) });
  // Flatten in NHWC order: the row order differs from NCHW, so a wrong layout shows at once.
  const fl = g.op('fl', 'Reshape', [bias, g.const('fl/shape', i32([-1, 216]))]);
  const fc = g.op('fc', '_FusedMatMul', [fl, g.const('fc/w', r([216, 10], 13, 0.1)), g.const('fc/b', r([10], 14))], { transpose_a: attr.bool(false), transpose_b: attr.bool(false), fused_ops: attr.strs(['BiasAdd', 'Relu']), num_args: attr.int(1), epsilon: attr.float(0) });
  const fc2 = g.op('fc2', 'MatMul', [fc, g.const('fc2/w', r([5, 10], 15))], { transpose_a: attr.bool(false), transpose_b: attr.bool(true) });
  const side = g.op('side', 'MatMul', [sq, g.const('side/w', r([24, 5], 16))], { transpose_a: attr.bool(false), transpose_b: attr.bool(false) });
  const side2 = g.op('side2', 'MatMul', [tm, g.const('side2/w', r([24, 5], 17))], { transpose_a: attr.bool(false), transpose_b: attr.bool(false) });
  // A constant chain (a batch norm's scale left unfolded by the converter) is folded at conversion.
  const scale = g.op('scale', 'Rsqrt', [g.const('scale/v', tf.tensor1d([4, 1, 0.25, 9, 16]))]);
  const sum = g.op('sum', 'AddV2', [g.op('sum0', 'AddV2', [fc2, side]), side2]);
  const logits = g.op('logits', 'Mul', [g.op('id', 'Identity', [sum]), scale]);
  g.op('probs', 'Softmax', [logits]);
  return { g, image: [c1, d1, p1, v1, bn, a1, m1, s1, sg, ap, mp, cat, bias, gm], flat: [sq, tm, fl, fc, fc2, logits, 'probs'] };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('tfjs graph models as ONNX', () => {
  it('computes every node as tfjs runs the graph itself (NHWC flatten, pools, folded constants, fused ops)', async () => {
    const { g, image, flat } = opZoo();
    const artifacts = g.artifacts();
    const model = await tf.loadGraphModel({ load: async () => artifacts });
    const weights = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs!);
    const conv = graphToOnnx(g.nodes as GraphNode[], weights);
    tf.dispose(Object.values(weights));
    expect(conv.inputSize).toEqual([12, 12]);
    const exec = OnnxExecutor.fromBytes(conv.bytes, { input: conv.input });
    const x = tf.randomUniform([2, 12, 12, 3], -1, 1, 'float32', 20);
    const names = [...image, ...flat];
    const want = model.execute({ input: x }, names) as tf.Tensor[];
    const got = exec.run(new Map([[INPUT, x]]), names);
    names.forEach((n, i) => {
      expect(got[i]!.shape, n).toEqual(want[i]!.shape);
      const err = tf.tidy(() => tf.max(tf.abs(tf.sub(got[i]!, want[i]!))).dataSync()[0]!);
      const scale = tf.tidy(() => tf.max(tf.abs(want[i]!)).dataSync()[0]!);
      expect(err, n).toBeLessThan(1e-5 * Math.max(1, scale));
    });
    tf.dispose([x, ...want, ...got]);
    exec.dispose();
    model.dispose();
    g.dispose();
  });

  it('names the node, its operator and the reason for what it cannot convert', () => {
    const g = new GraphBuilder();
    const x = g.input('input', [-1, -1]);
    g.op('odd', 'Selu', [x]);
    expect(() => graphToOnnx(g.nodes as GraphNode[], {})).toThrow(ExportUnsupported);
    expect(() => graphToOnnx(g.nodes as GraphNode[], {})).toThrow('node odd (Selu): no ONNX rule');
    const h = new GraphBuilder();
    const y = h.input('input', [8, 8]);
    h.op('shape', 'Shape', [y]);
    expect(() => graphToOnnx(h.nodes as GraphNode[], {})).toThrow(/node shape \(Shape\)/);
    g.dispose();
    h.dispose();
  });

  it('leaves no tensors behind', () => {
    const { g } = opZoo();
    const a = g.artifacts();
    const weights = tf.io.decodeWeights(a.weightData, a.weightSpecs!);
    const before = tf.memory().numTensors;
    graphToOnnx(g.nodes as GraphNode[], weights);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(weights));
    g.dispose();
  });
});
