import * as tf from '@tensorflow/tfjs';
import type { ImageItem, Skipped } from '../data/dataset.js';
import { decodeImage, toFloatBatch, type DecodedImage } from '../data/decode.js';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import type { ClassRef } from '../model/labels.js';
import { pasteRgb, type PatchPixels } from '../patch/paste.js';
import type { Placement } from '../patch/placement.js';
import { mulberry32 } from '../util/random.js';
import { patchMetrics, type PatchMetrics, type SuccessMatrix } from './metrics.js';
import { preprocessOf } from './predict.js';

/** A square patch image: `size`×`size`×3 bytes, row-major RGB. */
export interface PatchInput {
  name: string;
  rgb: Uint8Array;
  size: number;
}

export interface EvaluatePatchesOptions {
  classifier: Classifier;
  images: ImageItem[];
  patches: PatchInput[];
  /** Built for the classifier's input size (gridPlacements / randomPlacements). */
  placements: Placement[];
  /** Every image is taken to be of this class; without it, each image's own label is its source (unlabelled images never count as correct). */
  source?: ClassRef;
  target: ClassRef;
  batchSize?: number;
  /** Images passed through the model so far, of `total` = images × (1 + patches × placements). */
  onProgress?: (done: number, total: number) => void;
  /** Unreadable images are skipped, not fatal. */
  onSkip?: (s: Skipped) => void;
}

export interface PatchEvaluation {
  patch: string;
  matrix: SuccessMatrix;
  metrics: PatchMetrics;
}

export interface EvaluatePatchesResult {
  /** Paths of the images evaluated (readable ones, in input order); the matrices' columns. */
  images: string[];
  skipped: Skipped[];
  results: PatchEvaluation[];
}

/**
 * Paste every patch at every placement on every image and record what the model predicts.
 * Images are decoded once per batch (with the classifier's preprocessing) and kept as bytes; the clean
 * batch runs once, then one patched batch per (patch, placement). Pasting is the typed-array paste, so
 * what is evaluated is exactly the 8-bit image a saved PNG would give. Memory: one batch of images.
 */
export async function evaluatePatches(opts: EvaluatePatchesOptions): Promise<EvaluatePatchesResult> {
  const { classifier: c, images: items, patches, placements, source, target } = opts;
  const batchSize = opts.batchSize ?? 16;
  const [h, w] = c.inputSize;
  checkOptions(opts, batchSize, h, w);

  const nItems = items.length;
  const total = nItems * (1 + patches.length * placements.length);
  let done = 0;
  const progress = (k: number) => {
    done += k;
    opts.onProgress?.(done, total);
  };
  const pre = preprocessOf(c);
  const paths: string[] = [];
  const skipped: Skipped[] = [];
  // Sized for every item; trimmed to the readable ones at the end.
  const label = new Int32Array(nItems);
  const clean = { pred: new Int32Array(nItems), correct: new Uint8Array(nItems), pTarget: new Float32Array(nItems) };
  const patched = patches.map(() => placements.map(() => ({ pred: new Int32Array(nItems), pTarget: new Float32Array(nItems) })));
  const pixels: PatchPixels[] = patches.map((p) => ({ data: p.rgb, size: p.size }));

  for (let start = 0; start < nItems; start += batchSize) {
    const chunk = items.slice(start, start + batchSize);
    const decoded = await decodeAll(chunk, (item) => decodeImage(item.path, pre));
    const batch: Array<{ item: ImageItem; image: DecodedImage }> = [];
    decoded.forEach((r, i) => {
      if ('image' in r) batch.push({ item: chunk[i]!, image: r.image });
      else {
        const s = { path: chunk[i]!.path, reason: r.reason };
        skipped.push(s);
        opts.onSkip?.(s);
      }
    });
    // Unreadable images still count as done so progress reaches its total.
    progress((chunk.length - batch.length) * (1 + patches.length * placements.length));
    if (batch.length === 0) continue;

    const at = paths.length;
    const images = batch.map((b) => b.image);
    const cleanOut = predict(c, images, target.index);
    batch.forEach((b, i) => {
      paths.push(b.item.path);
      const l = source ? source.index : (b.item.label?.index ?? -1);
      label[at + i] = l;
      clean.pred[at + i] = cleanOut.pred[i]!;
      clean.pTarget[at + i] = cleanOut.pTarget[i]!;
      clean.correct[at + i] = l >= 0 && cleanOut.pred[i] === l ? 1 : 0;
    });
    progress(batch.length);

    // One buffer per image, refilled from the clean bytes for each paste.
    const work = images.map((im) => ({ data: new Uint8Array(im.data.length), height: im.height, width: im.width, sourceWidth: im.sourceWidth, sourceHeight: im.sourceHeight }));
    for (let p = 0; p < patches.length; p++) {
      for (let j = 0; j < placements.length; j++) {
        images.forEach((im, i) => pasteRgb(im, pixels[p]!, placements[j]!, work[i]!.data));
        const out = predict(c, work, target.index);
        const row = patched[p]![j]!;
        row.pred.set(out.pred, at);
        row.pTarget.set(out.pTarget, at);
        progress(batch.length);
      }
    }
  }

  const n = paths.length;
  if (n === 0) {
    throw new PatchAtlasError('NO_IMAGES', `none of the ${nItems} images could be read`, skipped[0] ? `e.g. ${skipped[0].reason}` : undefined);
  }
  const cleanN = { pred: clean.pred.slice(0, n), correct: clean.correct.slice(0, n), pTarget: clean.pTarget.slice(0, n) };
  const labelN = label.slice(0, n);
  const ids = placements.map((p) => p.id);
  const results = patches.map((patch, p): PatchEvaluation => {
    const matrix: SuccessMatrix = {
      placements: ids,
      images: paths,
      target: target.index,
      label: labelN,
      clean: cleanN,
      patched: patched[p]!.map((row) => ({ pred: row.pred.slice(0, n), pTarget: row.pTarget.slice(0, n) })),
    };
    return { patch: patch.name, matrix, metrics: patchMetrics(matrix) };
  });
  return { images: paths, skipped, results };
}

/** Uniform random RGB noise, reproducible from `seed`: the control patch. */
export function noisePatch(side: number, seed: number): PatchInput {
  if (!Number.isInteger(side) || side < 1) throw new PatchAtlasError('BAD_FLAG', `noise patch side must be a whole number of pixels ≥ 1, got ${side}`);
  const rnd = mulberry32(seed);
  const rgb = new Uint8Array(side * side * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.floor(rnd() * 256);
  return { name: `noise-${seed}`, rgb, size: side };
}

/** Argmax over classes (background slots excluded) and the target's probability, per image. */
function predict(c: Classifier, images: readonly DecodedImage[], target: number): { pred: Int32Array; pTarget: Float32Array } {
  const [h, w] = c.inputSize;
  const probs = tf.tidy(() => c.probabilities(tf.tensor4d(toFloatBatch(images), [images.length, h, w, 3])));
  const data = probs.dataSync();
  probs.dispose();
  const m = c.labels.outputs;
  const pred = new Int32Array(images.length);
  const pTarget = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) {
    let best = c.labels.offset;
    for (let j = best + 1; j < m; j++) if (data[i * m + j]! > data[i * m + best]!) best = j;
    pred[i] = best;
    pTarget[i] = data[i * m + target]!;
  }
  return { pred, pTarget };
}

/** Decode with a few in flight (libvips threads inside each); BAD_IMAGE becomes a skip, anything else is a bug. */
async function decodeAll<T>(items: readonly T[], decode: (x: T) => Promise<DecodedImage>, limit = 4): Promise<Array<{ image: DecodedImage } | { reason: string }>> {
  const out = new Array<{ image: DecodedImage } | { reason: string }>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { image: await decode(items[i]!) };
      } catch (e) {
        if (isPatchAtlasError(e) && e.code === 'BAD_IMAGE') out[i] = { reason: e.message };
        else throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Every bad argument is reported before any image is decoded, one message naming the value. */
function checkOptions(opts: EvaluatePatchesOptions, batchSize: number, h: number, w: number): void {
  const bad = (msg: string, hint?: string) => new PatchAtlasError('BAD_FLAG', msg, hint);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw bad(`batch size must be a whole number ≥ 1, got ${batchSize}`);
  if (opts.images.length === 0) throw new PatchAtlasError('NO_IMAGES', 'no images to evaluate the patches on');
  if (opts.patches.length === 0) throw bad('no patches to evaluate');
  if (opts.placements.length === 0) throw bad('no patch placements given', 'e.g. corners and centre at sizes 0.2,0.3,0.4');
  if (opts.source && opts.source.index === opts.target.index) {
    throw bad(`source and target are the same class (${opts.target.name})`, 'a targeted patch must move images to a different class');
  }
  const names = new Set<string>();
  for (const p of opts.patches) {
    if (names.has(p.name)) throw bad(`two patches are named "${p.name}"`, 'patch names label the results and must be unique');
    names.add(p.name);
    if (!Number.isInteger(p.size) || p.size < 1 || p.rgb.length !== p.size * p.size * 3) {
      throw bad(`patch "${p.name}" has ${p.rgb.length} bytes, expected ${p.size}×${p.size}×3 for a ${p.size}-px square RGB patch`);
    }
  }
  const ids = new Set<string>();
  for (const pl of opts.placements) {
    if (ids.has(pl.id)) throw bad(`placement "${pl.id}" is given twice`);
    ids.add(pl.id);
    // Unrotated square only: rotated corners may be clipped by design, a square off the image is a mistake.
    if (pl.x < 0 || pl.y < 0 || pl.x + pl.side > w || pl.y + pl.side > h) {
      throw bad(`placement "${pl.id}" (${pl.side} px at ${pl.x},${pl.y}) does not fit the model's ${h}×${w} input`, 'build placements for the classifier\'s input size');
    }
  }
}
