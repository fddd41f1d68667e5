import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { inFolder, readFormat, writeFormat, type Format, type ReadOptions } from './file.js';
import { producer, producerSchema } from './producer.js';

/**
 * split.json: both sides of a train/test split of an image set, written where patches are trained
 * (`patch`) so that evaluation (`evaluate --split`) measures them only on images they never saw.
 * Paths are relative to the file's folder, so the folder can move with its images.
 *
 * Version 2 adds `producer`; version-1 files are upgraded on read.
 */
export const SPLIT_FORMAT = 'patch-atlas-split/2';
export const SPLIT_FILE = 'split.json';

const splitSchema = z.object({
  format: z.literal(SPLIT_FORMAT),
  producer: producerSchema,
  /** The image folder or manifest that was split, relative to the file's folder. */
  images: z.string(),
  testFraction: z.number(),
  seed: z.number(),
  train: z.array(z.string()),
  test: z.array(z.string()),
});
export type SplitFile = z.infer<typeof splitSchema>;

export const splitFormat: Format<SplitFile> = {
  what: 'a split.json written by patch-atlas',
  file: SPLIT_FILE,
  version: SPLIT_FORMAT,
  schema: splitSchema,
  hint: '`patch-atlas patch` writes split.json into its --out folder',
  upgrades: {
    'patch-atlas-split/1': (raw) => ({ ...raw, format: SPLIT_FORMAT, producer: { tool: 'patch-atlas', version: 'unknown', model: null, engine: 'unknown', threads: 0 } }),
  },
};

/** A split as code uses it: both sides as sets of absolute paths. */
export interface Split {
  testFraction: number;
  seed: number;
  train: Set<string>;
  test: Set<string>;
}

export function readSplit(path: string, o: ReadOptions = { label: '--split' }): Split {
  const f = readFormat(splitFormat, path, o);
  const dir = resolve(dirname(inFolder(path, SPLIT_FILE)));
  const abs = (p: string) => (isAbsolute(p) ? resolve(p) : resolve(dir, p));
  return { testFraction: f.testFraction, seed: f.seed, train: new Set(f.train.map(abs)), test: new Set(f.test.map(abs)) };
}

export async function writeSplit(path: string, s: { images: string; testFraction: number; seed: number; train: readonly string[]; test: readonly string[] }): Promise<void> {
  const dir = resolve(dirname(path));
  const rel = (p: string) => relative(dir, resolve(p)).split(sep).join('/');
  await writeFormat(splitFormat, path, { format: SPLIT_FORMAT, producer: producer(null), images: rel(s.images), testFraction: s.testFraction, seed: s.seed, train: s.train.map(rel), test: s.test.map(rel) });
}

/** Whether a split holds exactly these two sides (absolute or relative paths). */
export function sameSplit(s: Split, train: readonly string[], test: readonly string[]): boolean {
  const same = (a: Set<string>, b: readonly string[]) => a.size === new Set(b.map((p) => resolve(p))).size && b.every((p) => a.has(resolve(p)));
  return same(s.train, train) && same(s.test, test);
}
