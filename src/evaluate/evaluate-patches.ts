import * as tf from '@tensorflow/tfjs';
import type { DecodedBatch } from '../data/batches.js';
import type { Skipped } from '../data/dataset.js';
import type { PatchImage } from '../data/patches.js';
import { toFloatBatch, type DecodedImage } from '../data/pixels.js';
import { PatchAtlasError } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import type { ClassRef } from '../model/labels.js';
import { pasteRgb, type PatchPixels } from '../patch/paste.js';
import type { Placement } from '../patch/placement.js';
import { mulberry32 } from '../util/random.js';
import { patchMetrics, type PatchMetrics, type SuccessMatrix } from './metrics.js';

export interface EvaluatePatchesOptions {
  classifier: Classifier;
  /** The images, decoded for the classifier (`decodedBatches` with `classifier.preprocess`), batch by batch. */
  images: AsyncIterable<DecodedBatch>;
  /** How many images `images` holds in all (readable or not), for progress. */
  count: number;
  patches: PatchImage[];
  /** Built for the classifier's input size (gridPlacements / randomPlacements). */
  placements: Placement[];
  /** Every image is taken to be of this class; without it, each image's own label is its source (unlabelled images never count as correct). */
  source?: ClassRef;
  target: ClassRef;
  /** Images per forward pass (default 16); every pass is full but the last. */
  batchSize?: number;
  /** Images passed through the model so far, of `total` = count × (1 + patches × placements). */
  onProgress?: (done: number, total: number) => void;
}

export interface PatchEvaluation {
  patch: string;
  matrix: SuccessMatrix;
  metrics: PatchMetrics;
}

export interface EvaluatePatchesResult {
  /** Paths of the images evaluated (readable ones, in input order); the matrices' columns. */
  images: string[];
  /** Unreadable images, as the batches reported them. */
  skipped: Skipped[];
  results: PatchEvaluation[];
}

/**
 * Paste every patch at every placement on every image and record what the model predicts (the
 * success matrices, foolbox-style, from which every metric is derived). The clean batch runs once,
 * then one patched batch per (patch, placement). Pasting is the typed-array paste, so what is
 * evaluated is exactly the 8-bit image a saved PNG would give. Memory: one batch of images.
 */
export async function evaluatePatches(opts: EvaluatePatchesOptions): Promise<EvaluatePatchesResult> {
  const { classifier: c, patches, placements, source, target } = opts;
  const [h, w] = c.inputSize;
  checkOptions(opts, h, w);

  const nItems = opts.count;
  const perImage = 1 + patches.length * placements.length;
  const total = nItems * perImage;
  let done = 0;
  const progress = (k: number) => {
    done += k;
    opts.onProgress?.(done, total);
  };
  const paths: string[] = [];
  const skipped: Skipped[] = [];
  // Grown per batch; trimmed to the readable images at the end.
  const label: number[] = [];
  const clean = { pred: [] as number[], correct: [] as number[], pTarget: [] as number[] };
  const patched = patches.map(() => placements.map(() => ({ pred: [] as number[], pTarget: [] as number[] })));
  const pixels: PatchPixels[] = patches.map((p) => ({ data: p.rgb, size: p.px }));

  // Clean images and every (patch, placement) variant go through the model in full batches of
  // `batchSize`, whichever image or placement they belong to: a last small batch of images does not
  // cost a small forward pass per placement.
  const forwardBatch = opts.batchSize ?? 16;
  const buffers: DecodedImage[] = [];
  let floats: Float32Array | undefined;
  for await (const batch of opts.images) {
    skipped.push(...batch.skipped);
    // Unreadable images still count as done so progress reaches its total.
    progress(batch.skipped.length * perImage);
    if (batch.images.length === 0) continue;
    const images = batch.images;
    const n = images.length;
    // Job k: k < n is clean image k; then variant (p, j) of image i at n + (p·J + j)·n + i.
    const J = placements.length;
    const jobs = n * perImage;
    const pred = new Int32Array(jobs);
    const pT = new Float32Array(jobs);
    for (let start = 0; start < jobs; start += forwardBatch) {
      const end = Math.min(jobs, start + forwardBatch);
      const chunk: DecodedImage[] = [];
      for (let k = start; k < end; k++) {
        if (k < n) {
          chunk.push(images[k]!);
          continue;
        }
        const v = k - n;
        const i = v % n;
        const pj = (v - i) / n;
        const im = images[i]!;
        // One buffer per slot of the batch, refilled from the clean bytes for each paste.
        const slot = (buffers[k - start] ??= { ...im, data: new Uint8Array(im.data.length) });
        if (slot.data.length !== im.data.length) slot.data = new Uint8Array(im.data.length);
        pasteRgb(im, pixels[Math.floor(pj / J)]!, placements[pj % J]!, slot.data);
        chunk.push(slot);
      }
      floats = floats && floats.length >= chunk.length * chunk[0]!.data.length ? floats : new Float32Array(forwardBatch * chunk[0]!.data.length);
      const out = await predict(c, chunk, target.index, floats);
      pred.set(out.pred, start);
      pT.set(out.pTarget, start);
      progress(end - start);
    }
    batch.items.forEach((item, i) => {
      paths.push(item.path);
      const l = source ? source.index : (item.label?.index ?? -1);
      label.push(l);
      clean.pred.push(pred[i]!);
      clean.pTarget.push(pT[i]!);
      clean.correct.push(l >= 0 && pred[i] === l ? 1 : 0);
    });
    for (let p = 0; p < patches.length; p++) {
      for (let j = 0; j < J; j++) {
        const at = n + (p * J + j) * n;
        const row = patched[p]![j]!;
        for (let i = 0; i < n; i++) {
          row.pred.push(pred[at + i]!);
          row.pTarget.push(pT[at + i]!);
        }
      }
    }
  }

  const n = paths.length;
  if (n === 0) {
    throw new PatchAtlasError('NO_IMAGES', `none of the ${nItems} images could be read`, skipped[0] ? `e.g. ${skipped[0].reason}` : undefined);
  }
  const cleanN = { pred: Int32Array.from(clean.pred), correct: Uint8Array.from(clean.correct), pTarget: Float32Array.from(clean.pTarget) };
  const labelN = Int32Array.from(label);
  const ids = placements.map((p) => p.id);
  const results = patches.map((patch, p): PatchEvaluation => {
    const matrix: SuccessMatrix = {
      placements: ids,
      images: paths,
      target: target.index,
      label: labelN,
      clean: cleanN,
      patched: patched[p]!.map((row) => ({ pred: Int32Array.from(row.pred), pTarget: Float32Array.from(row.pTarget) })),
    };
    return { patch: patch.name, matrix, metrics: patchMetrics(matrix) };
  });
  return { images: paths, skipped, results };
}

/** Uniform random RGB noise, reproducible from `seed`: the control patch. */
export function noisePatch(px: number, seed: number): PatchImage {
  if (!Number.isInteger(px) || px < 1) throw new PatchAtlasError('BAD_FLAG', `noise patch side must be a whole number of pixels ≥ 1, got ${px}`);
  const rnd = mulberry32(seed);
  const rgb = new Uint8Array(px * px * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.floor(rnd() * 256);
  return { name: `noise-${seed}`, rgb, px };
}

/** Argmax over classes (background slots excluded) and the target's probability (softmax of the logits), per image. */
async function predict(c: Classifier, images: readonly DecodedImage[], target: number, floats?: Float32Array): Promise<{ pred: Int32Array; pTarget: Float32Array }> {
  const [h, w] = c.inputSize;
  // The input tensor is disposed before returning, so `floats` can be refilled for the next batch.
  const x = tf.tensor4d(toFloatBatch(images, floats), [images.length, h, w, 3]);
  const logits = await c.forwardLogits(x);
  const data = logits.dataSync();
  tf.dispose([x, logits]);
  const m = c.labels.outputs;
  const pred = new Int32Array(images.length);
  const pTarget = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) {
    const o = i * m;
    let best = c.labels.offset;
    let max = -Infinity;
    for (let j = 0; j < m; j++) if (data[o + j]! > max) max = data[o + j]!;
    for (let j = best + 1; j < m; j++) if (data[o + j]! > data[o + best]!) best = j;
    let sum = 0;
    for (let j = 0; j < m; j++) sum += Math.exp(data[o + j]! - max);
    pred[i] = best;
    pTarget[i] = Math.exp(data[o + target]! - max) / sum;
  }
  return { pred, pTarget };
}

/** Every bad argument is reported before any image is decoded, one message naming the value. */
function checkOptions(opts: EvaluatePatchesOptions, h: number, w: number): void {
  const bad = (msg: string, hint?: string) => new PatchAtlasError('BAD_FLAG', msg, hint);
  if (opts.count === 0) throw new PatchAtlasError('NO_IMAGES', 'no images to evaluate the patches on');
  if (opts.batchSize !== undefined && !(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw bad(`batch size must be a whole number ≥ 1, got ${opts.batchSize}`);
  if (opts.patches.length === 0) throw bad('no patches to evaluate');
  if (opts.placements.length === 0) throw bad('no patch placements given', 'e.g. corners and centre at sizes 0.2,0.3,0.4');
  if (opts.source && opts.source.index === opts.target.index) {
    throw bad(`source and target are the same class (${opts.target.name})`, 'a targeted patch must move images to a different class');
  }
  const names = new Set<string>();
  for (const p of opts.patches) {
    if (names.has(p.name)) throw bad(`two patches are named "${p.name}"`, 'patch names label the results and must be unique');
    names.add(p.name);
    if (!Number.isInteger(p.px) || p.px < 1 || p.rgb.length !== p.px * p.px * 3) {
      throw bad(`patch "${p.name}" has ${p.rgb.length} bytes, expected ${p.px}×${p.px}×3 for a ${p.px}-px square RGB patch`);
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
