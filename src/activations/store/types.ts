/** On-disk format of a collect run (see layout.ts for the files and README-style notes). */
export const RUN_FORMAT = 'patch-atlas-run/1';

/** One input image; `label` is a WordNet id, or null for unlabelled images. */
export interface ImageRecord {
  path: string;
  label: string | null;
}

/** `--shard index/count`: this run covers the images with `i % count === index`. */
export interface ShardSpec {
  index: number;
  count: number;
}

/** What must match exactly to resume a run or merge shard runs. */
export interface RunIdentity {
  model: string;
  layer: string;
  seed: number;
  positions: number | 'all';
  labelSet: string;
  /** WordNet ids in attribution-column order. */
  classes: string[];
  channels: number;
  layerShape: [number, number, number];
  /** Hash of the full (unsharded) ImageRecord list. */
  imageListHash: string;
}

export type ArrayName = 'acts' | 'attr' | 'meta' | 'prob';
export type ArrayDtype = 'float32' | 'float16' | 'int32';

export interface ArrayInfo {
  file: string;
  dtype: ArrayDtype;
  rowLength: number;
}

export interface RunManifest extends RunIdentity {
  format: typeof RUN_FORMAT;
  tool: 'patch-atlas';
  version: string;
  shard: ShardSpec | null;
  /** Images in the full list (not just this shard). */
  images: number;
  processedImages: number;
  skippedImages: Array<{ image: number; reason: string }>;
  points: number;
  complete: boolean;
  createdAt: string;
  finishedAt: string | null;
  arrays: Record<ArrayName, ArrayInfo>;
}

/**
 * One batch of collected points, as handed to RunWriter.writeChunk.
 *
 * - acts: float32 [points × channels]
 * - attr: float16 bits [points × classes]
 * - meta: int32 [points × 6] = image index (into the full list), y, x, true class column (-1 none),
 *   predicted class column, winning attribution class column (argmax of the attr row)
 * - prob: float32 [points × 2] = predicted-class probability, true-class probability (NaN if unlabelled)
 *
 * `images` are the images this chunk accounts for (including any that yielded no points); `skipped`
 * are images of this batch that could not be processed, listed in `images` as well or not. All of
 * them count as done when resuming; only non-skipped ones count as processed and may have points.
 */
export interface PointChunk {
  images: number[];
  acts: Float32Array;
  attr: Uint16Array;
  meta: Int32Array;
  prob: Float32Array;
  skipped: Array<{ image: number; reason: string }>;
}

/** Column numbers of the meta array. */
export const META = { image: 0, y: 1, x: 2, trueClass: 3, predClass: 4, winClass: 5 } as const;
export const META_COLUMNS = 6;
/** Column numbers of the prob array. */
export const PROB = { predicted: 0, truth: 1 } as const;
export const PROB_COLUMNS = 2;
