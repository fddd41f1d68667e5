import * as tf from '@tensorflow/tfjs';
import { matMulConst, transposed } from '../sampling.js';
import type { Param } from './param.js';

/**
 * Square root of the empirical ImageNet RGB colour correlation matrix (from its SVD), rows = output
 * R, G, B. Numbers from lucid, lucid/optvis/param/color.py (`color_correlation_svd_sqrt`, Apache-2.0),
 * also used by lucent; normalised by its largest column norm as lucid does, so no colour is amplified.
 */
export const COLOR_CORRELATION_SVD_SQRT: readonly (readonly [number, number, number])[] = [
  [0.26, 0.09, 0.02],
  [0.27, 0.0, -0.05],
  [0.27, -0.09, 0.03],
];
/** ImageNet mean colour (lucid color.py), added when colours are clipped instead of squashed by a sigmoid. */
export const COLOR_MEAN: readonly [number, number, number] = [0.48, 0.46, 0.41];

/** The normalised matrix, transposed for `pixels[N,3] @ M` (row-major 3×3). */
export function decorrelationMatrix(): Float32Array {
  const c = COLOR_CORRELATION_SVD_SQRT;
  let maxNorm = 0;
  for (let j = 0; j < 3; j++) maxNorm = Math.max(maxNorm, Math.hypot(c[0]![j]!, c[1]![j]!, c[2]![j]!));
  const m = new Float32Array(9);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) m[j * 3 + i] = c[i]![j]! / maxNorm;
  return m;
}

/**
 * Interpret the last axis as colours in a decorrelated space and map them to RGB: the optimiser then
 * moves along directions that are independent in natural images (Feature Visualization, Olah et al. 2017).
 */
export function decorrelateColors(t: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w] = t.shape;
    const m = decorrelationMatrix();
    // The gradient for t alone, as a plain product with mᵀ: tfjs's own also differentiates the constant m (tᵀ·dy over
    // every pixel), and ran dy·mᵀ as a transposed product (6.8 ms of a 128 px batch-16 step's tape on wasm against 0.9
    // ms for the forward product, before kernel-overrides.ts).
    return matMulConst(t.reshape([b * h * w, 3]), tf.tensor2d(m, [3, 3]), tf.tensor2d(transposed(m, 3, 3), [3, 3])).reshape([b, h, w, 3]) as tf.Tensor4D;
  });
}

/** Wrap a parameterisation so its image is decorrelated colours. */
export function decorrelate(p: Param): Param {
  return { ...p, image: () => tf.tidy(() => decorrelateColors(p.image())) };
}

/** Squash into (0, 1) with a sigmoid (lucid's default for valid RGB). */
export function sigmoid(p: Param): Param {
  return { ...p, image: () => tf.tidy(() => tf.sigmoid(p.image())) };
}

/**
 * The alternative to `sigmoid`: add the mean colour (when decorrelated) and clip into [0, 1].
 * Simpler than lucid's L∞ projection; clipped pixels get no gradient.
 */
export function clipToRgb(p: Param, addMean: boolean): Param {
  return {
    ...p,
    image: () =>
      tf.tidy(() => {
        const x = p.image();
        return tf.clipByValue(addMean ? tf.add(x, tf.tensor1d([...COLOR_MEAN])) : x, 0, 1) as tf.Tensor4D;
      }),
  };
}
