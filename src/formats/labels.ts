import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { PatchAtlasError } from '../errors.js';
import { parseJsonText } from './file.js';

/**
 * A label set (models/labels/*.json, or a model's own): `classes` in the model's output order, each
 * [WordNet id, short name, long label with synonyms?]. Not a patch-atlas format (no version string);
 * other keys ("name", "description") are kept as they are.
 */
export const labelFileSchema = z.looseObject({
  name: z.string().optional(),
  classes: z.array(z.tuple([z.string(), z.string(), z.string().optional()])),
});
export type LabelFile = z.infer<typeof labelFileSchema>;

/** Reads a label file; a missing file, bad JSON or a file without "classes" is one BAD_DESCRIPTOR line naming it. */
export function readLabelFile(path: string): LabelFile {
  if (!existsSync(path)) throw new PatchAtlasError('BAD_DESCRIPTOR', `label set ${path} does not exist`);
  const raw = parseJsonText(readFileSync(path, 'utf8'), (where) => new PatchAtlasError('BAD_DESCRIPTOR', `label set ${path} is not valid JSON: ${where}`));
  const r = labelFileSchema.safeParse(raw);
  if (!r.success) throw new PatchAtlasError('BAD_DESCRIPTOR', `label set ${path} must hold "classes": [[wnid, name, long?], ...]`);
  return r.data;
}
