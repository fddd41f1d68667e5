import * as tf from '@tensorflow/tfjs';
import { resolve } from 'node:path';
import { attributePoints, reverseAttributionSeconds } from '../attribution/attribute.js';
import { samplePositions, type PositionCount } from '../attribution/positions.js';
import { imageBatches } from '../data/batches.js';
import type { Dataset, ImageItem } from '../data/dataset.js';
import { PatchAtlasError } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet } from '../model/labels.js';
import { checkParams, wholeNumber, type ParamSpec } from './params.js';
import { hashImageList, RunWriter, shardOf, toHalf, type ImageRecord, type RunIdentity, type RunManifest, type ShardSpec } from '../formats/run/index.js';

/** What a user chooses about a collection (besides the images, layer and folder). */
export interface CollectParams {
  /** Positions sampled per image, or 'all' (non-border) positions. */
  positions: PositionCount;
  /** Seed of the position sampling. */
  seed: number;
  /** Images per batch (does not change results); default 16, or 4 with every position. */
  batchSize: number | undefined;
}

export const COLLECT_PARAMS: ParamSpec<CollectParams> = {
  positions: { default: 1, check: (v) => (v === 'all' || (Number.isInteger(v) && v >= 1) ? undefined : 'must be a whole number >= 1 or "all"') },
  seed: { default: 0, check: wholeNumber(0) },
  batchSize: { default: undefined, check: (v) => (v === undefined ? undefined : wholeNumber(1)(v)) },
};

export interface CollectOptions extends Partial<CollectParams> {
  layer: string;
  out: string;
  shard: ShardSpec | null;
  /** Called with the number of images finished (or skipped) after each chunk. */
  onProgress?: (done: number, total: number) => void;
  onSkip?: (s: { path: string; reason: string }) => void;
  /** Stops cleanly after the current chunk (Ctrl-C); the run resumes on the next call. */
  signal?: AbortSignal;
  /** Said before the work starts: e.g. that attribution will take one backward pass per class, and about how long. */
  onNote?: (note: string) => void;
}

export interface CollectResult {
  manifest: RunManifest;
  /** Images already done by an earlier, interrupted run. */
  resumed: number;
  processed: number;
  complete: boolean;
  method: 'jvp' | 'reverse' | 'none';
  seconds: number;
}

/**
 * `collect`: activations of one layer at sampled positions of every image, with their attribution to
 * every class, written chunk by chunk into a resumable run folder.
 */
export async function collect(c: Classifier, ds: Dataset, opts: CollectOptions): Promise<CollectResult> {
  const t0 = Date.now();
  const p = checkParams(COLLECT_PARAMS, { positions: opts.positions, seed: opts.seed, batchSize: opts.batchSize });
  const layer = c.resolveLayer(opts.layer);
  const shape = c.layerInfo(layer).shape;
  if (!shape || shape.length !== 3 || shape.some((d) => d === null)) {
    throw new PatchAtlasError('BAD_FLAG', `--layer ${opts.layer}: collect needs a spatial layer with output [height, width, channels], got [${shape?.join(', ') ?? '?'}]`, 'pick a convolutional layer from `patch-atlas models info`');
  }
  const [H, W, C] = shape as [number, number, number];
  const items = ds.items;
  const records: ImageRecord[] = items.map((i) => ({ path: resolve(i.path), label: i.label?.wnid ?? null }));
  const identity: RunIdentity = {
    model: c.descriptor.name,
    layer,
    seed: p.seed,
    positions: p.positions,
    labelSet: c.descriptor.labels.set,
    classes: c.labels.classes.map((k) => k.wnid),
    channels: C,
    layerShape: [H, W, C],
    imageListHash: hashImageList(records),
  };
  const writer = await RunWriter.open(opts.out, identity, records, opts.shard, c.labels.classes.map((k) => LabelSet.display(k)));
  const inShard = opts.shard ? shardOf(records.length, opts.shard) : records.map((_, i) => i);
  const resumed = inShard.filter((i) => writer.doneImages.has(i)).length;
  const todo = inShard.filter((i) => !writer.doneImages.has(i));
  const indexOf = new Map<ImageItem, number>(todo.map((i) => [items[i]!, i]));
  const indexOfPath = new Map<string, number>(todo.map((i) => [items[i]!.path, i]));
  let done = resumed;
  let method: CollectResult['method'] = 'none';
  opts.onProgress?.(done, inShard.length);
  if (todo.length > 0 && opts.onNote) {
    const slow = reverseModeCost(c, layer);
    if (slow) opts.onNote(`${c.descriptor.name} has no forward-mode rule on the path from ${layer} to the logits: attribution takes one backward pass per class (${c.labels.size}), about ${slow} per image${c.noJvp ? ` (${c.noJvp})` : ''}`);
  }
  if (!writer.complete && todo.length > 0) {
    let skipped: Array<{ image: number; reason: string }> = [];
    for await (const batch of imageBatches(todo.map((i) => items[i]!), {
      pre: c.preprocess,
      batchSize: p.batchSize ?? (p.positions === 'all' ? 4 : 16),
      onSkip: (s) => {
        skipped.push({ image: indexOfPath.get(s.path)!, reason: s.reason });
        opts.onSkip?.(s);
      },
    })) {
      const images = batch.items.map((it) => indexOf.get(it)!);
      const positions = images.map((i) => samplePositions(H, W, p.positions, p.seed, records[i]!.path));
      const x = tf.tensor4d(batch.pixels, batch.shape);
      const r = attributePoints(c, x, layer, positions);
      x.dispose();
      method = r.method;
      const chunkSkipped = skipped;
      skipped = [];
      await writer.writeChunk({ images: [...images, ...chunkSkipped.map((s) => s.image)], skipped: chunkSkipped, ...pointArrays(c, r, images, positions, records) });
      done += images.length + chunkSkipped.length;
      opts.onProgress?.(done, inShard.length);
      if (opts.signal?.aborted) break;
    }
    if (skipped.length && !opts.signal?.aborted) {
      await writer.writeChunk({ images: skipped.map((s) => s.image), skipped, acts: new Float32Array(0), attr: new Uint16Array(0), meta: new Int32Array(0), prob: new Float32Array(0) });
      done += skipped.length;
    }
  }
  const interrupted = Boolean(opts.signal?.aborted) && done < inShard.length;
  const manifest = interrupted || writer.complete ? writer.manifest : await writer.finalize();
  return { manifest, resumed, processed: done - resumed, complete: manifest.complete, method, seconds: (Date.now() - t0) / 1000 };
}

/** Per-point rows for the store: meta = image, y, x, true / predicted / winning class columns; prob = p(pred), p(true). */
function pointArrays(c: Classifier, r: ReturnType<typeof attributePoints>, images: number[], positions: Array<Array<[number, number]>>, records: ImageRecord[]) {
  const K = r.classes;
  const outputs = r.probs.length / images.length;
  const n = r.acts.length / r.channels;
  const meta = new Int32Array(n * 6);
  const prob = new Float32Array(n * 2);
  let p = 0;
  images.forEach((img, i) => {
    const probs = r.probs.subarray(i * outputs + c.labels.offset, (i + 1) * outputs);
    const pred = argmax(probs);
    const label = records[img]!.label;
    const truth = label ? c.labels.resolve(label).index - c.labels.offset : -1;
    for (const [y, x] of positions[i]!) {
      const win = argmax(r.attr.subarray(p * K, (p + 1) * K));
      meta.set([img, y, x, truth, pred, win], p * 6);
      prob.set([probs[pred]!, truth >= 0 ? probs[truth]! : NaN], p * 2);
      p++;
    }
  });
  return { acts: r.acts, attr: toHalf(r.attr), meta, prob };
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/**
 * Undefined when one forward-mode pass gives every class's attribution; otherwise the estimated time per image
 * of the reverse-mode fallback (attribution/attribute.ts: every class's backward pass, measured once on a blank image).
 */
function reverseModeCost(c: Classifier, layer: string): string | undefined {
  if (c.forwardModeAt(layer)) return undefined;
  const s = reverseAttributionSeconds(c, layer);
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}
