import { keyedSeed, sampleIndices } from '../util/random.js';

/**
 * Which class pairs the screen tests, and on which image (issue "Do bridges make patches?"):
 * - auto: for a seeded sample of the images the model classifies correctly (label A), B is the model's
 *   runner-up on that image. B is chosen on the tested image itself, so a second set is run:
 * - sensitivity: the same images and A, with B the class whose final-layer weight vector is nearest A's
 *   by cosine (chosen without looking at the image).
 * - list: pairs a user names; each is tested on every correctly classified image of A.
 * Classes are output columns here (the recipe maps them to WordNet ids and names).
 */

/** A candidate tested image: its index in the image list, its label column and the model's two best columns. */
export interface Candidate {
  image: number;
  label: number;
  top1: number;
  top2: number;
}

export interface PlannedPair {
  id: string;
  set: 'auto' | 'sensitivity' | 'list';
  a: number;
  b: number;
  /** Images of A it is tested on (each with an atlas built without it). */
  images: number[];
}

/** Candidates the model gets right (top-1 = label), the only images a flip toward B can be measured on. */
export function correctlyClassified(cands: readonly Candidate[]): Candidate[] {
  return cands.filter((c) => c.label >= 0 && c.top1 === c.label);
}

/**
 * The auto set and its sensitivity twin: `maxPairs` correct images drawn with `seed` (by image order, so
 * the draw does not depend on how the list was read), one pair each. `nearest(a)` gives the sensitivity B.
 */
export function autoPairs(cands: readonly Candidate[], maxPairs: number, seed: number, nearest: (a: number) => number): { auto: PlannedPair[]; sensitivity: PlannedPair[] } {
  const ok = correctlyClassified(cands).sort((x, y) => x.image - y.image);
  const chosen = Array.from(sampleIndices(ok.length, Math.min(maxPairs, ok.length), keyedSeed(seed, 'screen/pairs')), (i) => ok[i]!);
  const id = (set: string, k: number) => `${set}-${String(k).padStart(4, '0')}`;
  return {
    auto: chosen.map((c, k) => ({ id: id('auto', k), set: 'auto', a: c.label, b: c.top2, images: [c.image] })),
    sensitivity: chosen.map((c, k) => ({ id: id('sens', k), set: 'sensitivity', a: c.label, b: nearest(c.label), images: [c.image] })),
  };
}

/** Named pairs, each tested on every correctly classified image of A (k-fold by image); pairs without one are returned apart. */
export function listPairs(named: ReadonlyArray<{ a: number; b: number }>, cands: readonly Candidate[]): { pairs: PlannedPair[]; untestable: Array<{ a: number; b: number }> } {
  const ok = correctlyClassified(cands);
  const pairs: PlannedPair[] = [];
  const untestable: Array<{ a: number; b: number }> = [];
  named.forEach(({ a, b }, k) => {
    const images = ok.filter((c) => c.label === a).map((c) => c.image).sort((x, y) => x - y);
    if (images.length) pairs.push({ id: `list-${String(k).padStart(4, '0')}`, set: 'list', a, b, images });
    else untestable.push({ a, b });
  });
  return { pairs, untestable };
}

/**
 * The class whose weight vector is nearest class `a`'s by cosine: `weights` is [K × D] row-major, one row
 * per output column (the final layer's weights into each logit). Ties go to the lower column.
 */
export function nearestByWeights(weights: Float32Array, K: number, a: number): number {
  const D = weights.length / K;
  const row = (k: number) => weights.subarray(k * D, (k + 1) * D);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const va = row(a);
  const na = norm(va);
  let best = -1;
  let bestCos = -Infinity;
  for (let k = 0; k < K; k++) {
    if (k === a) continue;
    const vk = row(k);
    let dot = 0;
    for (let d = 0; d < D; d++) dot += va[d]! * vk[d]!;
    const cos = dot / (na * norm(vk) || 1);
    if (cos > bestCos) {
      bestCos = cos;
      best = k;
    }
  }
  return best;
}
