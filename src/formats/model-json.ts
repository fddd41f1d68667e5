import { z } from 'zod';
import { PatchAtlasError, type ErrorCode } from '../errors.js';
import { parseJsonText } from './file.js';

/**
 * A tfjs model.json (not a patch-atlas format: tfjs writes it, and it may come from the network). Checked
 * before anything is done with it; above all every shard path must be a plain file name, since the
 * shards are fetched and written next to model.json: a manifest naming "../x" would otherwise write and
 * read outside the model's folder.
 */
export function isPlainFileName(p: string): boolean {
  return p !== '' && p !== '.' && p !== '..' && !p.includes('/') && !p.includes('\\') && !p.includes('\0');
}

const obj = z.looseObject({}, { error: 'must be an object' });
const shardPath = z.string({ error: 'must be a file name' }).refine(isPlainFileName, { error: (i) => `${JSON.stringify(i.input)} is not a plain file name` });
const weightSpec = z.looseObject(
  {
    name: z.string({ error: 'must be a string' }),
    shape: z.array(z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).nonnegative({ error: 'must not be negative' }), { error: 'must be a list of whole numbers' }),
    dtype: z.string({ error: 'must be a string' }),
    quantization: z.looseObject({ dtype: z.string({ error: 'must be a string' }).optional() }, { error: 'must be an object' }).optional(),
  },
  { error: 'must be an object' },
);

export const modelJsonSchema = z.looseObject(
  {
    modelTopology: obj,
    // tfjs writes null for some of these (convertedBy of a Keras model): null reads as absent.
    format: z.string({ error: 'must be a string' }).nullish(),
    generatedBy: z.string({ error: 'must be a string' }).nullish(),
    convertedBy: z.string({ error: 'must be a string' }).nullish(),
    signature: obj.nullish(),
    userDefinedMetadata: z.record(z.string(), z.unknown(), { error: 'must be an object' }).nullish(),
    weightsManifest: z.array(
      z.looseObject(
        {
          paths: z.array(shardPath, { error: 'must be a list of file names' }),
          weights: z.array(weightSpec, { error: 'must be a list' }),
        },
        { error: 'must be an object' },
      ),
      { error: 'must be a list' },
    ),
  },
  { error: 'must be a JSON object' },
);
export type ModelJson = z.infer<typeof modelJsonSchema>;

/** `weightsManifest[0].paths[1]`, or "the file" for the root. */
function keyOf(path: readonly PropertyKey[]): string {
  if (!path.length) return 'the file';
  return path.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k ? '.' : ''}${String(p)}`)).join('');
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/**
 * model.json text → its checked contents, or one PatchAtlasError line naming `where` (a path or URL) and
 * the first bad key: `…/model.json is not a tfjs model.json: weightsManifest[0].paths[1] "../x" is not a plain file name`.
 */
export function parseModelJson(text: string, where: string, code: ErrorCode, hint?: string): ModelJson {
  const fail = (why: string) => new PatchAtlasError(code, `${where} is not a tfjs model.json: ${why}`, hint);
  const raw = parseJsonText(text, (at) => fail(`not valid JSON (${at})`));
  const r = modelJsonSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const missing = issue.path.length > 0 && valueAt(raw, issue.path) === undefined;
  throw fail(`${keyOf(issue.path)} ${missing ? 'is missing' : issue.message}`);
}
