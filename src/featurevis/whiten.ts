import * as tf from '@tensorflow/tfjs';

/**
 * Whitening of icon directions (article §4): a cell's mean activation v is replaced by v' = S⁻¹v with
 * S = AᵀA/N the *uncentred* second moment of the collected activations, so the objective does not just
 * chase the directions every image activates. Linear algebra in float64; the O(N·C²) product AᵀA runs
 * on the tensor backend in row chunks (wasm SIMD), accumulated in float64.
 */

export interface Whitening {
  readonly channels: number;
  /** The ridge λ actually added to the diagonal (absolute). */
  readonly lambda: number;
  /** S + λI, row-major C×C. */
  readonly moment: Float64Array;
  /** Lower Cholesky factor L of S + λI (row-major), for solves. */
  readonly chol: Float64Array;
}

export interface WhiteningOptions {
  /**
   * Ridge relative to the mean diagonal of S (default 1e-3): λ = ridge · tr(S)/C. Needed because dead
   * channels (always 0 after ReLU) make S singular; it caps the condition number at about C/ridge.
   */
  ridge?: number;
  /** Rows per backend matMul (default 4096). */
  chunk?: number;
}

/** AᵀA/N for activations A, row-major [N × C] (float64 result, C×C). */
export function secondMoment(acts: Float32Array, c: number, chunk = 4096): Float64Array {
  const n = acts.length / c;
  if (!Number.isInteger(n) || n < 1) throw new Error(`secondMoment: ${acts.length} values is not [N × ${c}] with N ≥ 1`);
  const out = new Float64Array(c * c);
  for (let r0 = 0; r0 < n; r0 += chunk) {
    const rows = Math.min(chunk, n - r0);
    const part = tf.tidy(() => {
      const a = tf.tensor2d(acts.subarray(r0 * c, (r0 + rows) * c), [rows, c]);
      // An explicit transpose: matMul's transposeA path is ~10× slower on wasm (tfjs 4.22, measured 480 vs 55 ms at 4096×384).
      return tf.matMul(a.transpose(), a);
    });
    const d = part.dataSync();
    part.dispose();
    for (let k = 0; k < d.length; k++) out[k]! += d[k]!;
  }
  for (let k = 0; k < out.length; k++) out[k]! /= n;
  // Symmetrise: the float32 chunks can differ in the last bit between (i,j) and (j,i).
  for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) out[i * c + j] = out[j * c + i] = (out[i * c + j]! + out[j * c + i]!) / 2;
  return out;
}

/** Whitening from activations [N × C]. */
export function whitening(acts: Float32Array, c: number, opts: WhiteningOptions = {}): Whitening {
  return whiteningFromMoment(secondMoment(acts, c, opts.chunk), c, opts);
}

/** Whitening from a precomputed second moment S (C×C, row-major). */
export function whiteningFromMoment(s: ArrayLike<number>, c: number, opts: WhiteningOptions = {}): Whitening {
  if (s.length !== c * c) throw new Error(`whitening: moment has ${s.length} values, expected ${c}×${c}`);
  const ridge = opts.ridge ?? 1e-3;
  let trace = 0;
  for (let i = 0; i < c; i++) trace += s[i * c + i]!;
  // A zero moment (no signal at all) still gets a usable identity-like ridge.
  const lambda = ridge * (trace > 0 ? trace / c : 1);
  const moment = Float64Array.from(s);
  for (let i = 0; i < c; i++) moment[i * c + i]! += lambda;
  return { channels: c, lambda, moment, chol: cholesky(moment, c) };
}

/** Lower-triangular L with LLᵀ = m (m symmetric positive definite). */
function cholesky(m: Float64Array, c: number): Float64Array {
  const l = new Float64Array(c * c);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = m[i * c + j]!;
      for (let k = 0; k < j; k++) sum -= l[i * c + k]! * l[j * c + k]!;
      if (i === j) {
        if (!(sum > 0)) throw new Error(`whitening: second moment is not positive definite at channel ${i} (raise the ridge)`);
        l[i * c + i] = Math.sqrt(sum);
      } else {
        l[i * c + j] = sum / l[j * c + j]!;
      }
    }
  }
  return l;
}

function check(w: Whitening, v: ArrayLike<number>): void {
  if (v.length !== w.channels) throw new Error(`whitening: vector has ${v.length} values, expected ${w.channels}`);
}

/** v' = (S + λI)⁻¹ v, by two triangular solves. */
export function whiten(w: Whitening, v: ArrayLike<number>): Float64Array {
  check(w, v);
  const c = w.channels;
  const l = w.chol;
  const y = Float64Array.from(v);
  for (let i = 0; i < c; i++) {
    let s = y[i]!;
    for (let k = 0; k < i; k++) s -= l[i * c + k]! * y[k]!;
    y[i] = s / l[i * c + i]!;
  }
  for (let i = c - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < c; k++) s -= l[k * c + i]! * y[k]!;
    y[i] = s / l[i * c + i]!;
  }
  return y;
}

/** The inverse of `whiten`: (S + λI) v'. */
export function unwhiten(w: Whitening, v: ArrayLike<number>): Float64Array {
  check(w, v);
  const c = w.channels;
  const out = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += w.moment[i * c + k]! * v[k]!;
    out[i] = s;
  }
  return out;
}

/** inv(S + λI) as a row-major C×C matrix (for callers that apply it themselves, e.g. on the backend). */
export function inverse(w: Whitening): Float64Array {
  const c = w.channels;
  const out = new Float64Array(c * c);
  const e = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    e.fill(0);
    e[j] = 1;
    const col = whiten(w, e);
    for (let i = 0; i < c; i++) out[i * c + j] = col[i]!;
  }
  return out;
}
