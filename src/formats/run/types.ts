import { z } from 'zod';
import type { Format } from '../file.js';
import { producerSchema } from '../producer.js';

/** On-disk format of a collect run (see layout.ts for the files and README-style notes). */
export const RUN_FORMAT = 'patch-atlas-run/1' as const;

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

export type ArrayName = 'acts' | 'attr' | 'meta' | 'prob';
export type ArrayDtype = 'float32' | 'float16' | 'int32';

const arrayInfo = z.object({ file: z.string(), dtype: z.enum(['float32', 'float16', 'int32']), rowLength: z.number().int() });
export type ArrayInfo = z.infer<typeof arrayInfo>;

/** What must match exactly to resume a run or merge shard runs. */
const identity = z.object({
  model: z.string(),
  layer: z.string(),
  seed: z.number(),
  positions: z.union([z.number(), z.literal('all')]),
  labelSet: z.string(),
  /** WordNet ids in attribution-column order. */
  classes: z.array(z.string()),
  channels: z.number().int(),
  layerShape: z.tuple([z.number(), z.number(), z.number()]),
  /** Hash of the full (unsharded) ImageRecord list. */
  imageListHash: z.string(),
});
export type RunIdentity = z.infer<typeof identity>;

const manifestSchema = identity.extend({
  format: z.literal(RUN_FORMAT),
  tool: z.literal('patch-atlas'),
  version: z.string(),
  /** Who wrote (or last resumed, or merged) the run; absent in runs from before it was recorded. */
  producer: producerSchema.optional(),
  /** Class names in `classes` order, so a run names its classes without its model's descriptor (absent in older runs). */
  classNames: z.array(z.string()).optional(),
  shard: z.object({ index: z.number().int(), count: z.number().int() }).nullable(),
  /** Images in the full list (not just this shard). */
  images: z.number().int(),
  processedImages: z.number().int(),
  skippedImages: z.array(z.object({ image: z.number().int(), reason: z.string() })),
  points: z.number().int(),
  complete: z.boolean(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  arrays: z.object({ acts: arrayInfo, attr: arrayInfo, meta: arrayInfo, prob: arrayInfo }),
});
export type RunManifest = z.infer<typeof manifestSchema>;

export const runManifestFormat: Format<RunManifest> = {
  what: 'a patch-atlas run',
  file: 'manifest.json',
  version: RUN_FORMAT,
  schema: manifestSchema,
  code: 'BAD_RUN',
  hint: 'use the patch-atlas version that wrote it, or collect again',
};

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
