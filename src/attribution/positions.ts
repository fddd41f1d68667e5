import { PatchAtlasError } from '../errors.js';
import { keyedSeed, sampleIndices } from '../util/random.js';

export type PositionCount = number | 'all';

/** `--positions N|all`, validated once. */
export function parsePositions(v: string | number): PositionCount {
  if (v === 'all') return 'all';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PatchAtlasError('BAD_FLAG', `--positions ${v} must be a whole number >= 1 or "all"`);
  return n;
}

/**
 * Spatial positions [y, x] to sample from an H×W activation map, avoiding the border as the article's
 * notebook does (border activations see padding). Seeded per image key, so a shard or a resumed run
 * draws the same positions for an image as a single run. 'all' = every non-border position, row-major.
 */
export function samplePositions(h: number, w: number, count: PositionCount, seed: number, key: string): Array<[number, number]> {
  const lo = (n: number) => (n >= 3 ? 1 : 0);
  const hi = (n: number) => (n >= 3 ? n - 2 : n - 1);
  const all: Array<[number, number]> = [];
  for (let y = lo(h); y <= hi(h); y++) for (let x = lo(w); x <= hi(w); x++) all.push([y, x]);
  if (count === 'all' || count >= all.length) return all;
  // Sorted indices into the row-major list keep the positions in row-major order.
  return Array.from(sampleIndices(all.length, count, keyedSeed(seed, key)), (i) => all[i]!);
}

/** How many positions a count yields on an H×W map. */
export function positionsPerImage(h: number, w: number, count: PositionCount): number {
  const inner = (h >= 3 ? h - 2 : h) * (w >= 3 ? w - 2 : w);
  return count === 'all' ? inner : Math.min(count, inner);
}
