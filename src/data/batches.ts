import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import type { ImageItem, Skipped } from './dataset.js';
import { decodeImage } from './decode.js';
import { toFloatBatch, type DecodedImage, type Preprocess } from './pixels.js';

/** Decoded 8-bit images, `images[i]` of `items[i]`; `skipped` are the unreadable items met while filling it. */
export interface DecodedBatch {
  items: ImageItem[];
  images: DecodedImage[];
  skipped: Skipped[];
}

/** Decoded images ready for the model: N×H×W×3, values in [0,1], `items[i]` is image i. */
export interface Batch {
  items: ImageItem[];
  pixels: Float32Array;
  shape: [n: number, h: number, w: number, 3];
}

export interface BatchOptions {
  pre: Preprocess;
  batchSize: number;
  /** Images decoded at once (default 4); libvips also uses its own threads inside each decode. */
  concurrency?: number;
  onSkip?: (s: Skipped) => void;
}

type Decoded = { ok: true; item: ImageItem; image: DecodedImage } | { ok: false; item: ImageItem; reason: string };

/**
 * Decode `items` into batches of `batchSize` (the last may be smaller), in input order minus
 * unreadable images, which go to `onSkip` instead of failing the run.
 *
 * Decoding runs ahead of the consumer by one batch (plus the decodes in flight), so the next batch
 * is being prepared while the model works on this one, and memory stays at about two batches of
 * 8-bit images plus one float batch however large the dataset. Stopping early (break out of
 * `for await`) cancels decodes that have not started.
 */
export async function* imageBatches(items: ImageItem[], opts: BatchOptions): AsyncGenerator<Batch> {
  const [h, w] = opts.pre.size;
  for await (const b of decodedBatches(items, opts)) {
    if (b.items.length === 0) continue; // only unreadable images were left
    const pixels = toFloatBatch(b.images);
    b.images.length = 0; // let the 8-bit copies go before the consumer runs
    yield { items: b.items, pixels, shape: [b.items.length, h, w, 3] };
  }
}

/**
 * As `imageBatches`, but the images stay 8-bit (for pasting patches on them before the model sees
 * them). Batches may be smaller than `batchSize` only at the end.
 */
export async function* decodedBatches(items: ImageItem[], opts: BatchOptions): AsyncGenerator<DecodedBatch> {
  const { pre, batchSize, onSkip } = opts;
  const concurrency = opts.concurrency ?? 4;
  for (const [name, v] of [['batch size', batchSize], ['concurrency', concurrency]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new PatchAtlasError('BAD_FLAG', `${name} must be a whole number ≥ 1, got ${v}`);
  }
  const slots = new Semaphore(concurrency);
  let stopped = false;

  const decodeOne = async (item: ImageItem): Promise<Decoded> => {
    await slots.acquire();
    try {
      if (stopped) return { ok: false, item, reason: 'cancelled' };
      return { ok: true, item, image: await decodeImage(item.path, pre) };
    } catch (e) {
      // decodeImage reports every unreadable file as BAD_IMAGE; anything else is a bug, not a bad file.
      if (isPatchAtlasError(e) && e.code === 'BAD_IMAGE') return { ok: false, item, reason: e.message };
      throw e;
    } finally {
      slots.release();
    }
  };

  // Started decodes in input order. Capped so at most one batch beyond the current one is held.
  const lookahead = batchSize + concurrency;
  const queue: Array<Promise<Decoded>> = [];
  let next = 0;
  const fill = () => {
    while (queue.length < lookahead && next < items.length) {
      const p = decodeOne(items[next++]!);
      // Rejections are re-raised when the promise is awaited below; this keeps a bug in an
      // abandoned (never awaited) decode from becoming an unhandled rejection.
      p.catch(() => {});
      queue.push(p);
    }
  };

  try {
    fill();
    while (queue.length > 0) {
      const batchItems: ImageItem[] = [];
      const images: DecodedImage[] = [];
      const skipped: Skipped[] = [];
      while (images.length < batchSize && queue.length > 0) {
        const r = await queue.shift()!;
        fill();
        if (r.ok) {
          batchItems.push(r.item);
          images.push(r.image);
        } else {
          const s = { path: r.item.path, reason: r.reason };
          skipped.push(s);
          onSkip?.(s);
        }
      }
      if (images.length === 0 && skipped.length === 0) break;
      yield { items: batchItems, images, skipped };
    }
  } finally {
    stopped = true;
  }
}

/** A counting semaphore; waiters are served first come, first served so decodes start in input order. */
class Semaphore {
  private waiters: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((res) => this.waiters.push(res));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}
