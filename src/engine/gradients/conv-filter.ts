import * as tf from '@tensorflow/tfjs';
import { convGeometry } from './geometry.js';
import { frame, tapSlice } from './spatial.js';

/**
 * dL/dfilter of a (non-depthwise) conv2d from forward ops. Needed on wasm only because fused conv2d with a linear
 * activation (tf.layers Conv2D, graph-model BiasAdd convs) computes the filter gradient eagerly even when only the
 * input gradient is wanted — so it runs on every input-gradient through such a layer and its speed matters.
 * - 1×1 windows: (input samples)ᵀ · dy, one matMul;
 * - larger windows: one forward convolution with the roles swapped (batch ↔ channels, dy as the filter), which
 *   XNNPACK runs ~4–7× faster than a strided slice + matMul per filter tap (measured on wasm 4.22, batch 8).
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
    const [kh, kw, inChannels, outChannels] = filterShape;
    const framed = frame(x, g) as tf.Tensor4D;
    if (kh === 1 && kw === 1) {
      const positions = dy.shape[0] * dy.shape[1] * dy.shape[2];
      const seen = g.strides.every((s) => s === 1) && framed.shape[1] === g.outSize[0] && framed.shape[2] === g.outSize[1] ? framed : tapSlice(framed, [0, 0], g);
      // Explicit transpose, not matMul(a, b, transposeA): the transposed-operand matMul is ~10× slower on wasm 4.22.
      const xT = seen.reshape([positions, inChannels]).transpose() as tf.Tensor2D;
      return tf.matMul(xT, dy.reshape([positions, outChannels]) as tf.Tensor2D).reshape(filterShape) as tf.Tensor4D;
    }
    // dW[ky, kx, ci, co] = Σ_{n, oy, ox} framed[n, oy·s + ky·d, ox·s + kx·d, ci] · dy[n, oy, ox, co]: a 'valid'
    // convolution of framed as [ci, rows, cols, n] with dy as an [oy, ox, n, co] filter, at stride d and dilation s
    // (tfjs allows only one of stride and dilation above 1, so one of them is 1 here too).
    const input = tf.transpose(framed, [3, 1, 2, 0]) as tf.Tensor4D;
    const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    const swapped = tf.conv2d(input, filter, [g.dilation[0], g.dilation[1]], 'valid', 'NHWC', [g.strides[0], g.strides[1]]);
    return tf.transpose(swapped, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}
