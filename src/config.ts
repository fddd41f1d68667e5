import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where patch-atlas finds things, from the environment. Nothing here reads the disk.
 * - PATCH_ATLAS_MODELS: a folder with one sub-folder of tfjs weights per model (e.g. ../shared/models);
 *   used before the download cache, so CI and offline machines never touch the network.
 * - PATCH_ATLAS_DATA: a folder holding sample data (imagenet-sample/, article-patches/, labels/).
 * - PATCH_ATLAS_CACHE: the download cache (default ~/.cache/patch-atlas).
 * - PATCH_ATLAS_REQUIRE_REAL=1: tests that need the real model fail instead of skipping (set by .ci/run).
 * - PATCH_ATLAS_THREADS: wasm threads (default: every core); read by src/model/wasm-threads.ts.
 */
export interface Env {
  modelsDir: string | undefined;
  dataDir: string | undefined;
  cacheDir: string;
  requireReal: boolean;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const dir = (v: string | undefined) => (v && v.trim() ? resolve(v) : undefined);
  return {
    modelsDir: dir(env.PATCH_ATLAS_MODELS),
    dataDir: dir(env.PATCH_ATLAS_DATA),
    cacheDir: dir(env.PATCH_ATLAS_CACHE) ?? join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'patch-atlas'),
    requireReal: env.PATCH_ATLAS_REQUIRE_REAL === '1' || env.PATCH_ATLAS_REQUIRE_REAL === 'true',
  };
}
