import * as tf from '@tensorflow/tfjs';
import { pool2DGeometry, pool3DGeometry } from './geometry.js';
import { maxPool3DGradKernelIsSound, maxPoolGradKernelIsSound } from './probes.js';
import { smoothMaxPoolGrad } from './smooth-maxpool.js';
import { frame, scatterTap, tapOffsets, tapSlice, unframe, type WindowGeometry } from './spatial.js';
import { getMaxPoolGradMode, isRewriteForced } from './state.js';

/**
 * Exact max-pool gradient from strided slices, for backends whose MaxPoolGrad kernel is wrong (wasm 4.22 routes
 * the gradient of a window whose max is <= 0 to the wrong element, or drops it).
 *
 * Why slices rather than feeding the kernel a shifted, all-positive copy of x: shifting by -min(x) + 1 rounds in
 * float32, so nearby values (e.g. 0 and 1e-8 next to a -100 elsewhere) become equal and the gradient can go to a
 * non-maximal element. Comparing the original values is exact. Ties go to the first element of the window in
 * row-major order, as tfjs's cpu kernel does; each window's gradient goes to exactly one element.
 * Cost: about 4 elementwise passes per window tap (9 for 3×3), all memory-bound.
 */
export function maxPoolBackpropExact(dy: tf.Tensor, x: tf.Tensor, g: WindowGeometry): tf.Tensor {
  return tf.tidy(() => {
    // -Infinity padding never wins, like the in-bounds-only window of the forward pass.
    const framed = frame(x, g, -Infinity);
    const framedSize = framed.shape.slice(1, -1);
    const taps = tapOffsets(g);
    // The window max is recomputed from the same slices (not taken from the saved forward output), so the
    // equality test below is exact by construction whatever kernel produced the forward value.
    let peak = tapSlice(framed, taps[0], g);
    for (const tap of taps.slice(1)) {
      const next = tf.tidy(() => tf.maximum(peak, tapSlice(framed, tap, g)));
      peak.dispose();
      peak = next;
    }
    let open = tf.onesLike(dy); // 1 while a window's gradient has not been routed yet (first max wins)
    let acc = tf.zerosLike(framed);
    for (const tap of taps) {
      const [nextAcc, nextOpen] = tf.tidy(() => {
        const hit = tf.equal(tapSlice(framed, tap, g), peak).toFloat().mul(open);
        return [acc.add(scatterTap(hit.mul(dy), tap, g, framedSize)), open.sub(hit)];
      });
      acc.dispose();
      open.dispose();
      acc = nextAcc;
      open = nextOpen;
    }
    return unframe(acc, g);
  });
}

/** MaxPool gradient: 'smooth' mode → the relaxation's; else tfjs's where its kernel passes the probe; else the exact rewrite. */
export function maxPoolGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.MaxPool,
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor4D];
      const a = attrs as unknown as tf.MaxPoolAttrs;
      if (getMaxPoolGradMode() === 'smooth') return { x: () => smoothMaxPoolGrad(dy as tf.Tensor4D, x, a) };
      if (original && !isRewriteForced() && maxPoolGradKernelIsSound()) return original.gradFunc(dy, saved, attrs);
      return { x: () => maxPoolBackpropExact(dy as tf.Tensor, x, pool2DGeometry(x.shape, a.filterSize, a.strides, a.pad, a.dimRoundingMode)) };
    },
  };
}

/** MaxPool3D: the same exact rewrite (wasm's MaxPool3DGrad has the same defect). No smooth mode in 3D. */
export function maxPool3DGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.MaxPool3D,
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor5D];
      const a = attrs as unknown as tf.MaxPool3DAttrs;
      if (original && (a.dataFormat === 'NCDHW' || (!isRewriteForced() && maxPool3DGradKernelIsSound()))) {
        return original.gradFunc(dy, saved, attrs);
      }
      return { x: () => maxPoolBackpropExact(dy as tf.Tensor, x, pool3DGeometry(x.shape, a.filterSize, a.strides, a.pad, a.dimRoundingMode)) };
    },
  };
}
