import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { averageRanks, detectableShift, holm, mcnemarExact, medianInterval, normQuantile, normSf, wilcoxon } from '../../src/evaluate/stats.js';

/** Reference values from SciPy 1.10.1 (stats-reference.py beside this file made them). */
const ref = JSON.parse(readFileSync(join(import.meta.dirname, 'stats-reference.json'), 'utf8')) as {
  wilcoxon: Array<{ name: string; d: number[]; method: 'exact' | 'approx'; statistic: number; p: number }>;
  mcnemar: Array<{ b: number; c: number; p: number }>;
  holm: Array<{ p: number[]; adjusted: number[] }>;
  normSf: Array<{ z: number; sf: number }>;
};

const close = (a: number, b: number, rel = 1e-10) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(Math.abs(b), 1e-300));

describe('paired tests against SciPy', () => {
  it.each(ref.wilcoxon.map((c) => [c.name, c] as const))('Wilcoxon signed-rank: %s', (_, c) => {
    const r = wilcoxon(c.d);
    expect(r.method).toBe(c.method);
    expect(r.statistic).toBe(c.statistic);
    close(r.p!, c.p);
  });

  it('McNemar (exact) equals SciPy\'s two-sided binomial test on the discordant pairs', () => {
    for (const c of ref.mcnemar) close(mcnemarExact(c.b, c.c), c.p);
  });

  it('Holm adjusts in input order, monotone in the sorted order', () => {
    for (const c of ref.holm) holm(c.p).forEach((p, i) => close(p!, c.adjusted[i]!));
    expect(holm([0.02, null, 0.01])).toEqual([0.02, null, 0.02]);
  });

  it('normal tail and quantile', () => {
    for (const c of ref.normSf) close(normSf(c.z), c.sf, 1e-12);
    close(normQuantile(0.975), 1.959963984540054, 1e-12);
    close(normQuantile(0.8), 0.8416212335729143, 1e-12);
    close(normQuantile(1e-6), -4.753424308822899, 1e-10);
  });
});

describe('summaries', () => {
  it('ranks ties by their average', () => {
    expect(averageRanks([3, 1, 3, 2])).toEqual([3.5, 1, 3.5, 2]);
  });

  it('gives the median with an order-statistic interval of at least the stated coverage', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    // n = 20: P(Bin(20, ½) ≤ 5) = 0.0207 ≤ 0.025 < P(≤ 6) = 0.0577, so k = 6: [x₆, x₁₅].
    expect(medianInterval(xs)).toEqual({ n: 20, median: 10.5, lo: 6, hi: 15, level: 0.95 });
    expect(medianInterval([1, 2, 3]).lo).toBeNull(); // too few for 95 %
    expect(medianInterval([]).median).toBeNull();
  });

  it('the detectable shift shrinks as 1/√n', () => {
    const a = detectableShift(1, 100)!;
    close(detectableShift(1, 400)!, a / 2, 1e-12);
    // (1.96 + 0.8416) / √(100·3/π) ≈ 0.2867
    expect(a).toBeCloseTo(0.2867, 3);
    expect(detectableShift(1, 1)).toBeNull();
  });
});
