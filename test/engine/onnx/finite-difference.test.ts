import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, INPUT, withMaxPoolGrad } from '../../../src/engine/index.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { BACKWARD_OPS, OrtBackward } from '../../../src/engine/onnx/backward.js';
import { attr, encodeModel, floatTensor, int64Tensor, type NodeProto, type TensorProto } from '../../../src/engine/onnx/proto.js';
import { sessionOptions, SyncSession } from '../../../src/engine/onnx/runtime.js';
import { nchwToNhwc, nhwcToNchw, relError } from './fixtures.js';

/**
 * Every operator with a backward rule, alone in a graph, against central finite differences of J = Σ w·y on
 * onnxruntime's float32 forward: each input element moved by ±ε (all moves of a case run as one batch, one example
 * per row). Inputs keep clear of kinks (ReLU / Clip bounds, HardSigmoid's and HardSwish's corners, ties in a
 * max-pool window) by more than ε, so a piecewise-linear op is linear over the step and its difference is exact up
 * to rounding; a linear op is exact at any ε; smooth ops take Richardson's extrapolation of ε and ε/2 (error
 * O(ε⁴)). And against the tfjs engine's gradient of the same graph (src/engine/onnx/executor.ts on the tape). Bound:
 * 1e-4 relative (max |error| over max |gradient|), as for the PyTorch references.
 */

beforeAll(async () => {
  await initBackend('wasm');
});

type Kind = 'linear' | 'piecewise' | 'smooth';
interface Case {
  name: string;
  nodes: NodeProto[];
  inits?: TensorProto[];
  kind: Kind;
  /** Input values to keep more than 0.1 away from (piecewise ops). */
  kinks?: number[];
  /** Input range. */
  range?: [number, number];
  /** Distinct input values at least 0.05 apart (max-pool windows without near-ties). */
  distinct?: boolean;
  maxPool?: 'smooth';
  /** The function whose differences are taken, where it is not `nodes` (the smooth relaxation's own formula). */
  differenced?: NodeProto[];
  /** Operators the case covers (default: its nodes' own). */
  covers?: string[];
}

// 4 channels: an output of 3 × 3 pixels then differs from its NHWC form in shape (the tfjs comparison tells them apart).
const [N, C, H, W] = [2, 4, 6, 6];
const E = C * H * W;

/** A seeded uniform sequence in [0, 1) (a 32-bit LCG: reproducible without any library). */
function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function input(c: Case, seed: number): Float32Array {
  const u = uniform(seed);
  if (c.distinct) {
    // A shuffled ladder of values 0.05 apart, per example.
    const out = new Float32Array(N * E);
    for (let n = 0; n < N; n++) {
      const order = Array.from({ length: E }, (_, i) => i).sort(() => u() - 0.5);
      order.forEach((r, i) => (out[n * E + i] = (r - E / 2) * 0.05));
    }
    return out;
  }
  const [lo, hi] = c.range ?? [-1, 1];
  return Float32Array.from({ length: N * E }, () => {
    for (;;) {
      const v = lo + (hi - lo) * u();
      if (!(c.kinks ?? []).some((k) => Math.abs(v - k) < 0.1)) return v;
    }
  });
}

const r = (name: string, dims: number[], seed: number, scale = 1) => {
  const u = uniform(seed);
  return floatTensor(name, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (u() * 2 - 1) * scale), dims);
};
const node = (op_type: string, input: string[], output: string, attribute: NodeProto['attribute'] = []): NodeProto => ({ op_type, input, output: [output], name: output, attribute });
const { int, ints, float, string: str } = attr;

const CASES: Case[] = [
  { name: 'Conv 3×3 pads 1', kind: 'linear', nodes: [node('Conv', ['x', 'w', 'b'], 'y', [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])])], inits: [r('w', [4, C, 3, 3], 1, 0.5), r('b', [4], 2)] },
  { name: 'Conv stride 2, asymmetric pads, dilation', kind: 'linear', nodes: [node('Conv', ['x', 'w'], 'y', [ints('kernel_shape', [3, 2]), ints('strides', [2, 2]), ints('pads', [1, 0, 0, 1]), ints('dilations', [1, 2])])], inits: [r('w', [5, C, 3, 2], 3, 0.5)] },
  { name: 'Conv depthwise stride 2 SAME_UPPER', kind: 'linear', nodes: [node('Conv', ['x', 'w'], 'y', [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), str('auto_pad', 'SAME_UPPER'), int('group', C)])], inits: [r('w', [2 * C, 1, 3, 3], 4, 0.5)] },
  { name: 'Relu', kind: 'piecewise', kinks: [0], nodes: [node('Relu', ['x'], 'y')] },
  { name: 'Clip 0..6 (ReLU6)', kind: 'piecewise', range: [-1, 7], kinks: [0, 6], nodes: [node('Clip', ['x', 'lo', 'hi'], 'y')], inits: [floatTensor('lo', [0], []), floatTensor('hi', [6], [])] },
  { name: 'Clip below only', kind: 'piecewise', kinks: [-0.3], nodes: [node('Clip', ['x', 'lo'], 'y')], inits: [floatTensor('lo', [-0.3], [])] },
  { name: 'LeakyRelu', kind: 'piecewise', kinks: [0], nodes: [node('LeakyRelu', ['x'], 'y', [float('alpha', 0.1)])] },
  { name: 'HardSigmoid', kind: 'piecewise', range: [-4, 4], kinks: [-2.5, 2.5], nodes: [node('HardSigmoid', ['x'], 'y')] },
  { name: 'HardSwish', kind: 'piecewise', range: [-5, 5], kinks: [-3, 3], nodes: [node('HardSwish', ['x'], 'y')] },
  { name: 'Sigmoid', kind: 'smooth', range: [-3, 3], nodes: [node('Sigmoid', ['x'], 'y')] },
  { name: 'Tanh', kind: 'smooth', range: [-2, 2], nodes: [node('Tanh', ['x'], 'y')] },
  { name: 'Add and Sub, both operands on the path, one broadcast', kind: 'linear', nodes: [node('ReduceMean', ['x'], 'm', [ints('axes', [2, 3]), int('keepdims', 1)]), node('Add', ['x', 'm'], 'a'), node('Sub', ['a', 'x'], 's'), node('Sub', ['x', 's'], 'y')] },
  { name: 'Mul, both operands on the path, one broadcast', kind: 'smooth', nodes: [node('ReduceMean', ['x'], 'm', [ints('axes', [1]), int('keepdims', 1)]), node('Mul', ['x', 'm'], 'p'), node('Mul', ['p', 'x'], 'y')] },
  { name: 'Mul by a constant', kind: 'linear', nodes: [node('Mul', ['x', 'k'], 'y')], inits: [r('k', [1, C, 1, 1], 5)] },
  { name: 'Div, both operands on the path', kind: 'smooth', range: [1, 2], nodes: [node('Sigmoid', ['x'], 's'), node('Div', ['x', 's'], 'q'), node('Div', ['s', 'q'], 'y')], covers: ['Div'] },
  { name: 'BatchNormalization', kind: 'linear', nodes: [node('BatchNormalization', ['x', 'g', 'b', 'mu', 'var'], 'y', [float('epsilon', 1e-3)])], inits: [r('g', [C], 6), r('b', [C], 7), r('mu', [C], 8), floatTensor('var', Array.from({ length: C }, (_, i) => 0.5 + i / 2), [C])] },
  { name: 'MaxPool 3×3 stride 2 ceil_mode', kind: 'piecewise', distinct: true, nodes: [node('MaxPool', ['x'], 'y', [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', 1)])] },
  { name: 'MaxPool 3×3 stride 1 pads 1', kind: 'piecewise', distinct: true, nodes: [node('MaxPool', ['x'], 'y', [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])])] },
  {
    name: 'MaxPool through the smooth relaxation A(x²) / (0.01 + A|x|)',
    kind: 'smooth',
    maxPool: 'smooth',
    kinks: [0],
    nodes: [node('MaxPool', ['x'], 'y', [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', 1)])],
    differenced: [
      node('Mul', ['x', 'x'], 'x2'),
      node('AveragePool', ['x2'], 'N', [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', 1)]),
      node('Abs', ['x'], 'ax'),
      node('AveragePool', ['ax'], 'A', [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', 1)]),
      node('Add', ['A', 'eps'], 'D'),
      node('Div', ['N', 'D'], 'y'),
    ],
    inits: [floatTensor('eps', [0.01], [])],
    covers: [],
  },
  { name: 'AveragePool pads, padding not counted', kind: 'linear', nodes: [node('AveragePool', ['x'], 'y', [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1]), ints('strides', [2, 2])])] },
  { name: 'AveragePool padding counted, ceil_mode', kind: 'linear', nodes: [node('AveragePool', ['x'], 'y', [ints('kernel_shape', [2, 3]), ints('pads', [1, 0, 1, 1]), ints('strides', [2, 2]), int('count_include_pad', 1), int('ceil_mode', 1)])] },
  { name: 'GlobalAveragePool', kind: 'linear', nodes: [node('GlobalAveragePool', ['x'], 'y')] },
  { name: 'ReduceMean over H', kind: 'linear', nodes: [node('ReduceMean', ['x'], 'y', [ints('axes', [2]), int('keepdims', 0)])] },
  { name: 'Flatten → Gemm (transB, alpha, bias) → Softmax', kind: 'smooth', nodes: [node('Flatten', ['x'], 'f'), node('Gemm', ['f', 'w', 'b'], 'g', [int('transB', 1), float('alpha', 0.5)]), node('Softmax', ['g'], 'y')], inits: [r('w', [7, E], 9, 0.2), r('b', [7], 10)] },
  { name: 'Flatten → Gemm → LogSoftmax', kind: 'smooth', nodes: [node('Flatten', ['x'], 'f'), node('Gemm', ['f', 'w', 'b'], 'g', [int('transB', 1)]), node('LogSoftmax', ['g'], 'y')], inits: [r('w', [7, E], 11, 0.2), r('b', [7], 12)] },
  { name: 'Reshape → MatMul', kind: 'linear', nodes: [node('Reshape', ['x', 'shape'], 'f'), node('MatMul', ['f', 'w'], 'y')], inits: [int64Tensor('shape', [0, -1]), r('w', [E, 5], 11, 0.2)] },
  { name: 'Transpose, Concat, Identity, Dropout', kind: 'linear', nodes: [node('Transpose', ['x'], 't', [ints('perm', [0, 1, 3, 2])]), node('Identity', ['x'], 'i'), node('Dropout', ['t'], 'd'), node('Concat', ['i', 'd', 'x'], 'y', [int('axis', 1)])] },
  { name: 'Pad constant, reflect, edge', kind: 'linear', nodes: [node('Pad', ['x', 'p1'], 'a'), node('Pad', ['a', 'p2'], 'b', [str('mode', 'reflect')]), node('Pad', ['b', 'p3'], 'y', [str('mode', 'edge')])], inits: [int64Tensor('p1', [0, 0, 1, 0, 0, 0, 2, 1]), int64Tensor('p2', [0, 0, 2, 1, 0, 0, 1, 2]), int64Tensor('p3', [0, 0, 0, 2, 0, 0, 1, 0])] },
  { name: 'Slice, step 1: a crop of H and W, one bound from the end', kind: 'linear', nodes: [node('Slice', ['x', 's', 'e', 'a'], 'y')], inits: [int64Tensor('s', [1, -4]), int64Tensor('e', [5, -1]), int64Tensor('a', [2, 3])] },
  { name: 'Slice with steps 2 along H and −2 along W (scattered back)', kind: 'linear', nodes: [node('Slice', ['x', 's', 'e', 'a', 'st'], 'y')], inits: [int64Tensor('s', [1, -1]), int64Tensor('e', [H, -(W + 1)]), int64Tensor('a', [2, 3]), int64Tensor('st', [2, -2])] },
  { name: 'Slice reversing the channels', kind: 'linear', nodes: [node('Slice', ['x', 's', 'e', 'a', 'st'], 'y')], inits: [int64Tensor('s', [-1]), int64Tensor('e', [-(C + 1)]), int64Tensor('a', [1]), int64Tensor('st', [-1])] },
  { name: 'Abs, Neg', kind: 'piecewise', kinks: [0], nodes: [node('Abs', ['x'], 'a'), node('Neg', ['a'], 'y')] },
  { name: 'Exp', kind: 'smooth', nodes: [node('Exp', ['x'], 'y')] },
  { name: 'Log', kind: 'smooth', range: [0.5, 2], nodes: [node('Log', ['x'], 'y')] },
  { name: 'Sqrt', kind: 'smooth', range: [0.5, 2], nodes: [node('Sqrt', ['x'], 'y')] },
  { name: 'Reciprocal', kind: 'smooth', range: [0.5, 2], nodes: [node('Reciprocal', ['x'], 'y')] },
  { name: 'Erf', kind: 'smooth', range: [-2, 2], nodes: [node('Erf', ['x'], 'y')] },
  { name: 'Elu', kind: 'smooth', range: [-2, 2], kinks: [0], nodes: [node('Elu', ['x'], 'y', [float('alpha', 0.7)])] },
  { name: 'Softplus', kind: 'smooth', range: [-3, 3], nodes: [node('Softplus', ['x'], 'y')] },
  { name: 'Pow by a constant', kind: 'smooth', range: [0.5, 2], nodes: [node('Pow', ['x', 'p'], 'y')], inits: [floatTensor('p', [2.5], [])] },
  { name: 'Max of two operands on the path, Min with a constant', kind: 'piecewise', kinks: [0, -0.4], nodes: [node('Neg', ['x'], 'n'), node('Max', ['x', 'n'], 'm'), node('Min', ['x', 'c'], 'k'), node('Add', ['m', 'k'], 'y')], inits: [floatTensor('c', [-0.4], [])] },
  { name: 'ReduceSum (axes as input), ReduceMax', kind: 'piecewise', distinct: true, nodes: [node('ReduceSum', ['x', 'ax'], 's'), node('ReduceMax', ['x'], 'm', [ints('axes', [1]), int('keepdims', 1)]), node('Mul', ['m', 'k'], 'mk'), node('Add', ['s', 'mk'], 'y')], inits: [int64Tensor('ax', [2]), r('k', [1, 1, 6, 6], 12)] },
  { name: 'ReduceMin without keepdims, GlobalMaxPool', kind: 'piecewise', distinct: true, nodes: [node('ReduceMin', ['x'], 'm', [ints('axes', [2, 3]), int('keepdims', 0)]), node('GlobalMaxPool', ['x'], 'g'), node('Flatten', ['g'], 'f'), node('Sub', ['m', 'f'], 'y')] },
  { name: 'Unsqueeze, Squeeze, Expand, Cast', kind: 'linear', nodes: [node('ReduceMean', ['x'], 'm', [ints('axes', [1]), int('keepdims', 0)]), node('Unsqueeze', ['m', 'u'], 'a'), node('Expand', ['a', 'shape'], 'e'), node('Unsqueeze', ['e', 'u4'], 'b'), node('Squeeze', ['b', 'u4'], 'c'), node('Cast', ['c'], 'y', [int('to', 1)])], inits: [int64Tensor('u', [1]), int64Tensor('shape', [1, C, 1, W]), int64Tensor('u4', [4])] },
  { name: 'Gather: a list with a repeat along C, then a scalar along W', kind: 'linear', nodes: [node('Gather', ['x', 'i1'], 'a', [int('axis', 1)]), node('Gather', ['a', 'i2'], 'y', [int('axis', -1)])], inits: [int64Tensor('i1', [2, 0, 2]), int64Tensor('i2', [-2], [])] },
  { name: 'Gather: 2-D indices along H, a repeat and one from the end (scattered back)', kind: 'linear', nodes: [node('Gather', ['x', 'i'], 'y', [int('axis', 2)])], inits: [int64Tensor('i', [0, 2, -1, 0], [2, 2])] },
  {
    name: 'Gather: indices computed at run time (from the input\'s shape), with a repeat, along W (scattered back)',
    kind: 'linear',
    nodes: [node('Shape', ['x'], 's'), node('Gather', ['s', 'three'], 'w'), node('Sub', ['w', 'off'], 'i'), node('Gather', ['x', 'i'], 'y', [int('axis', 3)])],
    inits: [int64Tensor('three', [3], []), int64Tensor('off', [W - 1, W - 3, W - 1])],
  },
  { name: 'LRN', kind: 'smooth', range: [-2, 2], nodes: [node('LRN', ['x'], 'y', [int('size', 3), float('alpha', 0.5), float('beta', 0.75), float('bias', 1)])] },
];

function model(c: Case, nodes = c.nodes): Uint8Array {
  return encodeModel({
    ir_version: 8,
    opset_import: [{ domain: '', version: 14 }],
    graph: {
      name: c.name,
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'N' }, { dim_value: C }, { dim_value: H }, { dim_value: W }] } } } }],
      output: [{ name: 'y' }],
      initializer: c.inits ?? [],
      node: nodes,
    },
  });
}

/** Central differences of J_n = Σ w_n·y_n for every input element, all moves of every example in one batch. */
function finiteDifferences(session: SyncSession, c: Case, x: Float32Array, w: Float32Array, per: number): Float64Array {
  const eps = c.kind === 'linear' ? 0.5 : c.distinct ? 0.02 : 0.05;
  const steps = c.kind === 'smooth' ? [eps, -eps, eps / 2, -eps / 2] : [eps, -eps];
  const rows = N * E * steps.length;
  const batch = new Float32Array(rows * E);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < E; i++)
      steps.forEach((s, k) => {
        const row = (n * E + i) * steps.length + k;
        batch.set(x.subarray(n * E, (n + 1) * E), row * E);
        batch[row * E + i] = x[n * E + i]! + s;
      });
  const y = session.run({ x: { data: batch, dims: [rows, C, H, W] } }, ['y']).y!.data;
  const J = (row: number, n: number) => {
    let s = 0;
    for (let j = 0; j < per; j++) s += w[n * per + j]! * y[row * per + j]!;
    return s;
  };
  const g = new Float64Array(N * E);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < E; i++) {
      const at = (k: number) => J((n * E + i) * steps.length + k, n);
      // The steps as rounded to float32: the difference quotient uses the step the forward pass saw.
      const h = (k: number) => Math.fround(x[n * E + i]! + steps[k]!) - x[n * E + i]!;
      const d1 = (at(0) - at(1)) / (h(0) - h(1));
      g[n * E + i] = c.kind === 'smooth' ? (4 * ((at(2) - at(3)) / (h(2) - h(3))) - d1) / 3 : d1;
    }
  return g;
}

describe('backward graphs against finite differences, one operator at a time', () => {
  it('cover every operator with a backward rule', () => {
    const covered = new Set(CASES.flatMap((c) => c.covers ?? c.nodes.map((n) => n.op_type!)));
    expect([...BACKWARD_OPS].filter((op) => !covered.has(op))).toEqual([]);
  });

  it.each(CASES.map((c, k) => [c.name, c, k] as const))('%s', (_, c, k) => {
    const bytes = model(c);
    const bw = OrtBackward.create(bytes, { input: 'x', targets: ['y'], size: [H, W], ...(c.maxPool ? { maxPool: c.maxPool } : {}) }, 1);
    const session = SyncSession.open(c.differenced ? model(c, c.differenced) : bytes, sessionOptions(1, 'disabled'));
    try {
      const x = input(c, 100 + k);
      const per = bw.graph.targetShapes[0]!.slice(1).reduce((a, b) => a * b, 1);
      const w = Float32Array.from({ length: N * per }, uniform(200 + k)).map((v) => v * 2 - 1);
      const { grad } = bw.run(x, [N, C, H, W], [w]);
      const fd = finiteDifferences(session, c, x, w, per);
      expect(Math.max(...Array.from(fd, Math.abs)), 'the gradient is not zero').toBeGreaterThan(1e-3);
      expect(relError(grad, fd)).toBeLessThan(1e-4);
      // And the tfjs engine's gradient of the same graph (its image input NHWC; an output NHWC where an image operator
      // made it, else in the graph's own layout).
      const exec = OnnxExecutor.fromBytes(bytes);
      const tape = withMaxPoolGrad(c.maxPool ?? 'exact', () =>
        tf.tidy(() => {
          const xs = nchwToNhwc(tf.tensor4d(x, [N, C, H, W]));
          const own = tf.tensor(w, [N, ...bw.graph.targetShapes[0]!.slice(1)]);
          const [y0] = exec.run(new Map([[INPUT, xs]]), ['y']);
          const seed = y0!.shape.join() === own.shape.join() ? own : nchwToNhwc(own);
          return nhwcToNchw(tf.grad((v: tf.Tensor) => tf.sum(tf.mul(exec.run(new Map([[INPUT, v]]), ['y'])[0]!, seed)))(xs)).dataSync();
        }),
      );
      exec.dispose();
      expect(relError(grad, tape)).toBeLessThan(1e-4);
    } finally {
      bw.dispose();
      session.dispose();
    }
  });
});
