import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Classifier } from '../../src/model/classifier.js';
import { evaluateReadout } from '../../src/engine/readout.js';
import { optimisePatch } from '../../src/patch/optimise.js';
import { describeReal } from '../helpers/real.js';
import { kinkMap, tieCount } from '../helpers/ties.js';

/**
 * Input gradients from backward graphs run by onnxruntime (engine/onnx/backward.ts) against the tfjs tape, on the
 * real default model (exported to ONNX) and GoogLeNet: a logit, and a seeded hidden layer, on noise images. Per
 * operator the graphs match PyTorch to 1e-4 (test/engine/onnx/backward.test.ts). On whole networks two engines differ
 * where exact arithmetic has a tie and float rounding breaks it differently: a ReLU6 pre-activation within rounding of
 * 0 or 6 (MobileNet), equal values in a max-pool window after GoogLeNet's pool → 1×1 conv → pool (the first maximum
 * in each engine's rounding wins). Measured on noise images: MobileNet 6e-4 (relative L2; tfjs's own cpu and wasm
 * backends differ by 3.9e-3), GoogLeNet 5e-7 at batch 1 and 5.8e-4 at batch 2 (where the tiles, and so the rounding,
 * change). The bound sits below what tfjs's two backends reach between themselves. On tie-free inputs (no unit or
 * window across a tie between the engines, test/helpers/ties.ts) the engines agree to 1e-4.
 */
const rel = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.norm(tf.sub(a, b)).dataSync()[0]! / tf.norm(b).dataSync()[0]!);
const models: Array<[string, string, number]> = [['mobilenet_v1_0.75', 'conv_pw_11_relu', 2e-3], ['googlenet', 'mixed4c', 2e-3]];
describeReal('native gradients on onnxruntime', () => {
  const loaded = new Map<string, Classifier>();
  let x: tf.Tensor4D;
  beforeAll(async () => {
    for (const [m] of models) loaded.set(m, await Classifier.load({ model: m, backend: 'auto', download: false }));
    x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  });
  afterAll(() => {
    loaded.forEach((c) => c.dispose());
    x.dispose();
  });


  it.each(models)('%s: d logit / d pixels and d(seed · %s) / d pixels agree with the tfjs tape (relative L2 < %s)', async (m, layer, bound) => {
    const c = loaded.get(m)!;
    const seed = tf.tidy(() => tf.oneHot(tf.tensor1d([147, 2], 'int32'), c.labels.outputs).toFloat());
    const before = tf.memory().numTensors;
    const warm = c.nativeGradient(x, ['logits'], [seed]);
    tf.dispose([warm!.grad, ...warm!.values]);
    expect(tf.memory().numTensors).toBe(before);
    const native = c.nativeGradient(x, ['logits'], [seed]);
    expect(native, c.noNativeGradient).toBeDefined();
    const tape = c.inputGradient(x, ['logits'], ([l]) => tf.sum(tf.mul(l!, seed)));
    expect(rel(native!.grad, tape.grad)).toBeLessThan(bound);
    expect(rel(native!.values[0]!, c.logits(x))).toBeLessThan(1e-4);
    const h = c.activation(x, layer);
    const hSeed = tf.randomNormal(h.shape, 0, 1, 'float32', 3);
    const nh = c.nativeGradient(x, [layer], [hSeed]);
    const th = c.inputGradient(x, [layer], ([a]) => tf.sum(tf.mul(a!, hSeed)));
    expect(rel(nh!.values[0]!, h)).toBeLessThan(1e-4);
    expect(rel(nh!.grad, th.grad)).toBeLessThan(bound);
    tf.dispose([seed, native!.grad, ...native!.values, tape.grad, h, hSeed, nh!.grad, ...nh!.values, th.grad]);
  }, 120_000);
});

describeReal('native gradients on tie-free inputs', () => {
  it.each(['mobilenet_v1_0.75', 'googlenet'])('%s: d logit / d pixels, and an icon readout\'s gradient, equal the tape\'s to 1e-4 on the first noise image without a near-tie', async (m) => {
    const c = await Classifier.load({ model: m, backend: 'auto', download: false });
    try {
      const kinks = kinkMap(c);
      expect(kinks.units.length).toBeGreaterThan(10);
      const seen: number[] = [];
      for (let seed = 1; seed <= 10; seed++) {
        const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
        try {
          const ties = tieCount(c, x, kinks);
          seen.push(ties);
          if (ties > 0) continue;
          const target = tf.tidy(() => tf.oneHot(tf.tensor1d([c.labels.resolve('n01491361').index], 'int32'), c.labels.outputs).toFloat());
          const native = c.nativeGradient(x, ['logits'], [target]);
          const tape = c.inputGradient(x, ['logits'], ([l]) => tf.sum(tf.mul(l!, target)));
          // Measured on the first tie-free images (seed 5 for both): 6.8e-7 (MobileNet), 5.9e-7 (GoogLeNet; its next
          // one, seed 6, 2.1e-5). Across a tie instead: one ReLU6 unit 1.6e-3 (MobileNet seed 1), ten max-pool
          // windows 1.4e-2 (GoogLeNet seed 3).
          expect(rel(native!.grad, tape.grad)).toBeLessThan(1e-4);
          // The icons' objective as a readout, inside the backward graph (one native run), against the same readout on
          // the tape: same image, so the same tie-free path up to the layer. Measured on seed 5: 6.4e-7 (MobileNet),
          // 5.5e-7 (GoogLeNet).
          const layer = m === 'googlenet' ? 'mixed4c' : 'conv_pw_11_relu';
          const form = { dotCossim: { read: layer }, w: 0, p: 3 } as const;
          const weights = (w: readonly number[]) => [{ data: Float32Array.from({ length: w[0]! }, (_, i) => Math.cos(0.3 * i)), rows: 1, cols: w[0]! }];
          const viaReadout = tf.grad((v: tf.Tensor) => tf.sum(c.nativeReadout(v as tf.Tensor4D, form, weights).value))(x);
          const onTape = tf.grad((v: tf.Tensor) => {
            const [h] = c.run(v as tf.Tensor4D, [layer]);
            return tf.sum(evaluateReadout(form, weights([h!.shape[3]!]), new Map([[layer, h!]])));
          })(x);
          expect(rel(viaReadout, onTape)).toBeLessThan(1e-4);
          tf.dispose([target, native!.grad, ...native!.values, tape.grad, viaReadout, onTape]);
          return;
        } finally {
          x.dispose();
        }
      }
      expect.fail(`no tie-free image among 10 noise images (units or windows across a tie: ${seen.join(', ')})`);
    } finally {
      c.dispose();
    }
  }, 240_000);
});

describeReal('reverse-mode attribution gradients on onnxruntime', () => {
  it('googlenet: d logit_k / d mixed4c through smooth max-pools, several classes a run, equal the tape\'s', async () => {
    const c = await Classifier.load({ model: 'googlenet', backend: 'auto', download: false });
    const x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    try {
      const h = c.activation(x, 'mixed4c');
      // Output columns (ClassRef.index counts a background slot where the model has one).
      const classes = ['n01491361', 'n02066245', 'n01440764'].map((w) => c.labels.resolve(w).index);
      const seeds = tf.tidy(() => tf.oneHot(tf.tensor1d(classes.flatMap((k) => [k, k]), 'int32'), c.labels.outputs).toFloat()) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const rep = tf.tile(h, [classes.length, 1, 1, 1]);
      const native = c.nativeLayerGradient(x, 'mixed4c', rep, seeds, 'smooth');
      expect(native, c.noNativeGradient).toBeDefined();
      expect(tf.memory().numTensors).toBe(before + 2);
      classes.forEach((k, j) => {
        const tape = c.layerGradient(x, 'mixed4c', ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, k], [-1, 1])), { maxPool: 'smooth' });
        const mine = tf.slice(native!, [2 * j, 0, 0, 0], [2, -1, -1, -1]);
        // Smooth max-pools have no ties to break: the engines agree to rounding.
        expect(rel(mine, tape.grad)).toBeLessThan(1e-4);
        tf.dispose([mine, tape.activation, tape.grad]);
      });
      tf.dispose([h, seeds, rep, native!]);
    } finally {
      x.dispose();
      c.dispose();
    }
  }, 180_000);
});

describeReal('an EOT patch step on GoogLeNet with the network on onnxruntime', () => {
  it('gives the tape\'s loss and patch gradient (ONNX model with max-pools and LRN; auto runs it natively)', async () => {
    const c = await Classifier.load({ model: 'googlenet', backend: 'auto', download: false });
    try {
      expect(c.nativeSteps('patches', 8 * 224 * 224) && c.nativeSteps('icons', 8 * 96 * 96), 'auto runs an ONNX model\'s steps natively').toBe(true);
      const images = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 11);
      const data = images.dataSync() as Float32Array;
      images.dispose();
      const opts = { classifier: c, images: data, target: c.labels.resolve('n01491361'), patchPx: 32, steps: 2, batchSize: 2, lr: 0.3, seed: 5 };
      const tape = await optimisePatch({ ...opts, native: false });
      const native = await optimisePatch({ ...opts, native: true });
      expect(c.noNativeGradient).toBeUndefined();
      // Two steps of Adam from the same start: equal losses mean equal gradients at step 0 and equal updates.
      native.trace.forEach((e, k) => expect(Math.abs(e.loss - tape.trace[k]!.loss)).toBeLessThan(1e-3 * Math.abs(tape.trace[k]!.loss)));
      expect(tape.trace[1]!.loss).not.toBe(tape.trace[0]!.loss);
      // Adam's first steps move every parameter by about lr whatever its gradient's size, so a parameter whose gradient
      // is zero up to rounding can step either way: a few bytes may differ by more than a level, not many.
      const off = native.rgb.filter((v, k) => Math.abs(v - tape.rgb[k]!) > 1).length;
      expect(off / native.rgb.length).toBeLessThan(0.01);
    } finally {
      c.dispose();
    }
  }, 180_000);
});
