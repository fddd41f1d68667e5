import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  avgPoolGradKernel,
  getMaxPoolGradMode,
  installedKernelShims,
  installGradientFixes,
  maxPoolGradKernelIsSound,
  probeAvgPoolGrad,
  probeMaxPoolGrad,
  smoothMaxPool,
  withForcedRewrite,
  withMaxPoolGrad,
} from '../../src/engine/gradients/index.js';
import { data, param, weighted, use, inputGrad, relErr, expectClose, type Pad } from '../helpers/grad-check.js';

/**
 * Input-gradients on wasm against the pure-JS cpu backend (reference), on tiny nets with seeded data.
 * rel err = max|a − b| / max(max|b|, tiny), b = cpu. Every gradient is also checked for tensor leaks.
 */

installGradientFixes();

// ---------- gradient helpers ----------

/** The same gradient on cpu and on wasm. */
async function wasmMatchesCpu(name: string, xShape: number[], f: (x: tf.Tensor) => tf.Tensor, xData?: Float32Array): Promise<void> {
  await use('cpu');
  const want = inputGrad(xShape, f, xData);
  await use('wasm');
  const got = inputGrad(xShape, f, xData);
  expectClose(`wasm≈cpu ${name}`, got, want);
}

/** On cpu: the op-based rewrite (forced) against cpu's native gradient kernels. */
async function rewriteMatchesCpuNative(name: string, xShape: number[], f: (x: tf.Tensor) => tf.Tensor, xData?: Float32Array): Promise<void> {
  await use('cpu');
  const want = inputGrad(xShape, f, xData);
  const got = withForcedRewrite(() => inputGrad(xShape, f, xData));
  expectClose(`cpu rewrite≈native ${name}`, got, want);
}

beforeAll(async () => {
  await use('wasm');
});

// ---------- the defects themselves ----------

describe('defects of tfjs 4.22 that the fixes address (noted, not required)', () => {
  it('wasm MaxPoolGrad on an all-negative window', async () => {
    await use('cpu');
    const cpu = probeMaxPoolGrad();
    expect(cpu).toEqual([0, 0, 0, 1]);
    expect(maxPoolGradKernelIsSound()).toBe(true);
    await use('wasm');
    const wasm = probeMaxPoolGrad();
    if (JSON.stringify(wasm) !== JSON.stringify(cpu)) {
      expect(maxPoolGradKernelIsSound()).toBe(false); // so the exact rewrite is in use on wasm
      console.log(`defect present: wasm MaxPoolGrad routes [-4,-3,-2,-1]'s gradient to ${JSON.stringify(wasm)}`);
    } else {
      expect(maxPoolGradKernelIsSound()).toBe(true);
      console.log('defect absent: wasm MaxPoolGrad is correct on all-negative windows; tfjs gradient used');
    }
  });

  it('AvgPoolGrad divides border windows by the full window size (cpu and wasm)', async () => {
    const correct = [0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1];
    for (const backend of ['cpu', 'wasm'] as const) {
      await use(backend);
      const got = probeAvgPoolGrad();
      const verdict = avgPoolGradKernel();
      if (JSON.stringify(got) === JSON.stringify(correct)) expect(verdict).toBe('sound');
      else {
        expect(verdict).not.toBe('sound');
        console.log(`defect present on ${backend}: AvgPoolGrad for 'same' borders gives ${JSON.stringify(got)}, want ${JSON.stringify(correct)}`);
      }
    }
  });

  it('kernels missing on wasm: the op-based shims only fill real gaps', async () => {
    await use('wasm');
    const shims = installedKernelShims();
    for (const name of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']) {
      if (shims.includes(`wasm/${name}`)) console.log(`defect present: wasm has no native ${name}`);
      expect(tf.getKernel(name, 'wasm')).toBeDefined();
    }
    if (tf.getKernel('UnsortedSegmentSum', 'wasm') == null) {
      expect(() => tf.tidy(() => tf.unsortedSegmentSum(tf.ones([3]), tf.tensor1d([0, 1, 0], 'int32'), 2))).toThrow(/UnsortedSegmentSum/);
      console.log('defect present: wasm has no UnsortedSegmentSum (gather gradient)');
    }
    expect(installGradientFixes).not.toThrow(); // idempotent
    expect(installedKernelShims()).toEqual(shims);
  });

  it('an input gradient never evaluates the filter gradient of a plain conv (only fused linear convs do)', async () => {
    await use('wasm');
    const shimmed = (['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'] as const).filter((k) =>
      installedKernelShims().includes(`wasm/${k}`),
    );
    const saved = shimmed.map((k) => tf.getKernel(k, 'wasm')!);
    shimmed.forEach((k) => tf.unregisterKernel(k, 'wasm'));
    try {
      const conv = (x: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, param([3, 3, 3, 4], 2) as tf.Tensor4D, 2, 'same');
      const dw = (x: tf.Tensor) => tf.depthwiseConv2d(x as tf.Tensor4D, param([3, 3, 3, 2], 3) as tf.Tensor4D, 2, 'same');
      expect(inputGrad([1, 6, 6, 3], conv).length).toBe(108);
      expect(inputGrad([1, 6, 6, 3], dw).length).toBe(108);
      if (shimmed.includes('Conv2DBackpropFilter')) {
        const fusedLinear = (x: tf.Tensor) =>
          tf.fused.conv2d({ x: x as tf.Tensor4D, filter: param([3, 3, 3, 4], 2) as tf.Tensor4D, strides: 1, pad: 'same', bias: param([4], 4) });
        expect(() => inputGrad([1, 6, 6, 3], fusedLinear)).toThrow(/Conv2DBackpropFilter/);
        console.log('confirmed: fused linear conv2d computes the filter gradient eagerly (needs the Conv2DBackpropFilter shim)');
      }
    } finally {
      saved.forEach((config) => tf.registerKernel(config));
    }
  });
});

// ---------- single ops, wasm vs cpu ----------

describe('convolutions', () => {
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as Pad[]) {
      it(`conv2d stride ${stride} ${pad}`, async () => {
        const f = (x: tf.Tensor) => weighted(tf.conv2d(x as tf.Tensor4D, param([3, 3, 3, 4], 2) as tf.Tensor4D, stride, pad), 9);
        await wasmMatchesCpu(`conv2d s${stride} ${pad}`, [2, 7, 8, 3], f);
      });

      for (const mult of [1, 2]) {
        it(`depthwiseConv2d stride ${stride} ${pad} multiplier ${mult}`, async () => {
          const f = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, param([3, 3, 3, mult], 3) as tf.Tensor4D, stride, pad), 9);
          await wasmMatchesCpu(`depthwise s${stride} ${pad} m${mult}`, [2, 7, 8, 3], f);
          await wasmMatchesCpu(`depthwise s${stride} ${pad} m${mult} even`, [1, 8, 8, 3], f);
          await rewriteMatchesCpuNative(`depthwise s${stride} ${pad} m${mult}`, [2, 7, 8, 3], f);
        });
      }
    }
  }

  it('depthwiseConv2d with a 5×5 window, 2×1 strides and explicit padding (rewrite vs cpu native)', async () => {
    const pad: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [1, 3],
      [2, 0],
      [0, 0],
    ];
    const f = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, param([5, 5, 2, 3], 3) as tf.Tensor4D, [2, 1], pad), 9);
    await rewriteMatchesCpuNative('depthwise 5x5 s2x1 explicit pad', [1, 9, 7, 2], f);
    await wasmMatchesCpu('depthwise 5x5 s2x1 explicit pad', [1, 9, 7, 2], f);
  });

  it('depthwiseConv2d with dilation 2 (tfjs has no native gradient for it: checked against a zero-inserted filter)', async () => {
    // A 3×3 filter at dilation 2 is a 5×5 filter with zero rows and columns in between; tfjs differentiates that one.
    const w = data([3, 3, 2, 2], 3);
    const dense = new Float32Array(5 * 5 * 2 * 2);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) dense[(2 * i * 5 + 2 * j) * 4 + k] = w[(i * 3 + j) * 4 + k];
    const dilated = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, tf.tensor4d(w, [3, 3, 2, 2]), 1, 'same', 'NHWC', 2), 9);
    const spread = (x: tf.Tensor) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, tf.tensor4d(dense, [5, 5, 2, 2]), 1, 'same'), 9);
    for (const backend of ['cpu', 'wasm'] as const) {
      await use(backend);
      expectClose(`${backend} depthwise dilation 2`, inputGrad([1, 7, 7, 2], dilated), inputGrad([1, 7, 7, 2], spread));
    }
  });

  it('fused conv2d / depthwiseConv2d with bias and linear activation (the customGrad path)', async () => {
    const conv = (x: tf.Tensor) =>
      weighted(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: param([3, 3, 3, 4], 2) as tf.Tensor4D, strides: 2, pad: 'same', bias: param([4], 4) }), 9);
    const dw = (x: tf.Tensor) =>
      weighted(
        tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: param([3, 3, 3, 2], 3) as tf.Tensor4D, strides: 2, pad: 'valid', bias: param([6], 4) }),
        9,
      );
    await wasmMatchesCpu('fused conv2d linear', [2, 7, 8, 3], conv);
    await wasmMatchesCpu('fused depthwise linear', [2, 7, 8, 3], dw);
  });

  it('filter gradients of the shims (what fused linear convs compute eagerly) match cpu', async () => {
    const x = data([2, 7, 8, 3], 5);
    const filterGrad = (conv: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor, wShape: number[]) => {
      const w = tf.tensor(data(wShape, 6), wShape);
      const before = tf.memory().numTensors;
      const g = tf.grad((v: tf.Tensor) => weighted(conv(tf.tensor4d(x, [2, 7, 8, 3]), v as tf.Tensor4D), 9).sum() as tf.Scalar)(w);
      const out = g.dataSync().slice();
      g.dispose();
      expect(tf.memory().numTensors).toBe(before);
      w.dispose();
      return out;
    };
    const cases: Array<[string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor, number[]]> = [
      ['conv2d filter s2 same', (x, w) => tf.conv2d(x, w, 2, 'same'), [3, 3, 3, 4]],
      ['depthwise filter s2 valid m2', (x, w) => tf.depthwiseConv2d(x, w, 2, 'valid'), [3, 3, 3, 2]],
      ['depthwise filter s1 same m1', (x, w) => tf.depthwiseConv2d(x, w, 1, 'same'), [3, 3, 3, 1]],
    ];
    for (const [name, conv, wShape] of cases) {
      await use('cpu');
      const want = filterGrad(conv, wShape);
      await use('wasm');
      expectClose(`wasm≈cpu ${name}`, filterGrad(conv, wShape), want);
    }
  });
});

describe('pooling', () => {
  const pools: Array<[number, number, Pad]> = [
    [2, 2, 'valid'],
    [3, 2, 'same'],
    [3, 2, 'valid'],
    [3, 1, 'same'],
    [2, 2, 'same'],
  ];
  const shape = [2, 7, 8, 3];
  const inputs: Array<[string, Float32Array]> = [
    ['mixed', data(shape, 11, -1, 1)],
    ['all-negative', data(shape, 12, -3, -0.01)],
    ['post-relu zeros (ties)', data(shape, 13, -1, 0.3).map((v) => Math.max(v, 0))],
  ];

  for (const [size, stride, pad] of pools) {
    it(`maxPool ${size}×${size} stride ${stride} ${pad}`, async () => {
      const f = (x: tf.Tensor) => weighted(tf.maxPool(x as tf.Tensor4D, size, stride, pad), 9);
      for (const [label, x] of inputs) {
        await wasmMatchesCpu(`maxPool ${size}/${stride} ${pad} ${label}`, shape, f, x);
        await rewriteMatchesCpuNative(`maxPool ${size}/${stride} ${pad} ${label}`, shape, f, x);
      }
    });

    it(`avgPool ${size}×${size} stride ${stride} ${pad}`, async () => {
      const f = (x: tf.Tensor) => weighted(tf.avgPool(x as tf.Tensor4D, size, stride, pad), 9);
      const want = referenceAvgPoolGrad(shape, size, stride, pad, data([2, ...poolOut(shape, size, stride, pad), 3], 9));
      for (const [label, x] of inputs.slice(0, 2)) {
        await wasmMatchesCpu(`avgPool ${size}/${stride} ${pad} ${label}`, shape, f, x);
        for (const backend of ['cpu', 'wasm'] as const) {
          await use(backend);
          expectClose(`${backend} avgPool ${size}/${stride} ${pad} ≈ loop reference`, inputGrad(shape, f, x), want);
          expectClose(
            `${backend} avgPool rewrite ${size}/${stride} ${pad} ≈ loop reference`,
            withForcedRewrite(() => inputGrad(shape, f, x)),
            want,
          );
        }
      }
    });
  }

  it('maxPool gradient equals a plain-loop reference (first maximum of each window wins)', async () => {
    for (const [size, stride, pad] of pools) {
      for (const [label, x] of inputs) {
        const dy = data([2, ...poolOut(shape, size, stride, pad), 3], 9);
        const want = referenceMaxPoolGrad(x, shape, size, stride, pad, dy);
        const f = (v: tf.Tensor) => weighted(tf.maxPool(v as tf.Tensor4D, size, stride, pad), 9);
        await use('wasm');
        expectClose(`wasm maxPool ${size}/${stride} ${pad} ${label} ≈ loop reference`, inputGrad(shape, f, x), want, 1e-6);
      }
    }
  });

  it('maxPool3d (wasm MaxPool3DGrad has the same defect)', async () => {
    const f = (x: tf.Tensor) => weighted(tf.maxPool3d(x as tf.Tensor5D, 2, 2, 'same'), 9);
    await wasmMatchesCpu('maxPool3d 2/2 same all-negative', [1, 5, 4, 4, 2], f, data([1, 5, 4, 4, 2], 14, -2, -0.1));
    await rewriteMatchesCpuNative('maxPool3d 2/2 same mixed', [1, 5, 4, 4, 2], f, data([1, 5, 4, 4, 2], 15));
  });
});

describe('elementwise, normalisation, concat, dense', () => {
  it('relu and relu6', async () => {
    const x = data([2, 5, 5, 3], 21, -3, 9);
    await wasmMatchesCpu('relu', [2, 5, 5, 3], (v) => weighted(tf.relu(v), 9), x);
    await wasmMatchesCpu('relu6', [2, 5, 5, 3], (v) => weighted(tf.relu6(v), 9), x);
  });

  it('batchNorm with fixed mean, variance, scale and offset', async () => {
    const f = (x: tf.Tensor) =>
      weighted(tf.batchNorm(x as tf.Tensor4D, param([3], 31), param([3], 32, 0.5, 2), param([3], 33), param([3], 34, 0.5, 2), 1e-3), 9);
    await wasmMatchesCpu('batchNorm', [2, 5, 5, 3], f);
  });

  it('concat along channels, with the input used twice', async () => {
    const f = (x: tf.Tensor) => weighted(tf.concat([x.mul(2), tf.relu(x), x.slice([0, 0, 0, 1], [-1, -1, -1, 2])], 3), 9);
    await wasmMatchesCpu('concat', [2, 5, 5, 3], f);
  });

  it('dense: matMul + bias', async () => {
    const f = (x: tf.Tensor) => weighted(tf.matMul(x as tf.Tensor2D, param([12, 5], 41) as tf.Tensor2D).add(param([5], 42)), 9);
    await wasmMatchesCpu('dense', [3, 12], f);
  });

  it('gather (class logits, rows with repeats, batchDims 1)', async () => {
    await wasmMatchesCpu('gather axis 1', [3, 6], (x) => weighted(tf.gather(x, tf.tensor1d([4, 0, 4, 2], 'int32'), 1), 9));
    await wasmMatchesCpu('gather axis 0', [5, 2, 3], (x) => weighted(tf.gather(x, tf.tensor2d([[1, 1], [4, 0]], [2, 2], 'int32'), 0), 9));
    await wasmMatchesCpu('gather batchDims 1', [2, 4, 3], (x) => weighted(tf.gather(x, tf.tensor2d([[3, 3], [0, 1]], [2, 2], 'int32'), 1, 1), 9));
    await rewriteMatchesCpuNative('gather axis 1', [3, 6], (x) => weighted(tf.gather(x, tf.tensor1d([4, 0, 4, 2], 'int32'), 1), 9));
    await rewriteMatchesCpuNative('gather axis -2', [4, 3, 2], (x) => weighted(tf.gather(x, tf.tensor1d([2, 2, 0], 'int32'), -2), 9));
  });
});

// ---------- nets ----------

/** conv → batchNorm → relu6 → depthwise (stride 2, ×2) → relu → [maxPool ‖ avgPool] → concat → mean → dense → one logit. */
function chainedNet(x: tf.Tensor): tf.Tensor {
  const c1 = tf.conv2d(x as tf.Tensor4D, param([3, 3, 3, 4], 51) as tf.Tensor4D, 1, 'same');
  const bn = tf.relu6(tf.batchNorm(c1, param([4], 52), param([4], 53, 0.5, 2), param([4], 54), param([4], 55, 0.5, 2)).mul(3)) as tf.Tensor4D;
  const dw = tf.relu(tf.depthwiseConv2d(bn, param([3, 3, 4, 2], 56) as tf.Tensor4D, 2, 'same').sub(0.2)) as tf.Tensor4D;
  const pooled = tf.concat([tf.maxPool(dw, 3, 2, 'same'), tf.avgPool(dw, 3, 2, 'same')], 3);
  const features = pooled.mean([1, 2]) as tf.Tensor2D;
  const logits = tf.matMul(features, param([16, 5], 57) as tf.Tensor2D).add(param([5], 58));
  return tf.gather(logits, tf.tensor1d([3], 'int32'), 1);
}

function layersNet(functional: boolean): tf.LayersModel {
  const layers = () => [
    tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same' }),
    tf.layers.batchNormalization(),
    tf.layers.activation({ activation: 'relu6' }),
    tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2 }),
    tf.layers.batchNormalization(),
    tf.layers.activation({ activation: 'relu6' }),
    tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }),
    tf.layers.globalAveragePooling2d({}),
    tf.layers.dense({ units: 5 }),
  ];
  let model: tf.LayersModel;
  if (functional) {
    const input = tf.input({ shape: [12, 12, 3] });
    const output = layers().reduce<tf.SymbolicTensor>((t, layer) => layer.apply(t) as tf.SymbolicTensor, input);
    model = tf.model({ inputs: input, outputs: output });
  } else {
    model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [12, 12, 3] }), ...layers()] });
  }
  // Deterministic weights; BN variances positive; BN scales away from 0 so relu6 sees a spread of values.
  const values = model.weights.map((w, i) => {
    const [lo, hi] = /moving_variance|gamma/.test(w.name) ? [0.5, 1.5] : [-1, 1];
    return tf.tensor(data(w.shape as number[], 100 + i, lo, hi), w.shape as number[]);
  });
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

describe('nets', () => {
  it('a chained net (conv, batchNorm, relu6, depthwise s2, max/avg pool, concat, dense, one logit)', async () => {
    await wasmMatchesCpu('chained net logit', [2, 10, 10, 3], chainedNet);
  });

  for (const functional of [false, true]) {
    it(`tf.layers ${functional ? 'tf.model' : 'tf.sequential'}: input gradient of one logit`, async () => {
      const grads: Float32Array[] = [];
      for (const backend of ['cpu', 'wasm'] as const) {
        await use(backend);
        const before = tf.memory().numTensors;
        const model = layersNet(functional);
        const logit = (x: tf.Tensor) => tf.slice(model.apply(x) as tf.Tensor, [0, 2], [-1, 1]);
        grads.push(inputGrad([2, 12, 12, 3], logit, data([2, 12, 12, 3], 61, 0, 1)));
        model.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
      expectClose(`wasm≈cpu layers ${functional ? 'model' : 'sequential'}`, grads[1], grads[0]);
    });
  }
});

// ---------- smooth max-pool ----------

describe('smooth max-pool gradient', () => {
  const shape = [2, 7, 8, 3];
  const x = data(shape, 71, -1, 1);
  for (const [size, stride, pad] of [
    [3, 2, 'same'],
    [2, 2, 'valid'],
    [3, 1, 'same'],
  ] as Array<[number, number, Pad]>) {
    it(`gives the gradient of avgpool(x²)/(1e-2 + avgpool(|x|)) (${size}/${stride} ${pad}), forward unchanged`, async () => {
      const pool = (v: tf.Tensor) => weighted(tf.maxPool(v as tf.Tensor4D, size, stride, pad), 9);
      const relaxation = (v: tf.Tensor) => {
        const p = (t: tf.Tensor) => tf.avgPool(t as tf.Tensor4D, size, stride, pad);
        return weighted(p(v.square()).div(p(v.abs()).add(1e-2)), 9);
      };
      for (const backend of ['cpu', 'wasm'] as const) {
        await use(backend);
        const want = inputGrad(shape, relaxation, x);
        const got = withMaxPoolGrad('smooth', () => inputGrad(shape, pool, x));
        expectClose(`${backend} smooth maxPool ${size}/${stride} ${pad} ≈ tf.grad(relaxation)`, got, want);
        const exact = inputGrad(shape, pool, x);
        expect(relErr(exact, want)).toBeGreaterThan(1e-2); // the mode really changed the gradient
        const [plain, smoothForward] = tf.tidy(() => {
          const t = tf.tensor4d(x, shape as [number, number, number, number]);
          const y1 = tf.maxPool(t, size, stride, pad).dataSync().slice();
          const y2 = withMaxPoolGrad('smooth', () => tf.maxPool(t, size, stride, pad).dataSync().slice());
          return [y1, y2];
        });
        expect(Array.from(smoothForward)).toEqual(Array.from(plain));
        // smoothMaxPool (exported) is the relaxation's value
        const relaxed = tf.tidy(() => smoothMaxPool(tf.tensor4d(x, shape as [number, number, number, number]), { filterSize: size, strides: stride, pad }).dataSync().slice());
        const direct = tf.tidy(() => {
          const t = tf.tensor4d(x, shape as [number, number, number, number]);
          return tf.avgPool(t.square(), size, stride, pad).div(tf.avgPool(t.abs(), size, stride, pad).add(1e-2)).dataSync().slice();
        });
        expect(relErr(relaxed, direct)).toBeLessThan(1e-6);
      }
    });
  }

  it('smooth mode in a chained net matches tf.grad of the net with the relaxation written in', async () => {
    const relaxedNet = (v: tf.Tensor) => {
      const y = tf.relu(tf.conv2d(v as tf.Tensor4D, param([3, 3, 3, 4], 51) as tf.Tensor4D, 1, 'same'));
      return weighted(tf.avgPool(y.square() as tf.Tensor4D, 3, 2, 'same').div(tf.avgPool(y.abs() as tf.Tensor4D, 3, 2, 'same').add(1e-2)), 9);
    };
    const net = (v: tf.Tensor) => {
      const y = tf.relu(tf.conv2d(v as tf.Tensor4D, param([3, 3, 3, 4], 51) as tf.Tensor4D, 1, 'same'));
      return weighted(tf.maxPool(y, 3, 2, 'same'), 9);
    };
    await use('wasm');
    expectClose('wasm smooth chained', withMaxPoolGrad('smooth', () => inputGrad([1, 9, 9, 3], net)), inputGrad([1, 9, 9, 3], relaxedNet));
  });

  it('withMaxPoolGrad restores the mode after returning and after a throw', () => {
    expect(getMaxPoolGradMode()).toBe('exact');
    expect(withMaxPoolGrad('smooth', () => getMaxPoolGradMode())).toBe('smooth');
    expect(getMaxPoolGradMode()).toBe('exact');
    expect(() =>
      withMaxPoolGrad('smooth', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(getMaxPoolGradMode()).toBe('exact');
    withMaxPoolGrad('smooth', () => {
      expect(() => withMaxPoolGrad('exact', () => { throw new Error('inner'); })).toThrow('inner');
      expect(getMaxPoolGradMode()).toBe('smooth');
    });
    expect(getMaxPoolGradMode()).toBe('exact');
  });
});

// ---------- leaks ----------

describe('no leaked tensors', () => {
  it('every gradient path leaves tf.memory().numTensors unchanged (wasm, cpu, cpu forced)', async () => {
    const fs: Array<[number[], (x: tf.Tensor) => tf.Tensor]> = [
      [[2, 10, 10, 3], chainedNet],
      [[1, 7, 7, 3], (x) => tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: param([3, 3, 3, 2], 3) as tf.Tensor4D, strides: 2, pad: 'same', bias: param([6], 4) })],
      [[1, 7, 7, 3], (x) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: param([3, 3, 3, 2], 3) as tf.Tensor4D, strides: 2, pad: 'same', bias: param([2], 4) })],
      [[1, 5, 4, 4, 2], (x) => tf.maxPool3d(x as tf.Tensor5D, 2, 2, 'same')],
    ];
    for (const backend of ['wasm', 'cpu'] as const) {
      await use(backend);
      for (const [shape, f] of fs) {
        inputGrad(shape, f); // asserts numTensors before == after
        withForcedRewrite(() => inputGrad(shape, f));
        withMaxPoolGrad('smooth', () => inputGrad(shape, f));
      }
    }
  });
});

// ---------- plain-loop references ----------

function poolOut(shape: number[], size: number, stride: number, pad: Pad): [number, number] {
  const out = (n: number) => (pad === 'same' ? Math.ceil(n / stride) : Math.floor((n - size) / stride) + 1);
  return [out(shape[1]), out(shape[2])];
}

function poolPad(n: number, out: number, size: number, stride: number, pad: Pad): number {
  return pad === 'same' ? Math.floor(Math.max(0, (out - 1) * stride + size - n) / 2) : 0;
}

/** Visit every (output, in-bounds input) pair of a 2-D pool in row-major window order. */
function forWindows(
  shape: number[],
  size: number,
  stride: number,
  pad: Pad,
  visit: (outIndex: number, inIndices: number[]) => void,
): void {
  const [b, h, w, c] = shape;
  const [oh, ow] = poolOut(shape, size, stride, pad);
  const top = poolPad(h, oh, size, stride, pad);
  const left = poolPad(w, ow, size, stride, pad);
  for (let n = 0; n < b; n++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let k = 0; k < c; k++) {
          const cells: number[] = [];
          for (let di = 0; di < size; di++)
            for (let dj = 0; dj < size; dj++) {
              const r = i * stride - top + di;
              const q = j * stride - left + dj;
              if (r >= 0 && r < h && q >= 0 && q < w) cells.push(((n * h + r) * w + q) * c + k);
            }
          visit(((n * oh + i) * ow + j) * c + k, cells);
        }
}

function referenceMaxPoolGrad(x: Float32Array, shape: number[], size: number, stride: number, pad: Pad, dy: Float32Array): Float32Array {
  const dx = new Float32Array(x.length);
  forWindows(shape, size, stride, pad, (o, cells) => {
    let best = cells[0];
    for (const cell of cells) if (x[cell] > x[best]) best = cell;
    dx[best] += dy[o];
  });
  return dx;
}

function referenceAvgPoolGrad(shape: number[], size: number, stride: number, pad: Pad, dy: Float32Array): Float32Array {
  const dx = new Float32Array(shape.reduce((p, d) => p * d, 1));
  forWindows(shape, size, stride, pad, (o, cells) => {
    for (const cell of cells) dx[cell] += dy[o] / cells.length;
  });
  return dx;
}
