import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { inverse, secondMoment, unwhiten, whiten, whitening } from '../../src/featurevis/whiten.js';
import { mulberry32 } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Correlated, ReLU-like activations [n × c] with one dead channel (which makes AᵀA/N singular). */
function activations(n: number, c: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  const mix = Array.from({ length: c * c }, () => rng() - 0.5);
  const a = new Float32Array(n * c);
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: c }, () => rng() * 2 - 0.5);
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += mix[j * c + k]! * z[k]!;
      a[r * c + j] = j === 2 ? 0 : Math.max(0, s);
    }
  }
  return a;
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
};

describe('whitening', () => {
  const n = 600, c = 12;
  const acts = activations(n, c, 5);

  it('second moment is the uncentred AᵀA/N (chunked on the backend)', () => {
    const s = secondMoment(acts, c, 97);
    const want = new Float64Array(c * c);
    for (let r = 0; r < n; r++) for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) want[i * c + j]! += (acts[r * c + i]! * acts[r * c + j]!) / n;
    expect(relErr(s, want)).toBeLessThan(1e-5);
  });

  it('whitening then un-whitening recovers the direction; whiten = inv(S + λI)·v', () => {
    const w = whitening(acts, c, { ridge: 1e-3 });
    const s = secondMoment(acts, c);
    let trace = 0;
    for (let i = 0; i < c; i++) trace += s[i * c + i]!;
    expect(w.lambda).toBeCloseTo((1e-3 * trace) / c, 10);
    const rng = mulberry32(9);
    for (let t = 0; t < 5; t++) {
      const v = Array.from({ length: c }, () => rng());
      const vw = whiten(w, v);
      expect(relErr(unwhiten(w, vw), v)).toBeLessThan(1e-4);
      const inv = inverse(w);
      const byInv = Array.from({ length: c }, (_, i) => v.reduce((acc, q, k) => acc + inv[i * c + k]! * q, 0));
      expect(relErr(byInv, vw)).toBeLessThan(1e-6);
      // Whitening changes the direction (it is not a multiple of v).
      const cos = vw.reduce((acc, q, k) => acc + q * v[k]!, 0) / (Math.hypot(...vw) * Math.hypot(...v));
      expect(cos).toBeLessThan(0.999);
    }
    expect(tf.memory().numTensors).toBe(0);
  });

  it('rejects vectors of the wrong length', () => {
    const w = whitening(acts, c);
    expect(() => whiten(w, [1, 2])).toThrow(/12/);
  });
});
