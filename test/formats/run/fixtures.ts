/**
 * Synthetic collect data for the run-store tests: every value is a fixed function of (image,
 * point, column), so a run written in any chunking, order or sharding has one expected content.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHalf } from '../../../src/formats/run/half.js';
import { hashImageList } from '../../../src/formats/run/image-list.js';
import type { ImageRecord, PointChunk, RunIdentity } from '../../../src/formats/run/types.js';
import { PatchAtlasError } from '../../../src/errors.js';

export interface Synth {
  images: ImageRecord[];
  identity: RunIdentity;
  channels: number;
  classes: number;
  /** Points of image i (0 for some, to cover images without points). */
  pointsOf(image: number): number;
  /** Images skipped as unreadable. */
  skipped: Set<number>;
}

export function synth(nImages: number, opts: { channels?: number; classes?: number; pointsOf?: (i: number) => number; skipped?: number[]; layer?: string } = {}): Synth {
  const channels = opts.channels ?? 5;
  const classes = opts.classes ?? 7;
  const images: ImageRecord[] = Array.from({ length: nImages }, (_, i) => ({ path: `img/${String(i).padStart(5, '0')}.jpg`, label: i % 4 === 3 ? null : `n0${1000000 + (i % classes)}` }));
  const identity: RunIdentity = {
    model: 'mobilenet_v1_0.75',
    layer: opts.layer ?? 'conv_pw_11',
    seed: 7,
    positions: 1,
    labelSet: 'imagenet',
    classes: Array.from({ length: classes }, (_, c) => `n0${1000000 + c}`),
    channels,
    layerShape: [14, 14, channels],
    imageListHash: hashImageList(images),
  };
  return { images, identity, channels, classes, pointsOf: opts.pointsOf ?? ((i) => (i % 5 === 2 ? 0 : 1 + (i % 3))), skipped: new Set(opts.skipped ?? []) };
}

export function actValue(img: number, k: number, c: number): number {
  return Math.fround(img * 10 + k + c / 128 - 3.25);
}
export function attrValue(img: number, k: number, c: number): number {
  return Math.fround(Math.sin(img * 7 + k * 3 + c) * (1 + (img % 11)));
}

/** A chunk covering `imgs` (skipped ones go to `skipped`), rows in image order unless `shuffle`. */
export function chunkFor(s: Synth, imgs: number[], shuffle = false): PointChunk {
  const processed = imgs.filter((i) => !s.skipped.has(i));
  const rows: Array<[number, number]> = [];
  for (const i of processed) for (let k = 0; k < s.pointsOf(i); k++) rows.push([i, k]);
  if (shuffle) rows.reverse(); // rows of one image reversed too: tests that order within an image follows the chunk
  const n = rows.length;
  const acts = new Float32Array(n * s.channels);
  const attrF = new Float32Array(n * s.classes);
  const meta = new Int32Array(n * 6);
  const prob = new Float32Array(n * 2);
  rows.forEach(([i, k], r) => {
    for (let c = 0; c < s.channels; c++) acts[r * s.channels + c] = actValue(i, k, c);
    let best = 0;
    for (let c = 0; c < s.classes; c++) {
      attrF[r * s.classes + c] = attrValue(i, k, c);
      if (attrF[r * s.classes + c]! > attrF[r * s.classes + best]!) best = c;
    }
    const truth = (s.images[i]?.label ?? null) === null ? -1 : i % s.classes;
    meta.set([i, 1 + (k % 12), 1 + ((i + k) % 12), truth, (i * 3) % s.classes, best], r * 6);
    prob.set([Math.fround(0.5 + (i % 7) / 20), truth < 0 ? NaN : Math.fround(0.1 + (k % 5) / 10)], r * 2);
  });
  return { images: processed, acts, attr: toHalf(attrF), meta, prob, skipped: imgs.filter((i) => s.skipped.has(i)).map((image) => ({ image, reason: `cannot decode image ${image}` })) };
}

/** The expected final arrays of the whole run: rows of image 0, then 1, …; each image's rows in `chunkFor` order. */
export function expected(s: Synth, reverseWithinImage = false): { acts: Float32Array; attr: Uint16Array; meta: Int32Array; prob: Float32Array; points: number } {
  const all = chunkFor(s, s.images.map((_, i) => i));
  if (!reverseWithinImage) return { ...all, points: all.meta.length / 6 };
  // Within each image the reversed chunk has rows k = n-1 … 0; rebuild that order per image.
  const order: number[] = [];
  let r = 0;
  for (let i = 0; i < s.images.length; i++) {
    const n = s.skipped.has(i) ? 0 : s.pointsOf(i);
    for (let k = n - 1; k >= 0; k--) order.push(r + k);
    r += n;
  }
  const pick = <T extends Float32Array | Uint16Array | Int32Array>(a: T, len: number): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length);
    order.forEach((from, to) => out.set(a.subarray(from * len, (from + 1) * len), to * len));
    return out;
  };
  return { acts: pick(all.acts, s.channels), attr: pick(all.attr, s.classes), meta: pick(all.meta, 6), prob: pick(all.prob, 2), points: order.length };
}

/** Split `imgs` into consecutive groups of `size`. */
export function groups(imgs: number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < imgs.length; i += size) out.push(imgs.slice(i, i + size));
  return out;
}

export async function tempDir(prefix = 'pa-store-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function bytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The PatchAtlasError a promise rejects with (anything else is rethrown; resolving fails the test). */
export async function caught(p: Promise<unknown>): Promise<PatchAtlasError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PatchAtlasError) return e;
    throw e;
  }
  throw new Error('expected a PatchAtlasError');
}
