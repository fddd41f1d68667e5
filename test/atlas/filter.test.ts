import { describe, expect, it } from 'vitest';
import { classFilter, pairFilter } from '../../src/atlas/filter.js';

describe('classFilter', () => {
  //                    0    1    2    3     4    5    6    7
  const attr = Float32Array.from([0.9, 0.1, 0.5, -0.2, 0.0, 0.7, NaN, 0.5]);
  const winner = Int32Array.from([1, 3, 3, 3, 2, 3, 3, 0]);

  it('keeps the winners plus the top-n positive attributions, deduplicated and sorted', () => {
    // winners of 3: 1, 2, 3, 5, 6; top-2 by attribution: 0 (0.9), 5 (0.7)
    expect(Array.from(classFilter({ attr, winner, cls: 3, topN: 2 }))).toEqual([0, 1, 2, 3, 5, 6]);
  });

  it('never adds points with attribution ≤ 0 (or NaN) through the top-n route', () => {
    // all positive ones: 0, 1, 2, 5, 7 — not 3 (−0.2), 4 (0), 6 (NaN)
    expect(Array.from(classFilter({ attr, winner, cls: 9, topN: 100 }))).toEqual([0, 1, 2, 5, 7]);
  });

  it('breaks ties by the lower index and handles topN = 0', () => {
    // 2 and 7 tie at 0.5; top-3 = 0, 5, then 2
    expect(Array.from(classFilter({ attr, winner, cls: 9, topN: 3 }))).toEqual([0, 2, 5]);
    expect(Array.from(classFilter({ attr, winner, cls: 0, topN: 0 }))).toEqual([7]);
  });
});

describe('pairFilter', () => {
  it('is the sorted union of both classes, without duplicates', () => {
    const attrA = Float32Array.from([0.8, 0, 0, 0.3, 0, 0.2]);
    const attrB = Float32Array.from([0.6, 0, 0.9, 0, 0, 0.1]);
    const winner = Int32Array.from([0, 5, 5, 1, 1, 7]);
    // A (class 0): winners {0} + top-1 {0}; B (class 1): winners {3, 4} + top-1 {2}
    expect(Array.from(pairFilter({ attrA, attrB, winner, a: 0, b: 1, topN: 1 }))).toEqual([0, 2, 3, 4]);
    // top-3: A adds 3 and 5, B adds 0 and 5 — each once
    expect(Array.from(pairFilter({ attrA, attrB, winner, a: 0, b: 1, topN: 3 }))).toEqual([0, 2, 3, 4, 5]);
  });
});
