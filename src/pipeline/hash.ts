import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ImageItem } from '../data/dataset.js';
import { stableJson } from '../util/json.js';
import { mapLimit } from '../util/concurrency.js';

export { stableJson };

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What a stage's cache key is made of; any change to any part reruns the stage (and, through `deps`, everything after it). */
export interface KeyParts {
  stage: string;
  settings: unknown;
  /** Keys of the stages this one reads from, by name. */
  deps: Record<string, string>;
  tool: string;
  model: string;
  images: string;
}

export function stageKey(parts: KeyParts): string {
  return sha256(stableJson({ format: 'patch-atlas-stage-key/1', ...parts }));
}

/**
 * The input image list: each image's absolute path, label, size and modification time, in order.
 * Size and mtime stand in for the bytes (hashing every image would cost more than some stages):
 * a replaced or edited file changes the hash, a re-scanned unchanged folder does not.
 */
export async function imageListHash(items: readonly Pick<ImageItem, 'path' | 'label'>[]): Promise<string> {
  const stats = await mapLimit(items, 32, (i) => stat(i.path).then((s) => [s.size, Math.round(s.mtimeMs)] as const, () => [-1, -1] as const));
  const h = createHash('sha256');
  h.update(`patch-atlas-pipeline-images/1 ${items.length}\n`);
  items.forEach((it, k) => h.update(JSON.stringify([resolve(it.path), it.label?.wnid ?? null, ...stats[k]!]) + '\n'));
  return 'sha256:' + h.digest('hex');
}
