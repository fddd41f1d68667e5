import * as tf from '@tensorflow/tfjs';
import type { WindowGeometry } from './spatial.js';

/**
 * The adjoint of a strided / dilated / padded 2-D window (dL/dx of a convolution) as *forward*, stride-1
 * convolutions of dy, which XNNPACK runs fast on wasm (the native backprop-input kernel is ~10× slower).
 *
 * Per spatial axis, forward: y[o] = Σ_k x[o·s + k·d − P] w[k]. Then dx[i] = Σ dy[o] w[k] over o·s + k·d = i + P.
 * - stride 1: dx is a correlation of dy, padded by ((K−1)·d − P) before, with the taps reversed (dilation d);
 * - stride s > 1 (then d = 1): the inputs i with (i + P) mod s = r ("phase" r) only meet taps k ≡ r (mod s), so each
 *   phase is a stride-1 correlation of dy with the sub-filter w[r], w[r+s], … reversed — s² small convolutions
 *   on the dy grid (no zero-inserted dy, no wasted multiplications) — and the phases are interleaved.
 * Results are exact sums of the same products as the direct formula, in a different order.
 */

/** Filter tap indices in correlation order (reversed) for one phase along one axis; empty when the phase meets no tap. */
function phaseTaps(taps: number, stride: number, phase: number): number[] {
  const out: number[] = [];
  for (let k = phase; k < taps; k += stride) out.push(k);
  return out.reverse();
}

/**
 * One phase's correlation: `taps` lists filter rows / cols (in filter coordinates, reversed) and `pad` the explicit
 * padding of dy ([top, bottom], [left, right], never negative). Must return [batch, outRows, outCols, channels].
 */
export type PhaseConv = (dy: tf.Tensor4D, rows: number[], cols: number[], pad: [[number, number], [number, number]], dilation: [number, number]) => tf.Tensor4D;

interface AxisPlan {
  stride: number;
  /** First and last q (phase-grid index, t = q·s + r with t = i + P) that any input position needs. */
  qa: number;
  qb: number;
  phases: Array<{ taps: number[]; before: number; after: number }>;
  /** Offset of input position 0 in the interleaved grid. */
  crop: number;
}

function planAxis(g: WindowGeometry, axis: number, taps: number): AxisPlan {
  const s = g.strides[axis];
  const d = g.dilation[axis];
  const P = g.padBefore[axis];
  const H = g.inSize[axis];
  const Ho = g.outSize[axis];
  const qa = Math.floor(P / s);
  const qb = Math.floor((H - 1 + P) / s);
  const phases = Array.from({ length: s }, (_, r) => {
    const t = phaseTaps(taps, s, r);
    // stride 1: one phase, all taps at dilation d; stride > 1 implies d = 1 (tfjs rejects both > 1).
    const span = t.length === 0 ? 0 : (t.length - 1) * (s === 1 ? d : 1);
    return { taps: t, before: span - qa, after: qb - (Ho - 1) };
  });
  return { stride: s, qa, qb, phases, crop: P - qa * s };
}

/** Crop dy where the padding is negative (rows no input position reads), so the convolution pads only. */
function cropForPads(dy: tf.Tensor4D, rows: { before: number; after: number }, cols: { before: number; after: number }): tf.Tensor4D {
  const top = Math.max(0, -rows.before);
  const bottom = Math.max(0, -rows.after);
  const left = Math.max(0, -cols.before);
  const right = Math.max(0, -cols.after);
  if (top + bottom + left + right === 0) return dy;
  return tf.slice(dy, [0, top, left, 0], [-1, dy.shape[1] - top - bottom, dy.shape[2] - left - right, -1]);
}

/**
 * dL/dx (NHWC) of a window op with geometry `g` and a `taps[0]`×`taps[1]` filter, from forward convolutions
 * `conv` of dy. `channels` is the channel count of dx (for phases no tap reaches: zeros).
 * 'phases' runs one small convolution per stride phase and interleaves them (fewest multiplications; the
 * interleave costs ~3 copies of dx); 'spread' inserts the zeros into dy (one pad) and runs one stride-1
 * convolution with all taps (cheapest where the convolution is cheap per element: depthwise).
 */
export function transposedConv(
  dy: tf.Tensor4D,
  g: WindowGeometry,
  taps: [number, number],
  channels: number,
  conv: PhaseConv,
  strategy: 'phases' | 'spread' = 'phases',
): tf.Tensor4D {
  return tf.tidy(() => {
    const strided = g.strides.some((s) => s > 1);
    if (strided && strategy === 'spread') {
      const spread = spreadWithTail(dy, g, taps);
      if (spread) return spread(conv);
    }
    const rows = planAxis(g, 0, taps[0]);
    const cols = planAxis(g, 1, taps[1]);
    const dilation: [number, number] = [rows.stride === 1 ? g.dilation[0] : 1, cols.stride === 1 ? g.dilation[1] : 1];
    const lenRows = rows.qb - rows.qa + 1;
    const lenCols = cols.qb - cols.qa + 1;
    const batch = dy.shape[0];
    const phase = (pr: AxisPlan['phases'][number], pc: AxisPlan['phases'][number]): tf.Tensor4D => {
      if (pr.taps.length === 0 || pc.taps.length === 0) return tf.zeros([batch, lenRows, lenCols, channels]);
      const src = cropForPads(dy, pr, pc);
      return conv(src, pr.taps, pc.taps, [[Math.max(0, pr.before), Math.max(0, pr.after)], [Math.max(0, pc.before), Math.max(0, pc.after)]], dilation);
    };
    let grid: tf.Tensor4D;
    if (!strided) {
      grid = phase(rows.phases[0], cols.phases[0]);
    } else {
      // [rowPhase][colPhase] → [batch, lenRows, sRows, lenCols, sCols, C] → interleaved [batch, lenRows·sRows, lenCols·sCols, C].
      const byRow = rows.phases.map((pr) => tf.stack(cols.phases.map((pc) => phase(pr, pc)), 3));
      grid = tf.stack(byRow, 2).reshape([batch, lenRows * rows.stride, lenCols * cols.stride, channels]) as tf.Tensor4D;
    }
    const [H, W] = g.inSize;
    if (rows.crop === 0 && cols.crop === 0 && grid.shape[1] === H && grid.shape[2] === W) return grid;
    return tf.slice(grid, [0, rows.crop, cols.crop, 0], [-1, H, W, -1]);
  });
}

/**
 * The 'spread' plan: dy with s − 1 zeros after every element (one pad of a 6-D view, trailing zeros kept), then
 * one stride-1 correlation with the whole reversed filter, padded by the convolution itself. Undefined where that
 * would need a crop instead of padding (then the phases are used).
 */
function spreadWithTail(dy: tf.Tensor4D, g: WindowGeometry, taps: [number, number]): ((conv: PhaseConv) => tf.Tensor4D) | undefined {
  const [n, rows, cols, c] = dy.shape;
  const pads = [0, 1].map((axis) => {
    const len = g.outSize[axis] * g.strides[axis];
    const before = g.window[axis] - 1 - g.padBefore[axis];
    return [before, g.inSize[axis] + g.window[axis] - 1 - len - before] as [number, number];
  }) as [[number, number], [number, number]];
  if (pads.some(([a, b]) => a < 0 || b < 0)) return undefined;
  return (conv) => {
    const [sh, sw] = g.strides;
    const view = dy.reshape([n, rows, 1, cols, 1, c]);
    const spread = tf.pad(view, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]).reshape([n, rows * sh, cols * sw, c]) as tf.Tensor4D;
    const all = (k: number) => Array.from({ length: k }, (_, i) => k - 1 - i);
    return conv(spread, all(taps[0]), all(taps[1]), pads, [1, 1]);
  };
}

/** The sub-filter of `filter` ([kh, kw, …]) at the given rows and columns (in that order). */
export function subFilter(filter: tf.Tensor4D, rows: number[], cols: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = filter.shape;
    if (kh === 1 && kw === 1) return filter;
    const identity = (idx: number[], n: number) => idx.length === n && idx.every((v, i) => v === n - 1 - i);
    // The full filter reversed (stride 1) is the common case: one Reverse instead of two gathers.
    if (identity(rows, kh) && identity(cols, kw)) return tf.reverse(filter, [0, 1]);
    const pick = (t: tf.Tensor4D, idx: number[], axis: number, n: number) =>
      idx.length === 1 ? (tf.slice(t, axis === 0 ? [idx[0], 0, 0, 0] : [0, idx[0], 0, 0], axis === 0 ? [1, -1, -1, -1] : [-1, 1, -1, -1]) as tf.Tensor4D)
        : idx.length === n && idx.every((v, i) => v === i) ? t
        : (tf.gather(t, tf.tensor1d(idx, 'int32'), axis) as tf.Tensor4D);
    return pick(pick(filter, rows, 0, kh), cols, 1, kw);
  });
}
