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
  // 15 auto pairs and their 15 sensitivity twins: ~3 min on 2 cores, so the whole demo stays under 10.
  screenPairs: 15,
  // An icon in every cell of the atlas picture, as an activation atlas should have.
  iconCells: 'all' as const,
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
