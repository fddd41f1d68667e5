import * as tf from '@tensorflow/tfjs';
import { isRewriteForced } from './state.js';

/**
 * FusedBatchNorm (tf.batchNorm, tf.layers BatchNormalization) gradient with per-channel factors broadcast
 * instead of tiled. tfjs 4.22's gradient tiles rsqrt(variance + eps) to the full [N, H, W, C] shape before
 * multiplying (Tile is a slow generic kernel on wasm: ~16× a broadcasting multiply) and eagerly computes
 * x − mean and dy · scale, full-size, even when only dx is wanted. Here:
 *   dx = dy · (scale · rsqrt(variance + eps))     — one full-size pass, the factor is per channel;
 * the parameter gradients are tfjs's formulas, computed only when asked for.
 */

/** The per-channel factor dy is multiplied by (scale / sqrt(variance + eps)), shaped like the parameters. */
function factor(variance: tf.Tensor, scale: tf.Tensor | undefined, eps: number): tf.Tensor {
  const r = tf.rsqrt(tf.add(variance, tf.scalar(eps)));
  return scale == null ? r : tf.mul(r, scale);
}

/** Sum `t` over the axes a parameter of shape `paramShape` was broadcast along, back to that shape. */
function reduceTo(t: tf.Tensor, paramShape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(paramShape, t.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, paramShape);
}

export function batchNormGrads(
  dy: tf.Tensor,
  x: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  scale: tf.Tensor | undefined,
  eps: number,
): Record<'x' | 'mean' | 'variance' | 'scale' | 'offset', () => tf.Tensor> {
  const rsqrt = () => tf.rsqrt(tf.add(variance, tf.scalar(eps)));
  const dyScaled = () => (scale == null ? dy : tf.mul(dy, scale));
  return {
    x: () => tf.reshape(tf.mul(dy, factor(variance, scale, eps)), x.shape),
    mean: () => reduceTo(tf.mul(dy, tf.neg(factor(variance, scale, eps))), mean.shape),
    variance: () => {
      const r = rsqrt();
      const minusHalfRCube = tf.mul(tf.mul(tf.mul(r, r), r), tf.scalar(-0.5));
      return reduceTo(tf.mul(tf.mul(minusHalfRCube, tf.sub(x, mean)), dyScaled()), mean.shape);
    },
    scale: () => reduceTo(tf.mul(dy, tf.mul(tf.sub(x, mean), rsqrt())), mean.shape),
    offset: () => reduceTo(dy, mean.shape),
  };
}

/** Backends whose tfjs batch-norm gradient is slow enough to replace (Tile on wasm). */
export function prefersBatchNormRewrite(backend: string): boolean {
  return backend === 'wasm';
}

/** FusedBatchNorm gradient: the broadcasting one on wasm (or when forced), tfjs's elsewhere. */
export function batchNormGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.FusedBatchNorm,
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, saved, attrs) => {
      if (original && !isRewriteForced() && !prefersBatchNormRewrite(tf.getBackend())) return original.gradFunc(dy, saved, attrs);
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const { varianceEpsilon } = attrs as unknown as tf.FusedBatchNormAttrs;
      return batchNormGrads(dy as tf.Tensor, x, mean, variance, scale ?? undefined, varianceEpsilon);
    },
  };
}
