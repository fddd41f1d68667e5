import * as tf from '@tensorflow/tfjs';
import { avgPoolBackprop } from './avgpool.js';

/**
 * The Activation Atlas relaxation of max-pool for attribution: backpropagate through
 *   s(x) = avgpool(x²) / (eps + avgpool(|x|))      (same window, stride and padding as the max-pool)
 * instead of through max-pool itself, whose gradient is a noisy one-hot per window. The forward value stays the
 * true max-pool; only the gradient changes (see `withMaxPoolGrad`).
 */
export const SMOOTH_MAXPOOL_EPS = 1e-2;

type Attrs = Pick<tf.MaxPoolAttrs, 'filterSize' | 'strides' | 'pad' | 'dimRoundingMode'>;

/** The relaxation's value; its gradient is what 'smooth' mode backpropagates. */
export function smoothMaxPool(x: tf.Tensor4D, a: Attrs): tf.Tensor4D {
  return tf.tidy(() => {
    const pool = (t: tf.Tensor4D) => tf.avgPool(t, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    return pool(tf.square(x)).div(pool(tf.abs(x)).add(SMOOTH_MAXPOOL_EPS)) as tf.Tensor4D;
  });
}

/**
 * Vector-Jacobian product of `smoothMaxPool` written out (no nested tf.grad inside a gradient function):
 * with N = A(x²), D = eps + A(|x|) and Aᵀ the avgPool adjoint,
 *   dx = 2x · Aᵀ(dy / D) − sign(x) · Aᵀ(dy · N / D²).
 * sign(0) = 0, as tf.abs's gradient uses.
 */
export function smoothMaxPoolGrad(dy: tf.Tensor4D, x: tf.Tensor4D, a: Attrs): tf.Tensor4D {
  return tf.tidy(() => {
    const pool = (t: tf.Tensor4D) => tf.avgPool(t, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    const numerator = pool(tf.square(x));
    const denominator = pool(tf.abs(x)).add(SMOOTH_MAXPOOL_EPS) as tf.Tensor4D;
    const perDenominator = dy.div(denominator) as tf.Tensor4D;
    const viaNumerator = avgPoolBackprop(perDenominator, x, a);
    const viaDenominator = avgPoolBackprop(perDenominator.mul(numerator).div(denominator) as tf.Tensor4D, x, a);
    return viaNumerator.mul(x).mul(2).sub(viaDenominator.mul(tf.sign(x))) as tf.Tensor4D;
  });
}
