import * as tf from '@tensorflow/tfjs';
import { convGeometry } from './geometry.js';
import { frame, tapOffsets, tapSlice } from './spatial.js';
import { hasNativeKernel, isRewriteForced } from './state.js';
import { subFilter, transposedConv } from './transpose-conv.js';

/**
 * Depthwise-convolution gradients from forward ops, for backends without DepthwiseConv2dNativeBackprop* kernels
 * (wasm in tfjs 4.22, where MobileNet input-gradients otherwise throw).
 */

type Attrs = tf.DepthwiseConv2dNativeAttrs;
type Pair = number | [number, number];

/**
 * dL/dx of y = depthwiseConv2d(x, filter): a stride-1 depthwise convolution of dy — spread back onto the input
 * grid (zeros between strided samples) and padded by (window - 1 - pad) — with the filter rotated 180°
 * (`transposedConv`: the zeros come from one pad, the padding from the convolution itself).
 * A channel multiplier m > 1 runs as c·m independent channels whose m results per input channel are summed.
 */
export function depthwiseConv2dInputGrad(
  xShape: number[],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: Pair,
  pad: Attrs['pad'],
  dilations: Pair = 1,
  dimRoundingMode?: Attrs['dimRoundingMode'],
): tf.Tensor4D {
  return tf.tidy(() => {
    const g = convGeometry(xShape, filter.shape, strides, dilations, pad, dimRoundingMode, true);
    const [kh, kw, c, m] = filter.shape;
    const perCopy = transposedConv(
      dy,
      g,
      [kh, kw],
      c * m,
      (src, rows, cols, p, dilation) => {
        const w = subFilter(filter, rows, cols);
        const flat = w.reshape([w.shape[0], w.shape[1], c * m, 1]) as tf.Tensor4D;
        const noPad = p.every(([a, b]) => a === 0 && b === 0);
        return tf.depthwiseConv2d(src, flat, 1, noPad ? 'valid' : [[0, 0], p[0], p[1], [0, 0]], 'NHWC', dilation);
      },
      'spread',
    );
    if (m === 1) return perCopy;
    return perCopy.reshape([xShape[0], g.inSize[0], g.inSize[1], c, m]).sum(4) as tf.Tensor4D;
  });
}

/** dL/dfilter: for each filter tap, the input samples that tap saw (a strided slice) times dy, summed over batch and positions. */
export function depthwiseConv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: Pair,
  pad: Attrs['pad'],
  dilations: Pair = 1,
  dimRoundingMode?: Attrs['dimRoundingMode'],
): tf.Tensor4D {
  return tf.tidy(() => {
    const g = convGeometry(x.shape, filterShape, strides, dilations, pad, dimRoundingMode, true);
    const [, , c, m] = filterShape;
    const positions = dy.shape[0] * dy.shape[1] * dy.shape[2];
    const dyByChannel = dy.reshape([positions, c, m]);
    const framed = frame(x, g);
    const perTap = tapOffsets(g).map((offset) =>
      tf.tidy(() => tapSlice(framed, offset, g).reshape([positions, c, 1]).mul(dyByChannel).sum(0)),
    );
    return tf.stack(perTap).reshape(filterShape) as tf.Tensor4D;
  });
}

/**
 * Gradient for DepthwiseConv2dNative: tfjs's own where the backend has the backprop kernel, else (or when forced,
 * or for dilations > 1, which tfjs's gradient rejects) the rewrite above. tfjs evaluates only the entries for
 * inputs on the x → y path, so an input-gradient never computes the filter's.
 */
export function depthwiseGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.DepthwiseConv2dNative,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const a = attrs as unknown as Attrs;
      const dilations = a.dilations ?? 1;
      // tfjs's own gradient asserts dilation 1; the rewrite handles any dilation.
      const dilated = [dilations].flat().some((d) => d !== 1);
      if (original && !dilated && !isRewriteForced() && hasNativeKernel(tf.DepthwiseConv2dNativeBackpropInput)) {
        return original.gradFunc(dy, saved, attrs);
      }
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      return {
        x: () => depthwiseConv2dInputGrad(x.shape, g, filter, a.strides, a.pad, dilations, a.dimRoundingMode),
        filter: () => depthwiseConv2dFilterGrad(x, g, filter.shape, a.strides, a.pad, dilations, a.dimRoundingMode),
      };
    },
  };
}
