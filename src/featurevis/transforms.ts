import * as tf from '@tensorflow/tfjs';
import { cropOrPad, resize, rotate, zoom } from './sampling.js';

/**
 * Transformation robustness (article §4): random, differentiable changes to the image before the
 * model sees it, so the optimiser cannot rely on pixel-exact patterns. Curried like lucid's
 * `(config) => (image) => image`, with the randomness passed in as a seeded PRNG so a run is
 * reproducible. Each call draws one value for the whole batch (as lucid does); the sampling
 * helpers (`./sampling.js`) also take per-item values, which patch placement uses.
 * Call inside tf.tidy (the optimiser's gradient scope does that): intermediates are not disposed here.
 */

/** Uniform in [0, 1), e.g. `mulberry32(seed)` from src/util/random.ts. */
export type Rng = () => number;
export type Transform = (img: tf.Tensor4D, rng: Rng) => tf.Tensor4D;

export type PadMode = 'constant' | 'reflect' | 'symmetric';

/** One element of `xs`, uniformly. */
export function pick<T>(xs: readonly T[], rng: Rng): T {
  if (xs.length === 0) throw new Error('pick: empty list');
  return xs[Math.min(xs.length - 1, Math.floor(rng() * xs.length))]!;
}

/** Pad every side by n pixels; 'constant' uses `value` (lucid's atlas recipe pads with constant 0.5 grey). */
export const pad =
  (n: number, mode: PadMode = 'constant', value = 0.5): Transform =>
  (img) => {
    const p: Array<[number, number]> = [[0, 0], [n, n], [n, n], [0, 0]];
    return mode === 'constant' ? tf.pad(img, p, value) : tf.mirrorPad(img, p, mode);
  };

/** Crop d pixels off each spatial axis at a random offset in [0, d] (lucid's jitter: a random crop of size − d). */
export const jitter =
  (d: number): Transform =>
  (img, rng) => {
    const [, h, w] = img.shape;
    if (d <= 0) return img;
    if (d >= h || d >= w) throw new Error(`jitter(${d}) on a ${h}×${w} image leaves nothing`);
    const oy = Math.floor(rng() * (d + 1));
    const ox = Math.floor(rng() * (d + 1));
    return tf.slice(img, [0, oy, ox, 0], [-1, h - d, w - d, -1]);
  };

/**
 * pad(n) then jitter(d) for each d in `ds`, as one pad and one slice: the same random draws in the same order and
 * the same pixels (crops of crops are one crop), so `compose([pad(n), ...ds.map(jitter)])` gives identical
 * results; each separate crop and its gradient is a full copy of the batch (~10 % of a 128 px step at batch 16).
 */
export const padThenJitter =
  (n: number, ds: readonly number[], mode: PadMode = 'constant', value = 0.5): Transform =>
  (img, rng) => {
    const [, h0, w0] = img.shape;
    let h = h0 + 2 * n;
    let w = w0 + 2 * n;
    let oy = 0;
    let ox = 0;
    for (const d of ds) {
      if (d <= 0) continue;
      if (d >= h || d >= w) throw new Error(`jitter(${d}) on a ${h}×${w} image leaves nothing`);
      oy += Math.floor(rng() * (d + 1));
      ox += Math.floor(rng() * (d + 1));
      h -= d;
      w -= d;
    }
    const padded = n > 0 ? pad(n, mode, value)(img, rng) : img;
    return h === padded.shape[1] && w === padded.shape[2] ? padded : tf.slice(padded, [0, oy, ox, 0], [-1, h, w, -1]);
  };

/** Zoom about the centre by a scale drawn from `scales`, keeping the size (border reads `fill`). */
export const randomScale =
  (scales: readonly number[], fill = 0.5): Transform =>
  (img, rng) =>
    zoom(img, pick(scales, rng), fill);

/**
 * Rotate by an angle (degrees) drawn from `degrees`, keeping the size (corners read `fill`; lucid fills 0,
 * grey matches the padding). Three-shear rotation: its gradient works on wasm, unlike tf.image.transform.
 */
export const randomRotate =
  (degrees: readonly number[], fill = 0.5): Transform =>
  (img, rng) =>
    rotate(img, pick(degrees, rng), fill);

/** Centre crop/pad to a fixed size (lucid's crop_or_pad_to). */
export const cropOrPadTo =
  (h: number, w: number, fill = 0.5): Transform =>
  (img) =>
    cropOrPad(img, h, w, fill);

/** Bilinear resize to a fixed size. */
export const resizeTo =
  (h: number, w: number): Transform =>
  (img) =>
    resize(img, h, w);

/** Apply in list order: compose([a, b]) is b ∘ a. */
export const compose =
  (list: readonly Transform[]): Transform =>
  (img, rng) =>
    list.reduce((x, t) => t(x, rng), img);

/**
 * Wrap `t` so its output has the input's size again: 'crop-or-pad' (lucid's recipe ends with
 * crop_or_pad_to(size), content keeps its scale) or 'resize' (content rescaled to fill the frame).
 */
export const keepSize =
  (t: Transform, mode: 'crop-or-pad' | 'resize' = 'crop-or-pad', fill = 0.5): Transform =>
  (img, rng) => {
    const [, h, w] = img.shape;
    const out = t(img, rng);
    if (out.shape[1] === h && out.shape[2] === w) return out;
    return mode === 'resize' ? resize(out, h, w) : cropOrPad(out, h, w, fill);
  };

export interface StandardTransformOptions {
  /** Restore the input size at the end (default 'crop-or-pad'); false leaves the image 30 px smaller. */
  keepSize?: 'crop-or-pad' | 'resize' | false;
  /** Grey level used by padding, scaling and rotation borders (default 0.5). */
  fill?: number;
}

/** Scales ≈ 0.95–1.1 (method.md §4) in steps of 0.025. */
export const STANDARD_SCALES: readonly number[] = Array.from({ length: 7 }, (_, i) => 0.95 + 0.025 * i);
/** Whole degrees in ±20 (method.md §4; lucid's atlas recipe draws from range(-20, 20) plus extra small angles). */
export const STANDARD_ANGLES: readonly number[] = Array.from({ length: 41 }, (_, i) => i - 20);

/**
 * The article's order (method.md §4): pad 2, jitter 4 (×2), jitter 8 (×3), random scale, random rotate,
 * jitter 2 — then back to the input size. Net crop: 34 − 4 = 30 px.
 */
/**
 * The smallest image side the standard transforms accept (pad 2 and crops of 4+4+8+8+8 leave side − 28, and the
 * final jitter 2 needs more than 2; 31 is the measured edge, 32 the documented one): icons and icon patches start here.
 */
export const STANDARD_MIN_SIDE = 32;

export function standardTransforms(opts: StandardTransformOptions = {}): Transform {
  const fill = opts.fill ?? 0.5;
  const list = compose([
    padThenJitter(2, [4, 4, 8, 8, 8], 'constant', fill), // pad 2, jitter 4 ×2, jitter 8 ×3
    randomScale(STANDARD_SCALES, fill),
    randomRotate(STANDARD_ANGLES, fill),
    jitter(2),
  ]);
  const mode = opts.keepSize ?? 'crop-or-pad';
  return mode === false ? list : keepSize(list, mode, fill);
}

export { cropOrPad, interpWeights, matMulConst, resampleAxis, resize, rotate, shiftLines, zoom } from './sampling.js';
