import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from 'vitest';
import { readEnv } from '../../src/config.js';

/**
 * Tests about real behaviour need the real MobileNet and sample images (../shared here,
 * found through PATCH_ATLAS_MODELS / PATCH_ATLAS_DATA). Where they are absent the suite says so
 * and skips; with PATCH_ATLAS_REQUIRE_REAL=1 (set by .ci/run) absence is a failure instead.
 */
const env = readEnv();
export const REAL_MODEL_DIR = env.modelsDir ? join(env.modelsDir, 'mobilenet_v1_0.75_224') : undefined;
export const SAMPLE_DIR = env.dataDir ? join(env.dataDir, 'imagenet-sample') : undefined;
export const ARTICLE_PATCHES_DIR = env.dataDir ? join(env.dataDir, 'article-patches') : undefined;
export const GOOGLENET_FILE = env.modelsDir ? join(env.modelsDir, 'googlenet_bvlc', 'model.onnx') : undefined;

function missing(): string | undefined {
  if (!REAL_MODEL_DIR || !existsSync(join(REAL_MODEL_DIR, 'model.json')))
    return 'real model not found: set PATCH_ATLAS_MODELS to a folder holding mobilenet_v1_0.75_224/ (e.g. ../shared/models)';
  if (!GOOGLENET_FILE || !existsSync(GOOGLENET_FILE))
    return 'GoogLeNet not found: set PATCH_ATLAS_MODELS to a folder holding googlenet_bvlc/model.onnx (e.g. ../shared/models)';
  if (!SAMPLE_DIR || !existsSync(SAMPLE_DIR))
    return 'sample images not found: set PATCH_ATLAS_DATA to a folder holding imagenet-sample/ (e.g. ../shared/data)';
  return undefined;
}

export const realMissing = missing();

if (realMissing && env.requireReal) {
  throw new Error(`PATCH_ATLAS_REQUIRE_REAL is set but ${realMissing}`);
}

/** `describe` for real-model tests: skips with the reason in its title when data is absent. */
export function describeReal(name: string, fn: () => void): void {
  if (realMissing) describe.skip(`${name} [skipped: ${realMissing}]`, fn);
  else describe(name, fn);
}
