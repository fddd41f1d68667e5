import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchNormGrads,
  conv2dFilterGrad,
  conv2dInputGrad,
  installedKernelOverrides,
  installGradientFixes,
  withForcedRewrite,
} from '../../src/engine/gradients/index.js';
import { data, param, weighted, use, inputGrad, grads, expectClose, type Pad } from '../helpers/grad-check.js';

/**
 * Correctness of the faster gradients (forward-convolution input gradients, broadcasting batch norm, arithmetic
 * masks for relu / relu6 / min / max, sharing Identity on wasm, conv filter gradient as one convolution).
 * Reference: the pure-JS cpu backend with tfjs's own gradients. Timings live in bench/ (workload `gradient`), never here.
 */

installGradientFixes();

/** cpu with tfjs's own gradients and native kernels: the reference. */
async function cpuNative<T>(fn: () => T): Promise<T> {
  await use('cpu');
  return fn();
}

/** The same computation: cpu native (reference) vs cpu with the rewrites forced vs wasm. */
async function allMatch(name: string, fn: () => Float32Array): Promise<void> {
  const want = await cpuNative(fn);
  expectClose(`cpu rewrite≈native ${name}`, withForcedRewrite(fn), want);
  await use('wasm');
  expectClose(`wasm≈cpu ${name}`, fn(), want);
}

beforeAll(async () => {
  await use('wasm');
});

// ---------- conv2d input gradient as forward convolutions ----------

describe('conv2d input gradient (rewrite: forward convolutions of dy)', () => {
  const windows: Array<[number, number]> = [
    [1, 1],
    [3, 3],
  ];
  for (const [kh, kw] of windows) {
    for (const stride of [1, 2]) {
      for (const pad of ['same', 'valid'] as Pad[]) {
        it(`${kh}×${kw} stride ${stride} ${pad}: plain and fused (bias, linear) conv2d`, async () => {
          const w = (x: tf.Tensor) => param([kh, kw, x.shape[3]!, 5], 2) as tf.Tensor4D;
          const plain = (x: tf.Tensor) => weighted(tf.conv2d(x as tf.Tensor4D, w(x), stride, pad), 9);
          const fused = (x: tf.Tensor) =>
            weighted(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w(x), strides: stride, pad, bias: param([5], 4) }), 9);
          for (const shape of [
            [2, 7, 8, 3],
            [1, 8, 8, 4],
          ]) {
            await allMatch(`conv2d ${kh}x${kw} s${stride} ${pad} ${shape.join('x')}`, () => inputGrad(shape, plain));
            await allMatch(`fused conv2d ${kh}x${kw} s${stride} ${pad} ${shape.join('x')}`, () => inputGrad(shape, fused));
          }
        });
      }
    }
  }

  it('unusual geometries: even and wide windows, stride 3, 2×1 strides, explicit padding, 1-pixel inputs', async () => {
    const explicit: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [2, 0],
      [1, 3],
      [0, 0],
    ];
    const cases: Array<[string, number[], number[], number | [number, number], tf.Conv2DBackpropInputAttrs['pad']]> = [
      ['2x2 s2 same odd input', [2, 7, 9, 3], [2, 2, 3, 4], 2, 'same'],
      ['4x4 s1 same', [1, 6, 7, 2], [4, 4, 2, 3], 1, 'same'],
      ['5x3 s3 valid', [1, 11, 10, 2], [5, 3, 2, 3], 3, 'valid'],
      ['3x3 s3 same', [1, 10, 8, 2], [3, 3, 2, 3], 3, 'same'],
      ['1x1 s2 same (phases without taps)', [2, 7, 6, 3], [1, 1, 3, 4], 2, 'same'],
      ['3x3 s2x1 explicit', [1, 9, 7, 2], [3, 3, 2, 3], [2, 1], explicit],
      ['3x3 s2 same on 1x1 input', [2, 1, 1, 3], [3, 3, 3, 2], 2, 'same'],
      ['5x5 s2 valid (trailing rows unread)', [1, 10, 12, 2], [5, 5, 2, 3], 2, 'valid'],
    ];
    for (const [name, xShape, wShape, strides, pad] of cases) {
      const f = (x: tf.Tensor) => weighted(tf.conv2d(x as tf.Tensor4D, param(wShape, 2) as tf.Tensor4D, strides, pad), 9);
      await allMatch(`conv2d ${name}`, () => inputGrad(xShape, f));
    }
  });

  it('conv2dInputGrad (both plans) equals the native backprop kernel, also with dilation', async () => {
    const cases: Array<[number[], number[], number | [number, number], Pad, number]> = [
      [[2, 9, 8, 3], [3, 3, 3, 4], 2, 'same', 1],
      [[1, 9, 8, 2], [3, 2, 2, 3], 1, 'same', 2],
      [[1, 12, 11, 2], [3, 3, 2, 2], 1, 'valid', 3],
      [[1, 8, 8, 2], [2, 2, 2, 3], [1, 2], 'valid', 1],
    ];
    await use('cpu');
    for (const [xShape, wShape, strides, pad, dilation] of cases) {
      const w = tf.tensor4d(data(wShape, 3), wShape as [number, number, number, number]);
      const x = tf.tensor4d(data(xShape, 4), xShape as [number, number, number, number]);
      const y = tf.conv2d(x, w, strides, pad, 'NHWC', dilation);
      const dy = tf.tensor4d(data(y.shape, 5), y.shape);
      // Reference: the gradient of the dilated conv written as a dense conv with zero taps (tfjs has no dilated gradient).
      const [kh, kw, ci, co] = wShape;
      const dense = new Float32Array(((kh - 1) * dilation + 1) * ((kw - 1) * dilation + 1) * ci * co);
      const wd = data(wShape, 3);
      const dw = (kw - 1) * dilation + 1;
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let k = 0; k < ci * co; k++) dense[(i * dilation * dw + j * dilation) * ci * co + k] = wd[(i * kw + j) * ci * co + k];
      const wDense = tf.tensor4d(dense, [(kh - 1) * dilation + 1, dw, ci, co]);
      const want = tf.conv2dTranspose(dy, wDense, xShape as [number, number, number, number], strides, pad).dataSync();
      for (const plan of ['phases', 'spread'] as const) {
        const got = tf.tidy(() => conv2dInputGrad(xShape, dy, w, strides, pad, dilation, undefined, plan).dataSync());
        expectClose(`conv2dInputGrad ${plan} ${wShape.join('x')} s${String(strides)} d${dilation} ${pad}`, got, want);
      }
      tf.dispose([w, x, y, dy, wDense]);
    }
  });

  it('the kernel dispatcher: wasm runs the rewrite (forward Conv2D inside Conv2DBackpropInput), cpu only when forced', async () => {
    expect(installedKernelOverrides()).toEqual(expect.arrayContaining(['wasm/Conv2DBackpropInput', 'cpu/Conv2DBackpropInput']));
    const kernelsOf = async (fn: () => void) => (await tf.profile(fn)).kernels.map((k) => k.name);
    const grad = () => {
      inputGrad([1, 6, 6, 3], (x) => weighted(tf.conv2d(x as tf.Tensor4D, param([3, 3, 3, 4], 2) as tf.Tensor4D, 2, 'same'), 9));
    };
    await use('wasm');
    const wasm = await kernelsOf(grad);
    await use('cpu');
    const cpu = await kernelsOf(grad);
    const forced = await kernelsOf(() => withForcedRewrite(grad));
    const forwardConvs = (names: string[]) => names.filter((n) => n === 'Conv2D').length;
    expect(wasm).toContain('Conv2DBackpropInput');
    expect(forwardConvs(wasm)).toBeGreaterThan(1); // the forward pass + the rewrite's phase convolutions
    expect(forwardConvs(cpu)).toBe(1); // the forward pass only: cpu's native backprop kernel
    expect(forwardConvs(forced)).toBeGreaterThan(1);
  });

  it('NCHW backprop-input calls keep the native kernel, also when forced', async () => {
    await use('cpu');
    const dy = tf.tensor4d(data([1, 4, 5, 5], 5), [1, 4, 5, 5]);
    const w = tf.tensor4d(data([3, 3, 2, 4], 2), [3, 3, 2, 4]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [1, 2, 5, 5] } as unknown as tf.NamedAttrMap;
    const run = () => tf.tidy(() => (tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, attrs) as tf.Tensor).dataSync());
    expect(Array.from(withForcedRewrite(run))).toEqual(Array.from(run()));
    tf.dispose([dy, w]);
  });
});

// ---------- depthwise (rewritten plan) ----------

describe('depthwise input gradient (zero-spread dy, padding inside the convolution)', () => {
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as Pad[]) {
      it(`depthwise 3×3 stride ${stride} ${pad}, multipliers 1 and 2`, async () => {
        for (const mult of [1, 2]) {
          const f = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, param([3, 3, 3, mult], 3) as tf.Tensor4D, stride, pad), 9);
          for (const shape of [
            [2, 7, 8, 3],
            [1, 8, 8, 3],
          ]) {
            await allMatch(`depthwise s${stride} ${pad} m${mult} ${shape.join('x')}`, () => inputGrad(shape, f));
          }
        }
      });
    }
  }

  it('geometries where spreading dy would need a crop (the last spread zeros fall outside x) use the phases', async () => {
    // after = H − Ho·s + pad_before < 0: 2×2 stride 2 'same' and 1×1 stride 2 on odd sizes, 3×3 stride 3 'same'.
    const cases: Array<[number[], number, Pad]> = [
      [[2, 2, 3, 1], 2, 'same'],
      [[1, 1, 3, 2], 2, 'same'],
      [[3, 3, 3, 1], 3, 'same'],
      [[4, 4, 3, 1], 3, 'valid'],
    ];
    for (const [wShape, stride, pad] of cases) {
      const f = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, param(wShape, 3) as tf.Tensor4D, stride, pad), 9);
      await allMatch(`depthwise ${wShape[0]}x${wShape[1]} s${stride} ${pad} m${wShape[3]} 7x11`, () => inputGrad([1, 7, 11, 3], f));
    }
  });
});

// ---------- conv filter gradient (the shim fused linear convs evaluate eagerly) ----------

describe('conv2d filter gradient as one convolution', () => {
  it('conv2dFilterGrad matches cpu native Conv2DBackpropFilter (1×1, 3×3, strides 1–2, same/valid, dilation)', async () => {
    const cases: Array<[number[], number[], number | [number, number], tf.Conv2DBackpropFilterAttrs['pad'], number]> = [
      [[2, 7, 8, 3], [1, 1, 3, 4], 1, 'same', 1],
      [[2, 7, 8, 3], [1, 1, 3, 4], 2, 'valid', 1],
      [[2, 7, 8, 3], [3, 3, 3, 4], 2, 'same', 1],
      [[2, 7, 8, 3], [3, 3, 3, 4], 1, 'valid', 1],
      [[1, 9, 9, 2], [3, 2, 2, 3], [2, 1], 'same', 1],
      [[1, 9, 9, 2], [3, 3, 2, 3], 1, 'same', 2],
    ];
    for (const [xShape, wShape, strides, pad, dilation] of cases) {
      await use('cpu');
      const x = tf.tensor4d(data(xShape, 4), xShape as [number, number, number, number]);
      const w = tf.tensor4d(data(wShape, 3), wShape as [number, number, number, number]);
      const y = tf.conv2d(x, w, strides, pad, 'NHWC', dilation);
      const dy = tf.tensor4d(data(y.shape, 5), y.shape);
      const want =
        dilation === 1
          ? tf.tidy(() =>
              (tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape: wShape } as unknown as tf.NamedAttrMap) as tf.Tensor).dataSync(),
            )
          : tf.tidy(() => loopFilterGrad(x, dy, wShape, strides as number, dilation, pad as Pad));
      for (const backend of ['cpu', 'wasm'] as const) {
        await use(backend);
        const got = tf.tidy(() =>
          conv2dFilterGrad(x, dy, wShape as [number, number, number, number], strides, pad, dilation).dataSync(),
        );
        expectClose(`${backend} conv2dFilterGrad ${wShape.join('x')} s${String(strides)} d${dilation} ${String(pad)}`, got, want);
      }
      tf.dispose([x, w, y, dy]);
    }
  });

  it('filter gradients through fused linear convs (what an input gradient evaluates eagerly) match cpu', async () => {
    const x = data([2, 9, 8, 3], 5);
    const filterGrad = (strides: number, pad: Pad, wShape: number[]) => {
      const w = tf.tensor(data(wShape, 6), wShape);
      const before = tf.memory().numTensors;
      const g = tf.grad((v: tf.Tensor) =>
        weighted(tf.fused.conv2d({ x: tf.tensor4d(x, [2, 9, 8, 3]), filter: v as tf.Tensor4D, strides, pad, bias: param([wShape[3]!], 4) }), 9).sum() as tf.Scalar,
      )(w);
      const out = g.dataSync().slice();
      g.dispose();
      expect(tf.memory().numTensors).toBe(before);
      w.dispose();
      return out;
    };
    for (const [strides, pad, wShape] of [
      [2, 'same', [3, 3, 3, 4]],
      [1, 'valid', [1, 1, 3, 4]],
      [2, 'valid', [5, 5, 3, 2]],
    ] as Array<[number, Pad, number[]]>) {
      await use('cpu');
      const want = filterGrad(strides, pad, wShape);
      await use('wasm');
      expectClose(`wasm≈cpu fused conv2d filter ${wShape.join('x')} s${strides} ${pad}`, filterGrad(strides, pad, wShape), want);
    }
  });
});

// ---------- batch norm ----------

describe('batch norm gradient (broadcast, not tiled)', () => {
  const shape = [2, 5, 4, 3];
  const bn = (x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, offset: tf.Tensor | undefined, scale: tf.Tensor | undefined) =>
    weighted(tf.batchNorm(x as tf.Tensor4D, mean, variance, offset, scale, 1e-3), 9);

  it('dx with rank-1 parameters (tf.layers inference mode)', async () => {
    const f = (x: tf.Tensor) => bn(x, param([3], 31), param([3], 32, 0.5, 2), param([3], 33), param([3], 34, 0.5, 2));
    await allMatch('batchNorm dx rank-1', () => inputGrad(shape, f));
  });

  it('dx with full-rank and broadcast [1,1,1,C] parameters, and on rank 2 and 3 inputs', async () => {
    const full = (x: tf.Tensor) => bn(x, param(shape, 31), param(shape, 32, 0.5, 2), param(shape, 33), param(shape, 34, 0.5, 2));
    await allMatch('batchNorm dx full-rank params', () => inputGrad(shape, full));
    const four = (x: tf.Tensor) => bn(x, param([1, 1, 1, 3], 31), param([1, 1, 1, 3], 32, 0.5, 2), param([1, 1, 1, 3], 33), param([1, 1, 1, 3], 34, 0.5, 2));
    await allMatch('batchNorm dx [1,1,1,C] params', () => inputGrad(shape, four));
    const rank2 = (x: tf.Tensor) => bn(x, param([3], 31), param([3], 32, 0.5, 2), param([3], 33), param([3], 34, 0.5, 2));
    await allMatch('batchNorm dx rank-2 input', () => inputGrad([6, 3], rank2));
    await allMatch('batchNorm dx rank-3 input', () => inputGrad([4, 5, 3], rank2));
  });

  it('gradients with respect to mean, variance, scale and offset (training-style use) match tfjs', async () => {
    const f = (x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, offset: tf.Tensor, scale: tf.Tensor) =>
      bn(x, mean, variance.abs().add(0.5), offset, scale);
    const shapes = [shape, [3], [3], [3], [3]];
    const names = ['x', 'mean', 'variance', 'offset', 'scale'];
    const want = await cpuNative(() => grads(shapes, f));
    const forced = withForcedRewrite(() => grads(shapes, f));
    await use('wasm');
    const wasm = grads(shapes, f);
    names.forEach((n, i) => {
      expectClose(`cpu rewrite≈native batchNorm d${n}`, forced[i]!, want[i]!);
      expectClose(`wasm≈cpu batchNorm d${n}`, wasm[i]!, want[i]!);
    });
  });

  it('batchNormGrads without a scale (scale = 1; tfjs cannot differentiate a batchNorm with a missing input)', async () => {
    await use('cpu');
    const x = tf.tensor(data(shape, 1), shape);
    const mean = param([3], 31);
    const variance = param([3], 32, 0.5, 2);
    const dy = param(shape, 9);
    const want = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.batchNorm(v as tf.Tensor4D, mean, variance, tf.zeros([3]), tf.ones([3]), 1e-3).mul(dy).sum() as tf.Scalar)(x).dataSync());
    for (const backend of ['cpu', 'wasm'] as const) {
      await use(backend);
      const got = tf.tidy(() => batchNormGrads(dy, x, mean, variance, undefined, 1e-3).x().dataSync());
      expectClose(`${backend} batchNormGrads dx without scale`, got, want);
    }
    tf.dispose([x, mean, variance, dy]);
  });
});

// ---------- relu / relu6 / minimum / maximum masks ----------

describe('activation gradients with arithmetic masks', () => {
  // Values on both sides of 0 and 6, exact ties at 0 and 6, and tiny / subnormal-sized differences.
  const shape = [2, 4, 5, 3];
  const xData = data(shape, 21, -3, 9);
  [0, 6, 6, 0, 1e-7, 6 + 5e-7, 6 - 5e-7, -1e-30, 1e-38, -0].forEach((v, i) => (xData[i * 7] = v));

  it('relu, relu6 (kernel), tf.layers relu6 = minimum(6, relu(x)) and clipped variants', async () => {
    const cases: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
      ['relu', (x) => weighted(tf.relu(x), 9)],
      ['relu6 kernel', (x) => weighted(tf.relu6(x), 9)],
      ['minimum(6, relu(x))', (x) => weighted(tf.minimum(6, tf.relu(x)), 9)],
      ['maximum(x, 0.5)', (x) => weighted(tf.maximum(x, 0.5), 9)],
      ['minimum(x, 6) then maximum(0, ·)', (x) => weighted(tf.maximum(0, tf.minimum(x, 6)), 9)],
    ];
    for (const [name, f] of cases) await allMatch(name, () => inputGrad(shape, f, xData));
  });

  it('minimum / maximum of two tensors, ties to a, and broadcast operands', async () => {
    const other = data(shape, 22, -3, 9);
    for (let i = 0; i < other.length; i += 5) other[i] = xData[i]!; // ties
    const b = (s: number[]) => tf.tensor(s.length === 4 ? other : data(s, 23, -3, 9), s);
    for (const [name, op] of [
      ['minimum', tf.minimum],
      ['maximum', tf.maximum],
    ] as const) {
      const both = (x: tf.Tensor, y: tf.Tensor) => weighted(op(x, y), 9);
      const shapes = [shape, shape];
      const want = await cpuNative(() => grads(shapes, both));
      const got = withForcedRewrite(() => grads(shapes, both));
      await use('wasm');
      const wasm = grads(shapes, both);
      [0, 1].forEach((i) => {
        expectClose(`cpu rewrite≈native ${name} d${'ab'[i]}`, got[i]!, want[i]!);
        expectClose(`wasm≈cpu ${name} d${'ab'[i]}`, wasm[i]!, want[i]!);
      });
      // Broadcast b ([C]): tfjs's gradient does not reduce it (the tape rejects the shape), the rewrite does.
      const bc = (x: tf.Tensor) => weighted(op(x, b([3])), 9);
      await allMatch(`${name} with broadcast [C] operand, dx`, () => inputGrad(shape, bc, xData));
      await use('wasm');
      const [, db] = grads([shape, [3]], (x, y) => weighted(op(x, y), 9));
      expect(db!.length).toBe(3);
    }
  });
});

// ---------- wasm Identity shares its buffer ----------

describe('Identity on wasm (saved tensors) shares the buffer', () => {
  it('clones are independent tensors with the same values; disposing either keeps the other', async () => {
    await use('wasm');
    const before = tf.memory().numTensors;
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const b = tf.clone(a);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3, 4]);
    const c = tf.tidy(() => tf.clone(b).add(1));
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(c.dataSync())).toEqual([2, 3, 4, 5]);
    tf.dispose([b, c]);
    expect(tf.memory().numTensors).toBe(before);
    const s = tf.clone(tf.tensor1d(['x', 'y'], 'string'));
    expect(s.arraySync()).toEqual(['x', 'y']);
    s.dispose();
    // Variables and their reads survive disposal of the initial value.
    const init = tf.tensor1d([5, 6]);
    const v = tf.variable(init);
    init.dispose();
    v.assign(tf.tensor1d([7, 8]));
    expect(Array.from(v.dataSync())).toEqual([7, 8]);
    v.dispose();
  });
});

// ---------- MobileNet-shaped tf.layers model ----------

/** conv 3×3/2 → BN → relu6 → [dw 3×3 (/2) → BN → relu6 → conv 1×1 → BN → relu6] ×3 → GAP → reshape → conv 1×1 + bias (logits). */
function mobileNetLike(): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3] });
  const bnRelu6 = (t: tf.SymbolicTensor, name: string) =>
    tf.layers.activation({ activation: 'relu6', name: `${name}_relu` }).apply(tf.layers.batchNormalization({ name: `${name}_bn` }).apply(t)) as tf.SymbolicTensor;
  let t = bnRelu6(tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'conv1' }).apply(input) as tf.SymbolicTensor, 'conv1');
  [
    [1, 8],
    [2, 12],
    [1, 12],
  ].forEach(([stride, filters], i) => {
    t = bnRelu6(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, name: `conv_dw_${i + 1}` }).apply(t) as tf.SymbolicTensor, `conv_dw_${i + 1}`);
    t = bnRelu6(tf.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: false, name: `conv_pw_${i + 1}` }).apply(t) as tf.SymbolicTensor, `conv_pw_${i + 1}`);
  });
  t = tf.layers.globalAveragePooling2d({}).apply(t) as tf.SymbolicTensor;
  t = tf.layers.reshape({ targetShape: [1, 1, 12] }).apply(t) as tf.SymbolicTensor;
  t = tf.layers.conv2d({ filters: 7, kernelSize: 1, padding: 'same', name: 'conv_preds' }).apply(t) as tf.SymbolicTensor;
  t = tf.layers.reshape({ targetShape: [7] }).apply(t) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: t });
  const values = model.weights.map((w, i) => {
    const [lo, hi] = /moving_variance|gamma/.test(w.name) ? [0.5, 1.5] : /moving_mean|beta/.test(w.name) ? [-0.3, 0.3] : [-0.6, 0.6];
    return tf.tensor(data(w.shape as number[], 200 + i, lo, hi), w.shape as number[]);
  });
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

describe('MobileNet-shaped tf.layers model', () => {
  let model: tf.LayersModel;
  beforeAll(async () => {
    await use('cpu');
    model = mobileNetLike();
  });

  const logit = (x: tf.Tensor) => (model.predict(x) as tf.Tensor).slice([0, 3], [-1, 1]);

  it('input gradient of one logit: wasm ≈ cpu, and cpu with every rewrite forced ≈ cpu native', async () => {
    const xData = data([2, 16, 16, 3], 7, 0, 1);
    await allMatch('mobilenet-like input gradient', () => inputGrad([2, 16, 16, 3], logit, xData));
  });

  it('gradient with respect to a hidden layer (conv_pw_2_relu → logit)', async () => {
    const names = model.layers.map((l) => l.name);
    const from = names.indexOf('conv_pw_2_relu');
    const hShape = [2, 4, 4, 12];
    // The layers after conv_pw_2_relu, applied to a fed activation (what Classifier.layerGradient differentiates).
    const tail = (h: tf.Tensor) => {
      let t = h;
      for (const layer of model.layers.slice(from + 1)) t = layer.apply(t) as tf.Tensor;
      return t.slice([0, 3], [-1, 1]);
    };
    const hData = data(hShape, 8, 0, 6);
    await allMatch('mobilenet-like hidden-layer gradient', () => inputGrad(hShape, tail, hData));
  });

  it('leaves tf.memory().numTensors unchanged on wasm, cpu and cpu forced (inputGrad asserts it)', async () => {
    for (const backend of ['wasm', 'cpu'] as const) {
      await use(backend);
      const before = tf.memory().numTensors;
      inputGrad([1, 16, 16, 3], logit);
      withForcedRewrite(() => inputGrad([1, 16, 16, 3], logit));
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});

// ---------- plain-loop reference ----------

/** dL/dW of conv2d(x, W, stride, pad, dilation) by loops (cpu's Conv2DBackpropFilter rejects dilation > 1). */
function loopFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], stride: number, dilation: number, pad: Pad): Float32Array {
  const [n, h, w, ci] = x.shape;
  const [, oh, ow, co] = dy.shape;
  const [kh, kw] = wShape;
  const info = tf.backend_util.computeConv2DInfo(x.shape, wShape as [number, number, number, number], stride, dilation, pad);
  const xs = x.dataSync();
  const ds = dy.dataSync();
  const out = new Float32Array(kh * kw * ci * co);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let a = 0; a < kh; a++)
          for (let c = 0; c < kw; c++) {
            const r = i * stride + a * dilation - info.padInfo.top;
            const q = j * stride + c * dilation - info.padInfo.left;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            for (let p = 0; p < ci; p++)
              for (let o = 0; o < co; o++) out[((a * kw + c) * ci + p) * co + o] += xs[((b * h + r) * w + q) * ci + p] * ds[((b * oh + i) * ow + j) * co + o];
          }
  return out;
}
