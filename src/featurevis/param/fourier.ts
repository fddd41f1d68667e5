import * as tf from '@tensorflow/tfjs';
import { matMulConst, transposed } from '../sampling.js';
import { initialValues, variableFrom, type InitOptions, type Param } from './param.js';

/**
 * Fourier-space image (Feature Visualization; lucid's fft_image): the variables are the coefficients
 * of a real 2-D inverse FFT, scaled by 1/frequency so every frequency band starts with similar energy
 * and the optimiser is not dominated by pixel-level high frequencies.
 *
 * tfjs's complex FFT ops (irfft, ifft) have no gradients, so the inverse transform here is two real
 * matrix products with precomputed cos/sin DFT matrices (one per axis, plain 2-D products with a
 * custom gradient, see `matMulConst`): O(H²+W²) per image row/column
 * instead of O(log), but at icon sizes (≤ 128 px) that is a few hundred MFLOP, small next to the model.
 *
 * Packed spectrum layout (what `irfft2d` takes and the variable holds, per image channel): [Kx, 2H] with
 * Kx = ⌊W/2⌋ + 1 (the rfft width) and the last axis holding the real parts for ky = 0…H−1, then the
 * imaginary parts. As in numpy/TF irfft2, the imaginary parts of the kx = 0 and Nyquist columns have no effect.
 */

/** Number of stored columns of a real FFT of width w. */
export const rfftWidth = (w: number): number => Math.floor(w / 2) + 1;

/** numpy.fft.fftfreq(n)[k]. */
const fftfreq = (k: number, n: number): number => (k < Math.ceil(n / 2) ? k : k - n) / n;

/**
 * The DFT matrices: m1 [2H, 2H] takes [Re | Im] along ky to [Re | Im] of the inverse DFT along y
 * (unnormalised); m2 [2Kx, W] takes [Re | Im] along kx to the real signal along x, with the Hermitian
 * weights (1 for kx = 0 and the Nyquist column, 2 otherwise) and the overall factor `norm`.
 */
export function dftMatrices(h: number, w: number, norm = 1 / (h * w)): { m1: Float32Array; m2: Float32Array } {
  const kx = rfftWidth(w);
  const m1 = new Float32Array(4 * h * h);
  const n1 = 2 * h;
  for (let k = 0; k < h; k++) {
    for (let y = 0; y < h; y++) {
      const phi = (2 * Math.PI * ((k * y) % h)) / h;
      const c = Math.cos(phi);
      const s = Math.sin(phi);
      m1[k * n1 + y] = c; // Re <- Re
      m1[k * n1 + h + y] = s; // Im <- Re
      m1[(h + k) * n1 + y] = -s; // Re <- Im
      m1[(h + k) * n1 + h + y] = c; // Im <- Im
    }
  }
  const m2 = new Float32Array(2 * kx * w);
  for (let k = 0; k < kx; k++) {
    const weight = k === 0 || (w % 2 === 0 && k === w / 2) ? 1 : 2;
    for (let x = 0; x < w; x++) {
      const phi = (2 * Math.PI * ((k * x) % w)) / w;
      m2[k * w + x] = weight * Math.cos(phi) * norm;
      m2[(kx + k) * w + x] = -weight * Math.sin(phi) * norm;
    }
  }
  return { m1, m2 };
}

/** The DFT matrices as tensors, with their transposes for the backward pass (see `matMulConst`). */
export interface DftTensors {
  m1: tf.Tensor2D;
  m1T: tf.Tensor2D;
  m2: tf.Tensor2D;
  m2T: tf.Tensor2D;
}

export function dftTensors(h: number, w: number, norm?: number): DftTensors {
  const kx = rfftWidth(w);
  const { m1, m2 } = dftMatrices(h, w, norm);
  return {
    m1: tf.tensor2d(m1, [2 * h, 2 * h]),
    m1T: tf.tensor2d(transposed(m1, 2 * h, 2 * h), [2 * h, 2 * h]),
    m2: tf.tensor2d(m2, [2 * kx, w]),
    m2T: tf.tensor2d(transposed(m2, 2 * kx, w), [w, 2 * kx]),
  };
}

/** Inverse real 2-D DFT of packed spectra [N, Kx, 2H] → [N, H, W], given the matrices as tensors. */
export function irfft2dWith(packed: tf.Tensor3D, d: DftTensors, h: number, w: number): tf.Tensor3D {
  const [n, kx, twoH] = packed.shape;
  if (twoH !== 2 * h || kx !== rfftWidth(w)) throw new Error(`irfft2d: spectrum [${packed.shape}] does not fit ${h}×${w}`);
  return tf.tidy(() => {
    // Along y: rows are (image, kx), columns [Re | Im] over y.
    const alongY = matMulConst(packed.reshape([n * kx, 2 * h]), d.m1, d.m1T);
    // Regroup so rows are (image, y) and columns [Re | Im] over kx, then along x.
    const rows = alongY.reshape([n, kx, 2, h]).transpose([0, 3, 2, 1]).reshape([n * h, 2 * kx]) as tf.Tensor2D;
    return matMulConst(rows, d.m2, d.m2T).reshape([n, h, w]) as tf.Tensor3D;
  });
}

/** numpy.fft.irfft2 (same normalisation, 1/(HW)) of packed spectra [N, Kx, 2H] → [N, H, W]. */
export function irfft2d(packed: tf.Tensor3D, h: number, w: number): tf.Tensor3D {
  const d = dftTensors(h, w);
  try {
    return irfft2dWith(packed, d, h, w);
  } finally {
    tf.dispose([d.m1, d.m1T, d.m2, d.m2T]);
  }
}

/**
 * Per-coefficient scale [Kx, 2H] (same for Re and Im): 1 / max(f, 1/max(H,W))^decay, f the radial
 * frequency in cycles per pixel (lucid rfft2d_freqs / fft_image; the floor keeps the DC term finite).
 */
export function spectrumScale(h: number, w: number, decay = 1): Float32Array {
  const kx = rfftWidth(w);
  const out = new Float32Array(kx * 2 * h);
  const floor = 1 / Math.max(h, w);
  for (let k = 0; k < kx; k++) {
    for (let ky = 0; ky < h; ky++) {
      const f = Math.hypot(fftfreq(k, w), fftfreq(ky, h));
      const s = 1 / Math.pow(Math.max(f, floor), decay);
      out[k * 2 * h + ky] = s;
      out[k * 2 * h + h + ky] = s;
    }
  }
  return out;
}

/**
 * Lucid's output scaling: ×√(HW) turns irfft2's 1/(HW) into a unitary transform (so Adam's learning
 * rate means the same as for pixels), then ÷4, lucid's empirical constant that keeps early images
 * from saturating the sigmoid.
 */
export const fourierNorm = (h: number, w: number): number => Math.sqrt(h * w) / 4 / (h * w);

export interface FourierOptions extends InitOptions {
  /** Exponent of the 1/frequency spectrum scaling (lucid: 1). */
  decay?: number;
}

/**
 * Fourier parameterisation of B images: one variable [B, 3, Kx, 2H] of packed spectra (per channel),
 * initialised N(0, sd²). The image is linear in it and unbounded; use `image()` for [0,1].
 */
export function fourier(b: number, h: number, w: number, opts: FourierOptions = {}): Param {
  const kx = rfftWidth(w);
  const dft = dftTensors(h, w, fourierNorm(h, w));
  const scale = tf.tensor2d(spectrumScale(h, w, opts.decay ?? 1), [kx, 2 * h]);
  const spectrum = variableFrom(initialValues([b, 3, kx, 2 * h], opts.sd ?? 0.01, opts.seed));
  return {
    variables: [spectrum],
    shape: [b, h, w],
    image: () =>
      tf.tidy(() => {
        const scaled = tf.mul(spectrum, scale).reshape([b * 3, kx, 2 * h]) as tf.Tensor3D;
        return irfft2dWith(scaled, dft, h, w).reshape([b, 3, h, w]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
      }),
    dispose: () => tf.dispose([spectrum, scale, dft.m1, dft.m1T, dft.m2, dft.m2T]),
  };
}
