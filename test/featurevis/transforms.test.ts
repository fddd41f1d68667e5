import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { compose, cropOrPad, interpWeights, jitter, keepSize, matMulConst, pad, padThenJitter, randomRotate, randomScale, resize, rotate, shiftLines, standardTransforms, zoom, type Transform } from '../../src/featurevis/transforms.js';
import { mulberry32 } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const img = (b: number, h: number, w: number, seed = 1) => tf.randomUniform([b, h, w, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
const run = (t: Transform, x: tf.Tensor4D, seed: number) => tf.tidy(() => t(x, mulberry32(seed)));
const range = (t: tf.Tensor) => {
  const d = t.dataSync();
  let lo = Infinity, hi = -Infinity;
  for (const v of d) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
};

describe('sampling helpers', () => {
  it('shiftLines equals dense per-line interpolation, and its gradient is the transposed map', () => {
    const rng = mulberry32(21);
    const [b, h, w, c] = [2, 5, 7, 3];
    const x = img(b, h, w, 11);
    const xs = x.arraySync() as number[][][][];
    for (const axis of [1, 2] as const) {
      const lines = axis === 2 ? h : w;
      const nIn = axis === 2 ? w : h;
      const nOut = nIn + 2;
      // Non-monotonic, fractional and out-of-range offsets.
      const delta = Array.from({ length: lines }, () => (rng() - 0.5) * 6);
      const mats = delta.map((d) => interpWeights(nOut, nIn, (o) => o + d));
      const y = tf.randomNormal(axis === 2 ? [b, h, nOut, c] : [b, nOut, w, c], 0, 1, 'float32', 3) as tf.Tensor4D;
      const ys = y.arraySync() as number[][][][];
      const got = shiftLines(x, axis, delta, nOut).arraySync() as number[][][][];
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(shiftLines(t as tf.Tensor4D, axis, delta, nOut), y)))(x).arraySync() as number[][][][];
      let err = 0;
      let gerr = 0;
      for (let n = 0; n < b; n++) for (let l = 0; l < lines; l++) for (let k = 0; k < c; k++) {
        const m = mats[l]!;
        const inAt = (i: number) => (axis === 2 ? xs[n]![l]![i]![k]! : xs[n]![i]![l]![k]!);
        const outAt = (o: number, arr: number[][][][]) => (axis === 2 ? arr[n]![l]![o]![k]! : arr[n]![o]![l]![k]!);
        for (let o = 0; o < nOut; o++) {
          let want = 0;
          for (let i = 0; i < nIn; i++) want += m[o * nIn + i]! * inAt(i);
          err = Math.max(err, Math.abs(outAt(o, got) - want));
        }
        for (let i = 0; i < nIn; i++) {
          let want = 0;
          for (let o = 0; o < nOut; o++) want += m[o * nIn + i]! * outAt(o, ys);
          const gi = axis === 2 ? g[n]![l]![i]![k]! : g[n]![i]![l]![k]!;
          gerr = Math.max(gerr, Math.abs(gi - want));
        }
      }
      expect(err).toBeLessThan(1e-5);
      expect(gerr).toBeLessThan(1e-5);
      y.dispose();
    }
    x.dispose();
  });

  it('matMulConst has the gradient of a plain matMul', () => {
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1) as tf.Tensor2D;
    const m = tf.randomNormal([6, 5], 0, 1, 'float32', 2) as tf.Tensor2D;
    const y = tf.randomNormal([4, 5], 0, 1, 'float32', 3);
    const a = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(matMulConst(t as tf.Tensor2D, m), y)))(x);
    const b = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.matMul(t as tf.Tensor2D, m), y)))(x);
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, m, y, a, b]);
  });
});

describe('transforms', () => {
  it('pad grows by 2n with the constant (or a mirror); jitter crops d at an offset in [0, d]', () => {
    const x = img(2, 10, 12);
    const p = run(pad(3, 'constant', 0.25), x, 1);
    expect(p.shape).toEqual([2, 16, 18, 3]);
    expect(p.slice([0, 0, 0, 0], [2, 3, 18, 3]).dataSync().every((v) => v === 0.25)).toBe(true);
    const r = run(pad(2, 'reflect'), x, 1);
    expect(r.shape).toEqual([2, 14, 16, 3]);
    const j = run(jitter(4), x, 7);
    expect(j.shape).toEqual([2, 6, 8, 3]);
    const jd = Array.from(j.dataSync());
    let found = 0;
    for (let oy = 0; oy <= 4; oy++) for (let ox = 0; ox <= 4; ox++) {
      const s = x.slice([0, oy, ox, 0], [2, 6, 8, 3]);
      if (Array.from(s.dataSync()).every((v, k) => v === jd[k])) found++;
      s.dispose();
    }
    expect(found).toBe(1);
    tf.dispose([x, p, r, j]);
  });

  it('padThenJitter is pad then the jitters: same pixels, same gradient, same random draws', () => {
    const x = img(2, 20, 22);
    for (const seed of [1, 2, 3, 4, 5]) {
      const tail = (rng: () => number) => rng(); // the next draw must match too
      const one = tf.tidy(() => {
        const rng = mulberry32(seed);
        const y = padThenJitter(2, [4, 4, 8, 0, 3], 'constant', 0.5)(x, rng);
        return { y, next: tail(rng), g: tf.grad((v: tf.Tensor) => tf.sum(tf.mul(padThenJitter(2, [4, 4, 8, 0, 3], 'constant', 0.5)(v as tf.Tensor4D, mulberry32(seed)), tf.range(0, y.size).reshape(y.shape))))(x) };
      });
      const many = tf.tidy(() => {
        const rng = mulberry32(seed);
        const seq = compose([pad(2, 'constant', 0.5), jitter(4), jitter(4), jitter(8), jitter(0), jitter(3)]);
        const y = seq(x, rng);
        return { y, next: tail(rng), g: tf.grad((v: tf.Tensor) => tf.sum(tf.mul(seq(v as tf.Tensor4D, mulberry32(seed)), tf.range(0, y.size).reshape(y.shape))))(x) };
      });
      expect(one.y.shape).toEqual([2, 5, 7, 3]);
      expect(Array.from(one.y.dataSync())).toEqual(Array.from(many.y.dataSync()));
      expect(Array.from(one.g.dataSync())).toEqual(Array.from(many.g.dataSync()));
      expect(one.next).toBe(many.next);
      tf.dispose([one.y, one.g, many.y, many.g]);
    }
    expect(() => padThenJitter(0, [20])(x, mulberry32(1))).toThrow(/jitter\(20\) on a 20×22 image leaves nothing/);
    x.dispose();
  });

  it('rotating an odd-size image by 90° is the exact pixel rotation (clockwise on screen); 0° is identity', () => {
    const n = 9;
    const x = img(1, n, n, 3);
    const out = rotate(x, 90, 0);
    const a = (x.arraySync() as number[][][][])[0]!;
    const o = (out.arraySync() as number[][][][])[0]!;
    let err = 0;
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) for (let k = 0; k < 3; k++) err = Math.max(err, Math.abs(o[r]![c]![k]! - a[n - 1 - c]![r]![k]!));
    expect(err).toBeLessThan(1e-5);
    const same = rotate(x, 0);
    expect(Array.from(same.dataSync())).toEqual(Array.from(x.dataSync()));
    tf.dispose([x, out, same]);
  });

  it('rotation and zoom keep shape and value range (convex combinations of pixels and fill)', () => {
    const x = img(3, 20, 16, 4);
    for (const t of [rotate(x, 17, 0.5), rotate(x, [-20, 5, 11], 0.5), zoom(x, 1.1, 0.5), zoom(x, [0.9, 1, 1.05], 0.5), resize(x, 13, 25)]) {
      expect(t.shape.slice(0, 1)).toEqual([3]);
      const [lo, hi] = range(t);
      expect(lo).toBeGreaterThanOrEqual(-1e-6);
      expect(hi).toBeLessThanOrEqual(1 + 1e-6);
      t.dispose();
    }
    x.dispose();
  });

  it('zoom scales about the centre: a ramp zoomed ×2 has half the slope', () => {
    const w = 11;
    const ramp = tf.tidy(() => tf.tile(tf.range(0, w).reshape([1, 1, w, 1]), [1, w, 1, 3]).toFloat()) as tf.Tensor4D;
    const z = zoom(ramp, 2);
    const row = (z.arraySync() as number[][][][])[0]![5]!.map((p) => p[0]!);
    for (let c = 2; c <= 8; c++) expect(row[c]).toBeCloseTo(5 + (c - 5) / 2, 5);
    tf.dispose([ramp, z]);
  });

  it('rotation has a gradient on wasm that matches finite differences', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const x = img(1, 12, 12, 5);
    const wts = img(1, 12, 12, 6);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(rotate(zoom(t as tf.Tensor4D, 1.07, 0.5), 13, 0.5), wts)) as tf.Scalar;
    const g = tf.grad(f)(x);
    const gd = g.dataSync();
    expect(Array.from(gd).every(Number.isFinite)).toBe(true);
    const base = tf.tidy(() => f(x).dataSync()[0]!);
    for (const k of [0, 100, 200, 333]) {
      const d = x.dataSync().slice();
      d[k]! += 0.1;
      const moved = tf.tidy(() => f(tf.tensor4d(d, x.shape)).dataSync()[0]!);
      expect((moved - base) / 0.1).toBeCloseTo(gd[k]!, 2);
    }
    tf.dispose([x, wts, g]);
  });

  it('compose applies in list order', () => {
    const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    const double: Transform = (t) => tf.mul(t, 2);
    const a = run(compose([pad(1, 'constant', 1), double]), x, 1);
    const b = run(compose([double, pad(1, 'constant', 1)]), x, 1);
    expect(a.dataSync()[0]).toBe(2);
    expect(b.dataSync()[0]).toBe(1);
    const seq = run(compose([pad(2), jitter(4), jitter(2)]), x, 9);
    const byHand = tf.tidy(() => {
      const rng = mulberry32(9);
      return jitter(2)(jitter(4)(pad(2)(x, rng), rng), rng);
    });
    expect(Array.from(seq.dataSync())).toEqual(Array.from(byHand.dataSync()));
    tf.dispose([x, a, b, seq, byHand]);
  });

  it('standard transforms keep shape and range, are deterministic per seed, and do not leak', () => {
    const x = img(2, 64, 64, 8);
    const before = tf.memory().numTensors;
    const t = standardTransforms();
    const a = run(t, x, 42);
    const b = run(t, x, 42);
    const c = run(t, x, 43);
    expect(a.shape).toEqual([2, 64, 64, 3]);
    const [lo, hi] = range(a);
    expect(lo).toBeGreaterThanOrEqual(-1e-6);
    expect(hi).toBeLessThanOrEqual(1 + 1e-6);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Array.from(a.dataSync())).not.toEqual(Array.from(c.dataSync()));
    const r = run(standardTransforms({ keepSize: 'resize' }), x, 1);
    expect(r.shape).toEqual([2, 64, 64, 3]);
    const small = run(standardTransforms({ keepSize: false }), x, 1);
    expect(small.shape).toEqual([2, 34, 34, 3]);
    tf.dispose([a, b, c, r, small]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('random scale/rotate draw from their lists; keepSize restores size; cropOrPad centres', () => {
    const x = img(1, 16, 16, 2);
    const s1 = run(randomScale([1]), x, 3);
    expect(Array.from(s1.dataSync())).toEqual(Array.from(x.dataSync()));
    const r1 = run(randomRotate([0]), x, 3);
    expect(Array.from(r1.dataSync())).toEqual(Array.from(x.dataSync()));
    const k = run(keepSize(jitter(6)), x, 3);
    expect(k.shape).toEqual([1, 16, 16, 3]);
    const cp = cropOrPad(x, 12, 20, 0.5);
    expect(cp.shape).toEqual([1, 12, 20, 3]);
    expect(cp.slice([0, 0, 2, 0], [1, 1, 1, 3]).dataSync()[0]).toBeCloseTo(x.slice([0, 2, 0, 0], [1, 1, 1, 1]).dataSync()[0]!, 6);
    tf.dispose([x, s1, r1, k, cp]);
  });
});
