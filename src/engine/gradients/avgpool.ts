import * as tf from '@tensorflow/tfjs';
import { pool2DGeometry } from './geometry.js';
import { avgPoolGradKernel } from './probes.js';
import { padAfter, scatterTap, tapOffsets, unframe, type WindowGeometry } from './spatial.js';
import { isRewriteForced } from './state.js';

/**
 * tf.avgPool divides each window by its in-bounds element count ('same' padding: fewer at the borders), but the
 * AvgPoolGrad kernel of tfjs 4.22 (cpu and wasm) divides by the full window size, so border gradients come out
 * too small (measured: a corner window of 1 in-bounds element gets 1/4 of its gradient). Max-pool's smooth
 * relaxation is built from avgPool, so it needs the correct adjoint too.
 */

type Attrs = tf.AvgPoolAttrs;

/** Per output position: full window size / in-bounds count (1 everywhere for 'valid'), or null when all are 1. */
function borderScale(g: WindowGeometry): tf.Tensor4D | null {
  const counts = g.outSize.map((out, axis) =>
    Array.from({ length: out }, (_, o) => {
      const start = o * g.strides[axis] - g.padBefore[axis];
      return Math.min(start + g.window[axis], g.inSize[axis]) - Math.max(start, 0);
    }),
  );
  const [rows, cols] = counts;
  const full = g.window[0] * g.window[1];
  if (rows.every((r) => r === g.window[0]) && cols.every((c) => c === g.window[1])) return null;
  const scale = new Float32Array(rows.length * cols.length);
  rows.forEach((r, i) => cols.forEach((c, j) => (scale[i * cols.length + j] = r * c > 0 ? full / (r * c) : 0)));
  return tf.tensor4d(scale, [1, rows.length, cols.length, 1]);
}

/** Adjoint by placement: every window tap sends dy / count back to the element it read. Independent of any pool-grad kernel. */
function avgPoolBackpropBySlices(dy: tf.Tensor4D, g: WindowGeometry): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = borderScale(g);
    const full = g.window[0] * g.window[1];
    const share = scale ? dy.mul(scale).div(full) : dy.div(full);
    const after = padAfter(g);
    const framedSize = g.inSize.map((n, i) => n + g.padBefore[i] + after[i]);
    let acc: tf.Tensor = tf.zeros([dy.shape[0], ...framedSize, dy.shape[3]]);
    for (const tap of tapOffsets(g)) {
      const next = tf.tidy(() => acc.add(scatterTap(share, tap, g, framedSize)));
      acc.dispose();
      acc = next;
    }
    return unframe(acc, g) as tf.Tensor4D;
  });
}

/** dL/dx of tf.avgPool(x, ...attrs), consistent with its forward pass on every padding. */
export function avgPoolBackprop(dy: tf.Tensor4D, x: tf.Tensor4D, a: Attrs): tf.Tensor4D {
  return tf.tidy(() => {
    const g = pool2DGeometry(x.shape, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    const kernel = isRewriteForced() ? 'unsound' : avgPoolGradKernel();
    if (kernel === 'unsound') return avgPoolBackpropBySlices(dy, g);
    const scale = kernel === 'full-window-divisor' ? borderScale(g) : null;
    const kernelAttrs = { filterSize: a.filterSize, strides: a.strides, pad: a.pad, dimRoundingMode: a.dimRoundingMode };
    return tf.engine().runKernel(
      tf.AvgPoolGrad,
      { dy: scale ? dy.mul(scale) : dy, input: x },
      kernelAttrs as unknown as tf.NamedAttrMap,
    ) as tf.Tensor4D;
  });
}

/** AvgPool gradient: tfjs's where its kernel passes the probe, else the corrected one above. */
export function avgPoolGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.AvgPool,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      if (original && !isRewriteForced() && avgPoolGradKernel() === 'sound') return original.gradFunc(dy, saved, attrs);
      const [x] = saved as [tf.Tensor4D];
      return { x: () => avgPoolBackprop(dy as tf.Tensor4D, x, attrs as unknown as Attrs) };
    },
  };
}
