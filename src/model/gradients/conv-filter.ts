import * as tf from '@tensorflow/tfjs';
import { convGeometry } from './geometry.js';
import { frame, tapOffsets, tapSlice } from './spatial.js';

/**
 * dL/dfilter of a (non-depthwise) conv2d from forward ops: per filter tap, (input samples seen by that tap)ᵀ · dy.
 * Needed on wasm only because fused conv2d with a linear activation (tf.layers Conv2D, graph-model BiasAdd convs)
 * computes the filter gradient eagerly even when only the input gradient is wanted.
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: tf.Conv2DBackpropFilterAttrs['pad'],
  dilations: number | [number, number] = 1,
  dimRoundingMode?: tf.Conv2DBackpropFilterAttrs['dimRoundingMode'],
): tf.Tensor4D {
  return tf.tidy(() => {
    const g = convGeometry(x.shape, filterShape, strides, dilations, pad, dimRoundingMode, false);
    const [, , inChannels, outChannels] = filterShape;
    const positions = dy.shape[0] * dy.shape[1] * dy.shape[2];
    const dyFlat = dy.reshape([positions, outChannels]) as tf.Tensor2D;
    const framed = frame(x, g);
    // Explicit transpose, not matMul(a, b, transposeA): the transposed-operand matMul is ~10× slower on wasm 4.22.
    const perTap = tapOffsets(g).map((offset) =>
      tf.tidy(() => tf.matMul(tapSlice(framed, offset, g).reshape([positions, inChannels]).transpose() as tf.Tensor2D, dyFlat)),
    );
    return tf.stack(perTap).reshape(filterShape) as tf.Tensor4D;
  });
}
