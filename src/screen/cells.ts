import type { PairAtlasResult } from '../atlas/atlases.js';
import { keyedSeed, mulberry32 } from '../util/random.js';
import { MIN_A_POINTS } from './design.js';

/**
 * The cells of one pair atlas the screen draws patches from: the top bridge cell (only when the pair
 * has a bridge, never picked from a tie at zero), a random cell that is not a bridge (the primary
 * control), and the most B-typical cell ("B's own feature"). Points favour A or B by attribution.
 */
export interface ScreenCells {
  /** Atlas points whose attribution to A exceeds their attribution to B, and the other way round. */
  aPoints: number;
  bPoints: number;
  hasBridge: boolean;
  /** Why not, when the pair has no bridge. */
  noBridge: string | null;
  /** Indices into the atlas's cells. */
  bridge: number | null;
  random: number | null;
  bTypical: number | null;
}

/**
 * `attrA`/`attrB` are indexed like the atlas's `points` (global indices of the arrays the atlas was built
 * from); `key` names the pair and tested image, so the random cell is drawn the same wherever it is run.
 */
export function screenCells(atlas: PairAtlasResult, attrA: Float32Array, attrB: Float32Array, seed: number, key: string): ScreenCells {
  let aPoints = 0;
  let bPoints = 0;
  for (const p of atlas.points) {
    if (attrA[p]! > attrB[p]!) aPoints++;
    else if (attrB[p]! > attrA[p]!) bPoints++;
  }
  const top = atlas.bridges[0];
  const noBridge =
    !top ? 'the atlas has no cells'
    : !(top.score > 0) ? `the best cell scores ${top.score.toFixed(3)} (not above 0)`
    : aPoints < MIN_A_POINTS ? `only ${aPoints} A-favouring points (fewer than ${MIN_A_POINTS})`
    : null;
  const bridge = noBridge === null ? top!.cell : null;
  const others = atlas.bridges.filter((b) => b.cell !== bridge);
  const notBridges = others.filter((b) => !(b.score > 0));
  const pool = (notBridges.length ? notBridges : others).map((b) => b.cell).sort((x, y) => x - y);
  const random = pool.length ? pool[Math.floor(mulberry32(keyedSeed(seed, `random-cell/${key}`))() * pool.length)]! : null;
  // The most B-typical cell: the strongest mean push toward B (ties: more points, then lower index).
  const byPush = [...others].sort((x, y) => y.towardB - x.towardB || y.count - x.count || x.cell - y.cell);
  const bTypical = byPush.length ? byPush[0]!.cell : null;
  return { aPoints, bPoints, hasBridge: bridge !== null, noBridge, bridge, random, bTypical };
}
