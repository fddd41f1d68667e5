import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { decorrelate, decorrelateColors, decorrelationMatrix, fourier, fourierNorm, image, irfft2d, pixel, rfftWidth, sigmoid, spectrumScale } from '../../src/featurevis/param/index.js';
import { mulberry32 } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * Textbook inverse of a real 2-D DFT: extend the stored half-spectrum X[ky][kx] (kx < Kx) to all W
 * columns by Hermitian symmetry, X[ky][kx] = conj(X[−ky][W−kx]), then x = Re (1/HW) Σ X e^{+2πi(ky·y/H + kx·x/W)}.
 */
function naiveIrfft2(re: number[][], im: number[][], h: number, w: number): number[][] {
  const kxN = rfftWidth(w);
  const full = (ky: number, kx: number): [number, number] =>
    kx < kxN ? [re[ky]![kx]!, im[ky]![kx]!] : [re[(h - ky) % h]![w - kx]!, -im[(h - ky) % h]![w - kx]!];
  const out: number[][] = [];
  for (let y = 0; y < h; y++) {
    const row: number[] = [];
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let ky = 0; ky < h; ky++) {
        for (let kx = 0; kx < w; kx++) {
          const [a, b] = full(ky, kx);
          const phi = 2 * Math.PI * (ky * y / h + kx * x / w);
          s += a * Math.cos(phi) - b * Math.sin(phi);
        }
      }
      row.push(s / (h * w));
    }
    out.push(row);
  }
  return out;
}

const maxAbsDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((r, i) => r.map((v, j) => Math.abs(v - b[i]![j]!))));

describe('Fourier parameterisation', () => {
  for (const [h, w] of [[6, 8], [5, 7], [4, 5], [7, 6]] as const) {
    it(`irfft2d by matrix products equals the naive inverse DFT (${h}×${w})`, () => {
      const kx = rfftWidth(w);
      const rng = mulberry32(h * 31 + w);
      const re = Array.from({ length: h }, () => Array.from({ length: kx }, () => rng() - 0.5));
      const im = Array.from({ length: h }, () => Array.from({ length: kx }, () => rng() - 0.5));
      // Packed: per kx, [Re over ky | Im over ky].
      const packed = Array.from({ length: kx }, (_, k) => [...re.map((r) => r[k]!), ...im.map((r) => r[k]!)]);
      const t = tf.tensor3d([packed]);
      const got = irfft2d(t, h, w);
      expect(got.shape).toEqual([1, h, w]);
      expect(maxAbsDiff((got.arraySync() as number[][][])[0]!, naiveIrfft2(re, im, h, w))).toBeLessThan(1e-5);
      tf.dispose([t, got]);
    });
  }

  it("the parameterisation's image is the scaled spectrum's inverse DFT, per item and channel", () => {
    const [b, h, w] = [2, 6, 7];
    const kx = rfftWidth(w);
    const p = fourier(b, h, w, { seed: 3, sd: 0.5 });
    const img = p.image();
    expect(img.shape).toEqual([b, h, w, 3]);
    const spec = p.variables[0]!.arraySync() as number[][][][]; // [B, 3, Kx, 2H]
    const scale = spectrumScale(h, w);
    const norm = fourierNorm(h, w) * h * w; // fourierNorm includes irfft2's 1/(HW)
    const pix = img.arraySync() as number[][][][];
    for (let i = 0; i < b; i++) {
      for (let ch = 0; ch < 3; ch++) {
        const re = Array.from({ length: h }, (_, ky) => Array.from({ length: kx }, (_, k) => spec[i]![ch]![k]![ky]! * scale[k * 2 * h + ky]! * norm));
        const im = Array.from({ length: h }, (_, ky) => Array.from({ length: kx }, (_, k) => spec[i]![ch]![k]![h + ky]! * scale[k * 2 * h + h + ky]! * norm));
        const want = naiveIrfft2(re, im, h, w);
        const got = pix[i]!.map((row) => row.map((px) => px[ch]!));
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
      }
    }
    img.dispose();
    p.dispose();
  });

  it('scales the spectrum by 1/frequency with the DC floor 1/max(H,W)', () => {
    const s = spectrumScale(8, 8);
    expect(s[0]).toBeCloseTo(8, 5); // DC: 1/(1/8)
    expect(s[1]).toBeCloseTo(8, 5); // ky = 1, kx = 0: f = 1/8
    expect(s[1 * 16 + 2]).toBeCloseTo(1 / Math.hypot(1 / 8, 2 / 8), 4); // kx = 1, ky = 2
    expect(s[1 * 16 + 6]).toBeCloseTo(1 / Math.hypot(1 / 8, 2 / 8), 4); // ky = 6 ≡ −2
  });

  it('gradients reach the spectrum, are finite, and equal finite differences (the image is linear)', () => {
    const p = fourier(1, 8, 8, { seed: 1 });
    const weights = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 2);
    const f = () => tf.sum(tf.mul(p.image(), weights)) as tf.Scalar;
    const { value, grads } = tf.variableGrads(f, p.variables);
    const g = grads[p.variables[0]!.name]!;
    expect(g.shape).toEqual(p.variables[0]!.shape);
    const gv = g.dataSync();
    expect(gv.every(Number.isFinite)).toBe(true);
    expect(Math.max(...Array.from(gv).map(Math.abs))).toBeGreaterThan(0);
    // Finite difference on a few coefficients (exact up to rounding for a linear map).
    const v = p.variables[0]!;
    const base = value.dataSync()[0]!;
    for (const k of [1, 17, 40, 100]) {
      const eps = 0.5;
      const d = v.dataSync().slice();
      d[k]! += eps;
      const orig = v.clone();
      v.assign(tf.tensor(d, v.shape));
      const moved = tf.tidy(() => f().dataSync()[0]!);
      v.assign(orig);
      orig.dispose();
      expect((moved - base) / eps).toBeCloseTo(gv[k]!, 2);
    }
    tf.dispose([value, g, weights]);
    p.dispose();
  });

  it('decorrelation uses the normalised ImageNet matrix; decorrelate + sigmoid stays in (0,1)', () => {
    const m = decorrelationMatrix();
    // m is the normalised matrix transposed: its rows are the source's columns, the longest of norm 1.
    const norms = [0, 1, 2].map((j) => Math.hypot(m[3 * j]!, m[3 * j + 1]!, m[3 * j + 2]!));
    expect(Math.max(...norms)).toBeCloseTo(1, 6);
    const p = sigmoid(decorrelate(fourier(2, 16, 16, { seed: 4, sd: 50 })));
    const img = p.image();
    const d = img.dataSync();
    expect(Math.min(...d)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...d)).toBeLessThanOrEqual(1);
    expect(Math.max(...d) - Math.min(...d)).toBeGreaterThan(0.5);
    img.dispose();
    p.dispose();
  });

  it('decorrelateColors maps each pixel by the matrix, and its gradient is dy times the transpose, by hand', () => {
    const m = decorrelationMatrix();
    const r = mulberry32(9);
    const xs = Float32Array.from({ length: 2 * 3 * 2 * 3 }, () => r() - 0.5);
    const dys = Float32Array.from({ length: xs.length }, () => r() - 0.5);
    const before = tf.memory().numTensors;
    const x = tf.tensor4d(xs, [2, 3, 2, 3]);
    const dy = tf.tensor4d(dys, [2, 3, 2, 3]);
    const y = decorrelateColors(x);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(decorrelateColors(t as tf.Tensor4D), dy)))(x);
    const [yv, gv] = [y.dataSync(), g.dataSync()];
    for (let p = 0; p < xs.length / 3; p++) {
      for (let j = 0; j < 3; j++) {
        // y[p, j] = Σ_i x[p, i] m[i, j]; dx[p, i] = Σ_j dy[p, j] m[i, j]
        expect(yv[3 * p + j]).toBeCloseTo([0, 1, 2].reduce((a, i) => a + xs[3 * p + i]! * m[3 * i + j]!, 0), 6);
        expect(gv[3 * p + j]).toBeCloseTo([0, 1, 2].reduce((a, k) => a + dys[3 * p + k]! * m[3 * j + k]!, 0), 6);
      }
    }
    tf.dispose([x, dy, y, g]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('image() composes fourier + decorrelate + sigmoid by default; pixel and clip variants work; no leaks', () => {
    const before = tf.memory().numTensors;
    for (const opts of [{}, { fft: false }, { sigmoid: false }, { decorrelate: false, fft: false }]) {
      const p = image(2, 12, 10, { seed: 5, ...opts });
      const img = p.image();
      expect(img.shape).toEqual([2, 12, 10, 3]);
      const d = img.dataSync();
      expect(Math.min(...d)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...d)).toBeLessThanOrEqual(1);
      img.dispose();
      p.dispose();
    }
    const px = pixel(1, 4, 4, { seed: 1 });
    expect(px.variables[0]!.shape).toEqual([1, 4, 4, 3]);
    px.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the same seed gives the same initial image', () => {
    const a = image(1, 8, 8, { seed: 11 });
    const b = image(1, 8, 8, { seed: 11 });
    const [ia, ib] = [a.image(), b.image()];
    expect(Array.from(ia.dataSync())).toEqual(Array.from(ib.dataSync()));
    tf.dispose([ia, ib]);
    a.dispose();
    b.dispose();
  });
});
