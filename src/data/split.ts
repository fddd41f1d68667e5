import { PatchAtlasError } from '../errors.js';
import { keyedSeed } from '../util/random.js';
import type { ImageItem } from './dataset.js';

export interface SplitOptions {
  /** Fraction of the images (per class, as near as whole images allow) that go to the test side, in (0, 1). */
  testFraction: number;
  seed: number;
}

export interface Split<T> {
  train: T[];
  test: T[];
}

/**
 * A deterministic train/test split, so a patch is optimised on one set of images and measured on a
 * disjoint one.
 * - Keyed by path: each image's rank is a hash of (seed, path), so which side an image lands on does not
 *   depend on the order items are listed in (a re-sorted or re-scanned dataset splits the same way).
 * - Stratified by label: each class (unlabelled images form one more stratum) sends its share to the test
 *   side. Shares are whole images, so the quotas are rounded by largest remainder over all strata, ties
 *   broken by a hash of (seed, class): the total is round(testFraction × N) exactly, and with one image
 *   per class (e.g. the 1000-image ImageNet sample) every class still lands on one side reproducibly,
 *   rather than all classes rounding the same way.
 * - The same path listed twice is one image: both copies land on the same side.
 * Both sides keep the input order.
 */
export function splitItems<T extends Pick<ImageItem, 'path' | 'label'>>(items: readonly T[], opts: SplitOptions): Split<T> {
  const { testFraction, seed } = opts;
  if (!(typeof testFraction === 'number' && Number.isFinite(testFraction) && testFraction > 0 && testFraction < 1)) {
    throw new PatchAtlasError('BAD_FLAG', `test fraction ${String(testFraction)} must be between 0 and 1 (exclusive)`, 'e.g. 0.5');
  }
  if (!(typeof seed === 'number' && Number.isInteger(seed))) throw new PatchAtlasError('BAD_FLAG', `split seed must be a whole number, got ${String(seed)}`);

  // Strata of unique paths. A path's stratum is its first item's label (a path labelled two ways is a dataset bug we do not guess about).
  const strata = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.path)) continue;
    seen.add(it.path);
    const key = it.label ? `class:${it.label.wnid}` : 'unlabelled';
    let paths = strata.get(key);
    if (!paths) strata.set(key, (paths = []));
    paths.push(it.path);
  }

  // Largest-remainder quotas; iterating strata sorted by key keeps this independent of input order.
  const keys = [...strata.keys()].sort();
  const quota = new Map<string, number>();
  const rest: Array<{ key: string; frac: number; tie: number }> = [];
  let assigned = 0;
  for (const key of keys) {
    const exact = testFraction * strata.get(key)!.length;
    const whole = Math.floor(exact);
    quota.set(key, whole);
    assigned += whole;
    rest.push({ key, frac: exact - whole, tie: keyedSeed(seed, key) });
  }
  let left = Math.round(testFraction * seen.size) - assigned;
  // Remainders compared with a tolerance so float noise (0.3·10 = 3.0000000000000004) does not decide order.
  rest.sort((a, b) => (Math.abs(a.frac - b.frac) > 1e-9 ? b.frac - a.frac : a.tie - b.tie || (a.key < b.key ? -1 : 1)));
  for (const r of rest) {
    if (left <= 0) break;
    if (r.frac <= 1e-9) continue;
    quota.set(r.key, quota.get(r.key)! + 1);
    left--;
  }

  // Within a stratum, the images with the smallest hash go to test.
  const testPaths = new Set<string>();
  for (const key of keys) {
    const ranked = strata
      .get(key)!
      .map((path) => ({ path, h: keyedSeed(seed, path) }))
      .sort((a, b) => a.h - b.h || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    for (let i = 0; i < quota.get(key)!; i++) testPaths.add(ranked[i]!.path);
  }

  const train: T[] = [];
  const test: T[] = [];
  for (const it of items) (testPaths.has(it.path) ? test : train).push(it);
  return { train, test };
}
