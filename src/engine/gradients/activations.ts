import * as tf from '@tensorflow/tfjs';
import { isRewriteForced } from './state.js';

/**
 * Gradients of relu, relu6, minimum and maximum with their masks built by arithmetic (sub, step) instead of
 * comparisons. On wasm 4.22 the comparison kernels (Greater, LessEqual, …) write bool tensors in a scalar loop,
 * and casting them back to float is another slow pass: tfjs's minimum gradient costs ~3× the one below
 * (measured, [8, 56, 56, 96]). tf.layers' relu6 activation is minimum(6, relu(x)): both are on MobileNet's path.
 *
 * Masks: step(t) is 1 for t > 0, else 0 (NaN for NaN). IEEE subtraction keeps the sign exactly (a − b > 0 ⇔ a > b,
 * subnormals included), so step(a − b) is tfjs's [a > b] for every input except NaNs and ∞ − ∞, where it gives
 * NaN instead of 0. relu's and relu6's masks are identical to tfjs's everywhere (NaN included).
 */

/** Sum a broadcast gradient back to the shape of the input it belongs to (tfjs's min / max gradients skip this). */
function unbroadcast(grad: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, grad.shape);
  const summed = axes.length > 0 ? tf.sum(grad, axes) : grad;
  return tf.reshape(summed, shape);
}

/** [a > b] as float32 (see above); `b - a` for [b > a]. */
const above = (a: tf.Tensor, b: tf.Tensor) => tf.step(tf.sub(a, b));

/** Backends whose comparison kernels are slow enough to build masks arithmetically. */
export function prefersMaskRewrite(backend: string): boolean {
  return backend === 'wasm';
}

/** The rewrite is float-only (int inputs keep tfjs's gradient); else: forced, or a backend it is faster on. */
const useRewrite = (original: tf.GradConfig | undefined, saved: tf.Tensor[]) =>
  !original || (saved.every((t) => t.dtype === 'float32') && (isRewriteForced() || prefersMaskRewrite(tf.getBackend())));

export function reluGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      if (!useRewrite(original, saved)) return original!.gradFunc(dy, saved, attrs);
      const [x] = saved;
      // tfjs: mul(dy, cast(step(x), 'float32')); the float→float cast is a full copy on wasm.
      return { x: () => tf.mul(dy as tf.Tensor, tf.step(x)) };
    },
  };
}

export function relu6GradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.Relu6,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      if (!useRewrite(original, saved)) return original!.gradFunc(dy, saved, attrs);
      const [x] = saved;
      // [0 < x ≤ 6] = [x > 0] − [x > 6] (the second implies the first); tfjs: [x ≤ 6] · [x > 0].
      return { x: () => tf.mul(dy as tf.Tensor, tf.sub(tf.step(x), above(x, tf.scalar(6)))) };
    },
  };
}

/** Minimum (ties to a) and Maximum (ties to a), as tfjs routes them. */
function minMaxGradConfig(kernelName: string, original: tf.GradConfig | undefined, isMin: boolean): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      if (!useRewrite(original, saved)) return original!.gradFunc(dy, saved, attrs);
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      // min: b wins where a > b; max: b wins where b > a. a gets the rest (ties included).
      const bWins = () => (isMin ? above(a, b) : above(b, a));
      return {
        a: () => unbroadcast(tf.mul(g, tf.sub(tf.scalar(1), bWins())), a.shape),
        b: () => unbroadcast(tf.mul(g, bWins()), b.shape),
      };
    },
  };
}

export const minimumGradConfig = (original: tf.GradConfig | undefined) => minMaxGradConfig(tf.Minimum, original, true);
export const maximumGradConfig = (original: tf.GradConfig | undefined) => minMaxGradConfig(tf.Maximum, original, false);
