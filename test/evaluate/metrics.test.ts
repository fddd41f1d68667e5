import { describe, expect, it } from 'vitest';
import { checkMatrix, meanInterval, patchMetrics, wilson, type SuccessMatrix } from '../../src/evaluate/metrics.js';
import { mulberry32 } from '../../src/util/random.js';

describe('wilson', () => {
  // Reference values: the score-interval formula evaluated independently in Python with z = 1.96
  // (scipy's binomtest(...).proportion_ci(method='wilson'), which uses z = 1.95996, agrees to 1e-5).
  it.each([
    [0, 10, 0, 0, 0.27754],
    [5, 10, 0.5, 0.23659, 0.76341],
    [81, 263, 81 / 263, 0.255288, 0.366211],
    [10, 10, 1, 0.72246, 1],
    [3, 7, 3 / 7, 0.158217, 0.749546],
  ])('k=%i n=%i', (k, n, p, lo, hi) => {
    const w = wilson(k, n);
    expect(w.p).toBeCloseTo(p, 12);
    expect(Math.abs(w.lo - lo)).toBeLessThan(1e-4);
    expect(Math.abs(w.hi - hi)).toBeLessThan(1e-4);
  });

  it('matches the values quoted in the brief', () => {
    expect(wilson(0, 10).hi).toBeCloseTo(0.2775, 4);
    expect(wilson(5, 10).lo).toBeCloseTo(0.2366, 4);
    expect(wilson(5, 10).hi).toBeCloseTo(0.7634, 4);
    expect(wilson(81, 263).lo).toBeCloseTo(0.2553, 4);
    expect(wilson(81, 263).hi).toBeCloseTo(0.3662, 4);
  });

  it('is [0, 1] with p NaN for no trials, narrows with n, and rejects impossible counts', () => {
    expect(wilson(0, 0)).toEqual({ p: NaN, lo: 0, hi: 1 });
    expect(wilson(50, 100).hi - wilson(50, 100).lo).toBeLessThan(wilson(5, 10).hi - wilson(5, 10).lo);
    expect(wilson(1, 2, 2.576).hi).toBeGreaterThan(wilson(1, 2).hi); // 99 % is wider
    expect(() => wilson(3, 2)).toThrow(/0 ≤ k ≤ n/);
    expect(() => wilson(-1, 2)).toThrow();
    expect(() => wilson(0.5, 2)).toThrow();
  });
});

describe('meanInterval', () => {
  it('is mean ± 1.96·sd/√n', () => {
    const m = meanInterval([1, 2, 3, 4]);
    const sd = Math.sqrt(((1.5 ** 2 + 0.5 ** 2) * 2) / 3);
    expect(m.mean).toBe(2.5);
    expect(m.hi - m.mean).toBeCloseTo((1.96 * sd) / 2, 12);
    expect(meanInterval([]).mean).toBeNaN();
  });
});

/**
 * 8 images, source 0, target 2. Images 0–3 are correct before; 4 and 5 are wrong before (predicted 1
 * and 3) and "flip" to the target under A, which must not count; 6 is predicted as the target before;
 * 7 is labelled as the target (wrong before, predicted 1) and flips to it.
 */
function handMatrix(): SuccessMatrix {
  const i32 = (a: number[]) => Int32Array.from(a);
  const f32 = (a: number[]) => Float32Array.from(a);
  return {
    placements: ['A', 'B', 'C'],
    images: ['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7'],
    target: 2,
    label: i32([0, 0, 0, 0, 0, 0, 0, 2]),
    clean: { pred: i32([0, 0, 0, 0, 1, 3, 2, 1]), correct: Uint8Array.from([1, 1, 1, 1, 0, 0, 0, 0]), pTarget: f32([0.1, 0.1, 0.2, 0.0, 0.3, 0.1, 0.6, 0.2]) },
    patched: [
      { pred: i32([2, 2, 0, 1, 2, 2, 2, 2]), pTarget: f32([0.7, 0.8, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]) },
      { pred: i32([0, 0, 2, 0, 2, 2, 2, 1]), pTarget: f32([0.2, 0.1, 0.6, 0.0, 0.5, 0.5, 0.5, 0.1]) },
      { pred: i32([0, 0, 0, 0, 1, 3, 2, 1]), pTarget: f32([0.1, 0.1, 0.2, 0.0, 0.3, 0.1, 0.6, 0.2]) },
    ],
  };
}

describe('patchMetrics on a hand-built matrix', () => {
  const m = patchMetrics(handMatrix());
  const [a, b, c] = m.placements;

  it('counts only images correct before, in numerator and denominator', () => {
    expect(m.images).toBe(8);
    expect(m.correctBefore).toBe(4);
    expect(a!.targeted).toMatchObject({ k: 2, n: 4, p: 0.5 });
    expect(b!.targeted).toMatchObject({ k: 1, n: 4, p: 0.25 });
    expect(c!.targeted).toMatchObject({ k: 0, n: 4, p: 0 });
    expect(a!.targeted.lo).toBeCloseTo(wilson(2, 4).lo, 12);
    expect(a!.untargeted).toMatchObject({ k: 3, n: 4 }); // images 0, 1 to the target and 3 to class 1
  });

  it('static is the best placement, dynamic counts an image if any placement flips it', () => {
    expect(m.static.placement).toBe('A');
    expect(m.static.targeted).toEqual(a!.targeted);
    expect(m.dynamic.targeted).toMatchObject({ k: 3, n: 4 }); // 0 and 1 by A, 2 by B
    expect(m.dynamic.untargeted).toMatchObject({ k: 4, n: 4 });
  });

  it('reports target probability before and after over the images correct before', () => {
    expect(a!.pTarget.before).toBeCloseTo((0.1 + 0.1 + 0.2 + 0) / 4, 6);
    expect(a!.pTarget.after).toBeCloseTo((0.7 + 0.8 + 0.1 + 0.1) / 4, 6);
    expect(a!.pTarget.change.mean).toBeCloseTo(a!.pTarget.after - a!.pTarget.before, 6);
    expect(a!.pTarget.change.n).toBe(4);
    expect(c!.pTarget.change.mean).toBe(0);
    // Dynamic: each image's best placement (max over A, B, C).
    expect(m.dynamic.pTarget.after).toBeCloseTo((0.7 + 0.8 + 0.6 + 0.1) / 4, 6);
  });

  it('universal success excludes images already predicted as, or labelled as, the target', () => {
    // Eligible: 0–5 (6 is predicted 2 before, 7 is labelled 2). A turns 0, 1, 4, 5 into the target.
    expect(m.notTargetBefore).toBe(6);
    expect(a!.universal).toMatchObject({ k: 4, n: 6 });
    expect(b!.universal).toMatchObject({ k: 3, n: 6 });
    expect(m.universal.static.placement).toBe('A');
    expect(m.universal.dynamic).toMatchObject({ k: 5, n: 6 });
    // Without labels, image 7 (wrong before, flips) is eligible.
    const { label: _, ...noLabel } = handMatrix();
    expect(patchMetrics(noLabel).placements[0]!.universal).toMatchObject({ k: 5, n: 7 });
  });

  it('rejects inconsistent matrices and source = target', () => {
    const bad = handMatrix();
    bad.patched.pop();
    expect(() => checkMatrix(bad)).toThrow(/2 patched rows for 3 placements/);
    const same = handMatrix();
    same.clean.correct[6] = 1;
    expect(() => patchMetrics(same)).toThrow(/source class must differ from the target/);
    const short = handMatrix();
    short.patched[1]!.pred = new Int32Array(3);
    expect(() => patchMetrics(short)).toThrow(/placement B has 3 predictions for 8 images/);
  });
});

describe('patchMetrics invariants on random matrices', () => {
  it('dynamic ≥ every static placement, untargeted ≥ targeted, shared denominators', () => {
    const r = mulberry32(99);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 40);
      const np = 1 + Math.floor(r() * 6);
      const classes = 4;
      const target = 3;
      const source = 0;
      const cleanPred = Int32Array.from({ length: n }, () => Math.floor(r() * classes));
      const m: SuccessMatrix = {
        placements: Array.from({ length: np }, (_, j) => `p${j}`),
        images: Array.from({ length: n }, (_, i) => `i${i}`),
        target,
        clean: { pred: cleanPred, correct: Uint8Array.from(cleanPred, (p) => (p === source ? 1 : 0)), pTarget: Float32Array.from({ length: n }, () => r()) },
        patched: Array.from({ length: np }, () => ({ pred: Int32Array.from({ length: n }, () => Math.floor(r() * classes)), pTarget: Float32Array.from({ length: n }, () => r()) })),
      };
      const got = patchMetrics(m);
      for (const p of got.placements) {
        expect(got.dynamic.targeted.k).toBeGreaterThanOrEqual(p.targeted.k);
        expect(got.dynamic.universal.k).toBeGreaterThanOrEqual(p.universal.k);
        expect(p.untargeted.k).toBeGreaterThanOrEqual(p.targeted.k);
        expect(p.targeted.n).toBe(got.correctBefore);
        expect(got.static.targeted.k).toBeGreaterThanOrEqual(p.targeted.k);
        // No image correct before: the means are NaN (nothing to average), not 0.
        if (got.correctBefore === 0) expect(p.pTarget.after).toBeNaN();
        else expect(got.dynamic.pTarget.after).toBeGreaterThanOrEqual(p.pTarget.after - 1e-6);
      }
      expect(got.dynamic.untargeted.k).toBeGreaterThanOrEqual(got.dynamic.targeted.k);
      expect(got.dynamic.targeted.n).toBe(got.correctBefore);
    }
  });
});
