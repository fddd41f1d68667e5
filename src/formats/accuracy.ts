import { z } from 'zod';
import { readFormat, writeFormat, type Format, type ReadOptions } from './file.js';
import { producerSchema } from './producer.js';

/**
 * accuracy.json: clean top-1 / top-5 of a model on a labelled image set, overall, per class and per
 * image, as `accuracy --json` prints it and the `run` pipeline writes it; the report reads it.
 *
 * Version 1 had no format field and no producer; it is upgraded on read.
 */
export const ACCURACY_FORMAT = 'patch-atlas-accuracy/2';
export const ACCURACY_FILE = 'accuracy.json';

const accuracySchema = z.object({
  format: z.literal(ACCURACY_FORMAT),
  producer: producerSchema,
  model: z.string(),
  backend: z.string(),
  /** The image folder or manifest. */
  source: z.string(),
  images: z.number().int(),
  top1: z.number(),
  top5: z.number(),
  correctTop1: z.number().int(),
  correctTop5: z.number().int(),
  /** Images with no class among the model's (listed in `unlabelledImages` where recorded). */
  unlabelled: z.number().int(),
  /** Each unlabelled image and why it has no label (absent in files from before it was recorded). */
  unlabelledImages: z.array(z.object({ path: z.string(), reason: z.string() })).optional(),
  skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  perClass: z.array(z.object({ wnid: z.string(), name: z.string(), images: z.number().int(), top1: z.number(), top5: z.number() })),
  /** One row per image: path, true and predicted WordNet id, the prediction's probability, the true class's rank (1–5) or null. */
  predictions: z.array(z.object({ path: z.string(), label: z.string(), predicted: z.string(), probability: z.number(), rank: z.number().int().nullable() })),
});
export type AccuracyReport = z.infer<typeof accuracySchema>;

export const accuracyFormat: Format<AccuracyReport> = {
  what: 'the accuracy.json of `patch-atlas accuracy --json`',
  file: ACCURACY_FILE,
  version: ACCURACY_FORMAT,
  schema: accuracySchema,
  hint: 'write one with `patch-atlas accuracy --images DIR --json > accuracy.json`',
  unversioned: {
    test: (raw) => typeof raw.top1 === 'number' && typeof raw.images === 'number',
    upgrade: (raw) => ({
      predictions: [],
      perClass: [],
      skipped: [],
      unlabelled: 0,
      ...raw,
      format: ACCURACY_FORMAT,
      producer: { tool: 'patch-atlas', version: 'unknown', model: typeof raw.model === 'string' ? raw.model : null, engine: typeof raw.backend === 'string' ? raw.backend : 'unknown', threads: 0 },
    }),
  },
};

export function readAccuracy(path: string, o: ReadOptions = {}): AccuracyReport {
  return readFormat(accuracyFormat, path, o);
}

export async function writeAccuracy(path: string, r: AccuracyReport): Promise<void> {
  await writeFormat(accuracyFormat, path, r);
}
