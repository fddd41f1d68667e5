import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../config.js';
import { DEFAULT_MODEL } from '../model/descriptor.js';

/** The built-in default job: the article's example on the public ImageNet sample. */
export const DEMO = {
  model: DEFAULT_MODEL,
  pair: ['grey whale', 'great white shark'] as [string, string],
  out: join('reports', 'demo'),
} as const;

/**
 * The article's baseball photo patches (they target grey whale → great white shark), used as photo
 * controls when `$PATCH_ATLAS_DATA/article-patches` exists; none otherwise.
 */
export async function articlePhotoPatches(env: Env): Promise<string[]> {
  if (!env.dataDir) return [];
  const dir = join(env.dataDir, 'article-patches');
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => /^baseball.*\.(png|jpe?g|webp)$/i.test(f)).sort().map((f) => join(dir, f));
}
