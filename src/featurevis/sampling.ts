import * as tf from '@tensorflow/tfjs';
import { computeOnHeap } from '../engine/index.js';

/**
 * Differentiable geometric resampling without tf.image kernels and without gather.
 *
 * Why: on tfjs 4.22 tf.image.transform and rotateWithOffset have no registered gradient ("gradient
 * function not found for Transform / RotateWithOffset", checked on wasm), and gather-based bilinear
 * sampling would need UnsortedSegmentSum, missing on wasm. Scaling is separable, so it is one 1-D
 * linear-interpolation matrix per axis; a rotation is three shears (Paeth), and a shear is a per-line
 * fractional shift (two taps per output value) whose gradient is again such a shift.
 *
 * Speed (wasm, single thread, measured at 16×128×128×3): a plain 2-D matMul runs ~10× faster than the
 * transposed, batched or broadcast forms tf.grad's matMul gradient uses, so the matrix maps carry a
 * custom gradient that is again a plain product with a precomputed transpose. Per-line shifts as
 * slices or gathers were slower still (each wasm slice copies its whole input; gather ≈ 40 ns/value),
 * so shears run as a typed-array loop with a custom gradient: ~170 ms for a 16-image rotation with
 * its backward pass, against ~700 ms with per-line matrices in a batched matMul.
 *
 * Coordinates: pixel centres sit at integer positions; (H−1)/2, (W−1)/2 is the image centre.
 * Samples that fall outside the input read `fill` (default 0).
 */

/**
 * [nOut × nIn] linear-interpolation weights (row-major): output i reads the input at coordinate
 * `src(i)`. Taps outside [0, nIn) contribute nothing, so values fade to 0 there (callers shift by a
 * fill value around the product to fill with something else).
 */
export function interpWeights(nOut: number, nIn: number, src: (i: number) => number, out?: Float32Array, offset = 0): Float32Array {
  const m = out ?? new Float32Array(nOut * nIn);
  for (let i = 0; i < nOut; i++) {
    const s = src(i);
    const k = Math.floor(s);
    const f = s - k;
    const row = offset + i * nIn;
    if (k >= 0 && k < nIn) m[row + k]! += 1 - f;
    if (f > 0 && k + 1 >= 0 && k + 1 < nIn) m[row + k + 1]! += f;
  }
  return m;
}

/** Row-major transpose of an [r × c] matrix. */
export function transposed(m: Float32Array, r: number, c: number): Float32Array {
  const t = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = m[i * c + j]!;
  return t;
}

/**
 * x @ m for a constant m, with the gradient dy @ mᵀ computed from `mT` (given, or transposed once here):
 * both are plain non-transposed 2-D products, the fast path on wasm.
 */
export function matMulConst(x: tf.Tensor2D, m: tf.Tensor2D, mT?: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((xx: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    // save() keeps a reference until the backward pass, which runs after the forward scope is tidied.
    (save as tf.GradSaveFunc)([mT ?? tf.transpose(m)]);
    return {
      value: tf.matMul(xx as tf.Tensor2D, m),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.matMul(dy as tf.Tensor2D, saved[0] as tf.Tensor2D),
    };
  });
  return op(x) as tf.Tensor2D;
}

/** Axis 1 = rows (H), 2 = columns (W) of an NHWC image. */
export type SpatialAxis = 1 | 2;

/**
 * Resample one spatial axis with a single [nOut × nIn] matrix shared by every line and item:
 * out[…, o, …] = Σ_k m[o, k] · img[…, k, …]. The axis is moved last so this is one 2-D product.
 */
export function resampleAxis(img: tf.Tensor4D, axis: SpatialAxis, weights: Float32Array, nOut: number): tf.Tensor4D {
  const [b, h, w, c] = img.shape;
  const nIn = axis === 1 ? h : w;
  if (weights.length !== nOut * nIn) throw new Error(`resampleAxis: weights hold ${weights.length} values, expected ${nOut}×${nIn}`);
  return tf.tidy(() => {
    const mT = tf.tensor2d(transposed(weights, nOut, nIn), [nIn, nOut]);
    const m = tf.tensor2d(weights, [nOut, nIn]);
    if (axis === 2) {
      const x = img.transpose([0, 1, 3, 2]).reshape([b * h * c, w]) as tf.Tensor2D;
      return matMulConst(x, mT, m).reshape([b, h, c, nOut]).transpose([0, 1, 3, 2]) as tf.Tensor4D;
    }
    const x = img.transpose([0, 2, 3, 1]).reshape([b * w * c, h]) as tf.Tensor2D;
    return matMulConst(x, mT, m).reshape([b, w, c, nOut]).transpose([0, 3, 1, 2]) as tf.Tensor4D;
  });
}

/**
 * out[line l, o] = w0[l]·in[l, o + s[l]] + w1[l]·in[l, o + s[l] + 1] along `axis` (lines run along the
 * other spatial axis), zero outside the input; all items and channels alike. A plain loop over the
 * values: on wasm every slice copies its whole input (the kernel reads it back with readSync) and a
 * gather costs ~40 ns per value, while this is ~2 ns per value plus one read-back and one upload.
 */
function twoTaps(x: tf.Tensor4D, axis: SpatialAxis, s: Int32Array, w0: Float32Array, w1: Float32Array, nOut: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const outShape: [number, number, number, number] = axis === 2 ? [b, h, nOut, c] : [b, nOut, w, c];
  return computeOnHeap(outShape, [x], (out, [src]) => taps(src!, out, b, h, w, c, axis, s, w0, w1, nOut)) as tf.Tensor4D;
}

function taps(src: Float32Array, out: Float32Array, b: number, h: number, w: number, c: number, axis: SpatialAxis, s: Int32Array, w0: Float32Array, w1: Float32Array, nOut: number): void {
  // Each tap is a run of whole pixels whose source is in range: o ∈ [lo, hi) with 0 ≤ o + shift < n, copied as one
  // flat loop over o·c values (no per-value bounds tests: ~4× faster than testing each sample).
  const range = (shift: number, n: number, m: number): [number, number] => [Math.max(0, -shift), Math.min(m, n - shift)];
  if (axis === 2) {
    // Lines are rows: output row l reads input row l, shifted.
    for (let n = 0; n < b; n++) {
      for (let l = 0; l < h; l++) {
        const inRow = (n * h + l) * w * c;
        const outRow = (n * h + l) * nOut * c;
        for (const [tap, a] of [[0, w0[l]!], [1, w1[l]!]] as const) {
          if (a === 0) continue;
          const [lo, hi] = range(s[l]! + tap, w, nOut);
          const from = inRow + (s[l]! + tap) * c;
          for (let j = lo * c, e = hi * c; j < e; j++) out[outRow + j]! += a * src[from + j]!;
        }
      }
    }
  } else {
    // Lines are columns: output row o of column l reads input row o + s[l] (+1); rows are w·c apart.
    const row = w * c;
    for (let n = 0; n < b; n++) {
      const base = n * h * row;
      const outBase = n * nOut * row;
      for (let l = 0; l < w; l++) {
        for (const [tap, a] of [[0, w0[l]!], [1, w1[l]!]] as const) {
          if (a === 0) continue;
          const [lo, hi] = range(s[l]! + tap, h, nOut);
          for (let o = lo; o < hi; o++) {
            const at = outBase + o * row + l * c;
            const from = base + (o + s[l]! + tap) * row + l * c;
            for (let k = 0; k < c; k++) out[at + k]! += a * src[from + k]!;
          }
        }
      }
    }
  }
}

/**
 * Per-line fractional shift along `axis`: line l (a row for axis 2, a column for axis 1) of the output
 * samples the input at o + delta[l] (linear interpolation, zero outside), nOut samples per line.
 * Computed on the CPU side (see `twoTaps`), with the adjoint shift (taps swapped, offsets negated)
 * as its custom gradient. Synchronous: fine on wasm/cpu; a GPU backend would stall on the read-back.
 */
export function shiftLines(img: tf.Tensor4D, axis: SpatialAxis, delta: ArrayLike<number>, nOut: number): tf.Tensor4D {
  const lines = img.shape[axis === 2 ? 1 : 2];
  const nIn = img.shape[axis];
  if (delta.length !== lines) throw new Error(`shiftLines: ${delta.length} offsets for ${lines} lines`);
  const s = new Int32Array(lines);
  const w0 = new Float32Array(lines);
  const w1 = new Float32Array(lines);
  const sBack = new Int32Array(lines);
  for (let l = 0; l < lines; l++) {
    const d = delta[l]!;
    s[l] = Math.floor(d);
    w1[l] = d - s[l]!;
    w0[l] = 1 - w1[l]!;
    sBack[l] = -s[l]! - 1;
  }
  const op = tf.customGrad((x: tf.Tensor | tf.GradSaveFunc) => ({
    value: twoTaps(x as tf.Tensor4D, axis, s, w0, w1, nOut),
    // din[l, i] = w0·dout[l, i − s] + w1·dout[l, i − s − 1]
    gradFunc: (dy: tf.Tensor) => twoTaps(dy as tf.Tensor4D, axis, sBack, w1, w0, nIn),
  }));
  return op(img) as tf.Tensor4D;
}

/** Apply `fn` to (img − fill) and add fill back, so samples from outside the input read `fill`. */
function withFill(img: tf.Tensor4D, fill: number, fn: (x: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  if (fill === 0) return fn(img);
  return tf.tidy(() => tf.add(fn(tf.sub(img, fill) as tf.Tensor4D), fill) as tf.Tensor4D);
}

/** Run `fn` per item when a per-item list is given (items differ), or once for the whole batch. */
function perItem(img: tf.Tensor4D, value: number | readonly number[], fn: (x: tf.Tensor4D, v: number) => tf.Tensor4D): tf.Tensor4D {
  if (typeof value === 'number') return fn(img, value);
  const b = img.shape[0];
  if (value.length !== b) throw new Error(`expected ${b} per-item values, got ${value.length}`);
  if (value.every((v) => v === value[0])) return fn(img, value[0]!);
  return tf.tidy(() => tf.concat(tf.split(img, b, 0).map((x, i) => fn(x as tf.Tensor4D, value[i]!)), 0) as tf.Tensor4D);
}

/** Bilinear resize to [h, w] (half-pixel centres, edges clamped: no fading at the border). */
export function resize(img: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const [, h0, w0] = img.shape;
  if (h === h0 && w === w0) return img.clone();
  const src = (nIn: number, nOut: number) => (i: number) => Math.min(nIn - 1, Math.max(0, ((i + 0.5) * nIn) / nOut - 0.5));
  return tf.tidy(() => resampleAxis(resampleAxis(img, 1, interpWeights(h, h0, src(h0, h)), h), 2, interpWeights(w, w0, src(w0, w)), w));
}

/**
 * Zoom about the centre by `scale` (> 1 enlarges the content), keeping the size; uncovered border
 * reads `fill`. A list gives each item its own scale.
 */
export function zoom(img: tf.Tensor4D, scale: number | readonly number[], fill = 0): tf.Tensor4D {
  return perItem(img, scale, (x, s) => {
    if (!(s > 0)) throw new Error(`zoom: scale must be > 0, got ${s}`);
    if (s === 1) return x.clone();
    const [, h, w] = x.shape;
    const src = (n: number) => (i: number) => (n - 1) / 2 + (i - (n - 1) / 2) / s;
    return withFill(x, fill, (y) => resampleAxis(resampleAxis(y, 1, interpWeights(h, h, src(h)), h), 2, interpWeights(w, w, src(w)), w));
  });
}

/**
 * Rotate about the centre by `degrees` (positive turns the content clockwise on screen, y down),
 * keeping the size; corners read `fill`. Three shears x(a)·y(b)·x(a) with a = −tan(θ/2), b = sin θ
 * (Paeth 1986); the first shear widens the image so no content that ends inside is clipped on the way.
 */
export function rotate(img: tf.Tensor4D, degrees: number | readonly number[], fill = 0): tf.Tensor4D {
  return perItem(img, degrees, (x, deg) => {
    if (deg === 0) return x.clone();
    const t = (deg * Math.PI) / 180;
    const a = -Math.tan(t / 2);
    const bb = Math.sin(t);
    const [, h, w] = x.shape;
    const cx = (w - 1) / 2;
    const cy = (h - 1) / 2;
    const margin = Math.ceil(Math.abs(a) * cy) + 1;
    const wm = w + 2 * margin;
    // Shear 1, along x per row: widen to wm columns (column u holds x = u − margin).
    const d1 = Array.from({ length: h }, (_, y) => -margin - a * (y - cy));
    // Shear 2, along y per (widened) column.
    const d2 = Array.from({ length: wm }, (_, u) => -bb * (u - margin - cx));
    // Shear 3, along x per row, back to w columns.
    const d3 = Array.from({ length: h }, (_, y) => margin - a * (y - cy));
    return withFill(x, fill, (z) => shiftLines(shiftLines(shiftLines(z, 2, d1, wm), 1, d2, h), 2, d3, w));
  });
}

/** Centre crop and/or pad (with `fill`) to [h, w]; odd differences put the extra pixel after. */
export function cropOrPad(img: tf.Tensor4D, h: number, w: number, fill = 0): tf.Tensor4D {
  const [, h0, w0] = img.shape;
  return tf.tidy(() => {
    let x = img;
    const dh = h - h0;
    const dw = w - w0;
    if (dh < 0 || dw < 0) {
      const top = dh < 0 ? Math.floor(-dh / 2) : 0;
      const left = dw < 0 ? Math.floor(-dw / 2) : 0;
      x = tf.slice(x, [0, top, left, 0], [-1, Math.min(h, h0), Math.min(w, w0), -1]);
    }
    if (dh > 0 || dw > 0) {
      const ph = Math.max(0, dh);
      const pw = Math.max(0, dw);
      x = tf.pad(x, [[0, 0], [Math.floor(ph / 2), ph - Math.floor(ph / 2)], [Math.floor(pw / 2), pw - Math.floor(pw / 2)], [0, 0]], fill);
    }
    return x === img ? img.clone() : x;
  });
}
