import * as tf from '@tensorflow/tfjs';
import { convGeometry } from './geometry.js';
import { subFilter, transposedConv } from './transpose-conv.js';

/**
 * dL/dx of y = conv2d(x, filter) (NHWC) from forward convolutions of dy (see `transposedConv`):
 * 1×1 stride 1 is conv2d(dy, filterᵀ); a general stride-1 window is dy (padded) against the 180°-rotated filter
 * with in/out channels swapped; stride s runs s² such convolutions with sub-filters and interleaves them.
 * On wasm (tfjs 4.22) the native Conv2DBackpropInput is a plain loop, ~10× slower than these XNNPACK convolutions.
 */
export function conv2dInputGrad(
  xShape: number[],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: number | [number, number],
  pad: tf.Conv2DBackpropInputAttrs['pad'],
  dilations: number | [number, number] = 1,
  dimRoundingMode?: tf.Conv2DBackpropInputAttrs['dimRoundingMode'],
  strategy?: 'phases' | 'spread',
): tf.Tensor4D {
  return tf.tidy(() => {
    const g = convGeometry(xShape, filter.shape, strides, dilations, pad, dimRoundingMode, false);
    const [kh, kw, inChannels] = filter.shape;
    // An image-input conv (dx has ≤ 4 channels): interleaving s² thin phases costs more than the s²× multiplications
    // of spreading dy. Measured, 3×3 stride 2, 24 → 3 channels, wasm, 2 threads: 224 px batch 8 phases 46 ms,
    // spread 32; 128 px batch 16 25 → 20 ms. Wider layers keep the phases (fewest multiplications).
    const plan = strategy ?? (inChannels <= 4 ? 'spread' : 'phases');
    return transposedConv(dy, g, [kh, kw], inChannels, (src, rows, cols, p, dilation) => {
      const w = tf.transpose(subFilter(filter, rows, cols), [0, 1, 3, 2]) as tf.Tensor4D;
      const noPad = p.every(([a, b]) => a === 0 && b === 0);
      const explicit: tf.backend_util.ExplicitPadding = [[0, 0], p[0], p[1], [0, 0]];
      return tf.conv2d(src, w, 1, noPad ? 'valid' : explicit, 'NHWC', dilation);
    }, plan);
  });
}

/**
 * Whether to run the rewrite instead of `backend`'s native Conv2DBackpropInput. Measured on wasm 4.22 (one thread),
 * batch 8, native → rewrite: 1×1 stride 1 (MobileNet's pointwise convs) 150–280 → 18–32 ms; 3×3 stride 1
 * 165 → 16 ms; 3×3 stride 2 with 3 input channels (MobileNet's first conv) 62 → 37 ms; 7×7 stride 2, 3 → 64
 * channels 830 → 250 ms; 5×5 stride 2 166 → 29 ms. Only tensors of a few thousand elements are faster natively
 * (by a fraction of a millisecond), so the rewrite always runs on wasm (NHWC; NCHW keeps the native kernel).
 */
export function prefersConv2dInputRewrite(backend: string, dataFormat: string | undefined): boolean {
  return backend === 'wasm' && dataFormat !== 'NCHW';
}
