import { createHash } from 'node:crypto';

/** mulberry32: a small, fast, seedable PRNG; results depend only on the seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed derived from a run seed and a key (e.g. an image path), so draws don't depend on processing order. */
export function keyedSeed(seed: number, key: string): number {
  return createHash('sha256').update(`${seed}\0${key}`).digest().readUInt32LE(0);
}

/** k distinct indices from 0..n−1, uniformly at random (partial Fisher–Yates), sorted ascending. */
export function sampleIndices(n: number, k: number, seed: number): Int32Array {
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed);
  const pool = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    const t = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = t;
  }
  return pool.slice(0, k).sort();
}

/**
 * `fn` made repeatable: it gets the streams wrapped so that the first call draws from them (recording each draw)
 * and every later call replays the first call's draws. Lets a step whose native try fails midway (featurevis/
 * native-step.ts) make its image again on the tape without changing the streams' sequence: the step draws exactly
 * what a single call would.
 */
export function replaying<T>(streams: ReadonlyArray<() => number>, fn: (streams: Array<() => number>) => T): () => T {
  const draws = streams.map(() => [] as number[]);
  let recorded = false;
  return () => {
    const at = streams.map(() => 0);
    const wrapped = streams.map((s, i) => () => {
      if (!recorded) {
        const v = s();
        draws[i]!.push(v);
        return v;
      }
      if (at[i]! >= draws[i]!.length) throw new Error('replaying: a later call drew more than the first');
      return draws[i]![at[i]!++]!;
    });
    try {
      return fn(wrapped);
    } finally {
      recorded = true;
    }
  };
}
