import * as tf from '@tensorflow/tfjs';

/**
 * Shape plumbing shared by the op-based gradients. Tensors are channels-last, [batch, ...spatial, channels],
 * with 2 (NHWC) or 3 (NDHWC) spatial axes. All of it is slices, pads and reshapes: kernels every backend has.
 */

/** Where a sliding window samples its input: per spatial axis. */
export interface WindowGeometry {
  /** Window extent, dilation included (effective filter size). */
  window: number[];
  /** Distance between taps inside a window (the dilation rate; 1 for pooling). */
  dilation: number[];
  strides: number[];
  /** Padding before the first input element (top / left / front). Never negative for tfjs geometries. */
  padBefore: number[];
  inSize: number[];
  outSize: number[];
}

/** Padding after the input that makes the last window fit exactly (negative: trailing input no window reaches). */
export function padAfter(g: WindowGeometry): number[] {
  return g.inSize.map((n, i) => (g.outSize[i] - 1) * g.strides[i] + g.window[i] - n - g.padBefore[i]);
}

/** Pad (positive) or crop (negative) each spatial axis; `value` fills the padding. */
export function padOrCrop(t: tf.Tensor, before: number[], after: number[], value = 0): tf.Tensor {
  const n = before.length;
  if (before.every((b) => b === 0) && after.every((a) => a === 0)) return t;
  return tf.tidy(() => {
    let out = t;
    if (before.some((b) => b < 0) || after.some((a) => a < 0)) {
      const begin = [0, ...before.map((b) => Math.max(0, -b)), 0];
      const size = [-1, ...t.shape.slice(1, n + 1).map((len, i) => len - Math.max(0, -before[i]) - Math.max(0, -after[i])), -1];
      out = tf.slice(out, begin, size);
    }
    if (before.some((b) => b > 0) || after.some((a) => a > 0)) {
      const pads: Array<[number, number]> = [[0, 0], ...before.map((b, i): [number, number] => [Math.max(0, b), Math.max(0, after[i])]), [0, 0]];
      out = tf.pad(out, pads, value);
    }
    return out;
  });
}

/** The input framed so that window `o` along an axis starts at `o * stride`: padded as tfjs pads, trailing rows no window reads dropped. */
export function frame(x: tf.Tensor, g: WindowGeometry, value = 0): tf.Tensor {
  return padOrCrop(x, g.padBefore, padAfter(g), value);
}

/** Inverse of `frame` for a gradient living on the framed grid: drop the padding, restore cropped rows as zeros. */
export function unframe(t: tf.Tensor, g: WindowGeometry): tf.Tensor {
  return padOrCrop(
    t,
    g.padBefore.map((b) => -b),
    padAfter(g).map((a) => -a),
  );
}

/** Offsets (in framed input coordinates) of every tap of a window, in row-major order (the order tfjs scans a window). */
export function tapOffsets(g: WindowGeometry): number[][] {
  const taps = g.window.map((w, i) => Math.floor((w - 1) / g.dilation[i]) + 1);
  let out: number[][] = [[]];
  taps.forEach((count, axis) => {
    const next: number[][] = [];
    for (const prefix of out) for (let k = 0; k < count; k++) next.push([...prefix, k * g.dilation[axis]]);
    out = next;
  });
  return out;
}

/**
 * The input value each output position reads at tap `offset`: a strided slice of the framed input, output-shaped.
 * Built from plain slices and reshapes (a strided axis of length out·s is split into [out, s] and its first
 * phase kept): wasm's StridedSlice and Gather kernels are far slower (measured: 2.3 s and 1.6 s of a 3.5 s
 * GoogLeNet backward pass at 96 px, batch 8).
 */
export function tapSlice(framed: tf.Tensor, offset: number[], g: WindowGeometry): tf.Tensor {
  return tf.tidy(() => {
    const last = framed.shape.length - 1;
    const span = offset.map((_, i) => (g.outSize[i] - 1) * g.strides[i] + 1);
    let out = tf.slice(framed, [0, ...offset, 0], [framed.shape[0], ...span, framed.shape[last]]);
    g.strides.forEach((s, i) => {
      if (s === 1) return;
      const axis = i + 1;
      const n = g.outSize[i];
      // Pad the span ((n − 1)·s + 1) up to n·s, split the axis into [n, s], keep phase 0.
      const pads = out.shape.map((_, k): [number, number] => [0, k === axis ? s - 1 : 0]);
      const whole = tf.pad(out, pads);
      const split = [...whole.shape.slice(0, axis), n, s, ...whole.shape.slice(axis + 1)];
      const kept = tf.slice(tf.reshape(whole, split), split.map(() => 0), split.map((d, k) => (k === axis + 1 ? 1 : d)));
      out = tf.reshape(kept, [...whole.shape.slice(0, axis), n, ...whole.shape.slice(axis + 1)]);
    });
    return out;
  });
}

/** Insert `s - 1` zeros between neighbours on each spatial axis (length n becomes (n - 1) * s + 1): the adjoint of a stride-s subsample. */
export function spreadByStrides(t: tf.Tensor, strides: number[]): tf.Tensor {
  if (strides.every((s) => s === 1)) return t;
  return tf.tidy(() => {
    let out = t;
    strides.forEach((s, i) => {
      if (s === 1) return;
      const axis = i + 1;
      const shape = out.shape;
      const n = shape[axis];
      const pads: Array<[number, number]> = shape.map((): [number, number] => [0, 0]);
      pads.splice(axis + 1, 0, [0, s - 1]);
      const spaced = tf.pad(tf.expandDims(out, axis + 1), pads).reshape([...shape.slice(0, axis), n * s, ...shape.slice(axis + 1)]);
      const size = shape.map((len, k) => (k === axis ? (n - 1) * s + 1 : len));
      out = tf.slice(spaced, shape.map(() => 0), size);
    });
    return out;
  });
}

/** Adjoint of `tapSlice`: put an output-shaped tensor back at tap `offset` of a framed grid of spatial size `framedSize`, zeros elsewhere. */
export function scatterTap(t: tf.Tensor, offset: number[], g: WindowGeometry, framedSize: number[]): tf.Tensor {
  return tf.tidy(() => {
    const spread = spreadByStrides(t, g.strides);
    const after = framedSize.map((n, i) => n - offset[i] - spread.shape[i + 1]);
    return padOrCrop(spread, offset, after);
  });
}
