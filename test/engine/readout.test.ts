import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/index.js';
import { evaluateReadout, readoutReads, readoutWidths, renameReads, shiftWeights, weightCount, type Readout } from '../../src/engine/readout.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('readouts on the tape', () => {
  // h[b, y, x, c] = b + 10y + 100x + 1000c, 2 items, 3×2 positions, 2 channels.
  const h = () => tf.tensor4d(Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => { const c = i % 2, x = Math.floor(i / 2) % 2, y = Math.floor(i / 4) % 3, b = Math.floor(i / 12); return b + 10 * y + 100 * x + 1000 * c; }), [2, 3, 2, 2]);
  const row = (v: number[], rows = 1) => ({ data: Float32Array.from(v), rows, cols: v.length / rows });

  it('reads the centre (h // 2, w // 2), a position or the mean, and weights a row per item or one for all', () => {
    const got = tf.tidy(() => {
      const acts = new Map([['h', h()]]);
      return [
        evaluateReadout({ dot: { read: 'h' }, w: 0 }, [row([1, 0])], acts),
        evaluateReadout({ dot: { read: 'h', at: [2, 0] }, w: 0 }, [row([0, 1])], acts),
        evaluateReadout({ dot: { read: 'h', at: 'mean' }, w: 0 }, [row([1, 0, 0, 1], 2)], acts),
      ].map((t) => Array.from(t.dataSync()));
    });
    expect(got[0]).toEqual([110, 111]); // centre (1, 1): 10 + 100 (+ b)
    expect(got[1]).toEqual([1020, 1021]);
    expect(got[2]![0]).toBeCloseTo(60, 4); // item 0, channel 0: mean of 10y + 100x = 10 + 50
    expect(got[2]![1]).toBeCloseTo(1061, 4); // item 1, channel 1: 1 + 60 + 1000
  });

  it('adds log-softmax, max-plus, dotCossim and weighted sums as the formulas say', () => {
    const logits = [1, 2, 3, 0, 0, 5];
    const [ls, mp, cs] = tf.tidy(() => {
      const acts = new Map([['l', tf.tensor2d(logits, [2, 3])]]);
      const sum: Readout = { sum: [[2, { dot: { logSoftmax: { read: 'l' } }, w: 0 }], [-1, { maxPlus: { read: 'l' }, w: 1 }]] };
      return [
        evaluateReadout(sum, [row([1, 0, 0]), row([0, -1e9, 0])], acts),
        evaluateReadout({ maxPlus: { read: 'l' }, w: 0 }, [row([0, 0, -10])], acts),
        evaluateReadout({ dotCossim: { read: 'l' }, w: 0, p: 2 }, [row([1, 0, 0])], acts),
      ].map((t) => Array.from(t.dataSync()));
    });
    const lse = (r: number[]) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0));
    expect(ls![0]).toBeCloseTo(2 * (1 - lse([1, 2, 3])) - 3, 4);
    expect(ls![1]).toBeCloseTo(2 * (0 - lse([0, 0, 5])) - 5, 4);
    expect(mp).toEqual([2, 0]);
    // Item 0: dot 1, cos 1/√14 ≈ 0.267; item 1: dot 0, so 0 whatever the floor.
    expect(cs![0]).toBeCloseTo(1 / 14, 5);
    expect(cs![1]).toBeCloseTo(0, 6);
  });

  it('checks weights against the rows they meet, in one line', () => {
    tf.tidy(() => {
      const acts = new Map([['h', h()]]);
      expect(() => evaluateReadout({ dot: { read: 'h' }, w: 0 }, [row([1, 0, 0])], acts)).toThrow('readout: weight 0 has 3 values a row, the rows have 2');
      expect(() => evaluateReadout({ dot: { read: 'h' }, w: 0 }, [row([1, 0, 0, 1, 0, 0], 3)], acts)).toThrow('readout: weight 0 has 3 rows for a batch of 2');
      expect(() => evaluateReadout({ dot: { read: 'h', at: [3, 0] }, w: 0 }, [row([1, 0])], acts)).toThrow('position (3, 0) is outside the 3×2 activation');
      expect(() => evaluateReadout({ dot: { read: 'g' }, w: 0 }, [row([1, 0])], acts)).toThrow('readout needs output "g", which was not computed');
    });
  });
});

describe('readouts as data', () => {
  const r: Readout = { sum: [[1, { dotCossim: { read: 'a' }, w: 0, p: 2 }], [0.5, { maxPlus: { logSoftmax: { read: 'b' } }, w: 1 }], [2, { dot: { read: 'a', at: 'mean' }, w: 0 }]] };
  it('lists reads once, renames them, counts and shifts weights, and sizes them by the rows they meet', () => {
    expect(readoutReads(r)).toEqual(['a', 'b']);
    expect(readoutReads(renameReads(r, (n) => `t/${n}`))).toEqual(['t/a', 't/b']);
    expect(weightCount(r)).toBe(2);
    expect(weightCount(shiftWeights(r, 3))).toBe(5);
    expect(readoutWidths(r, (n) => (n === 'a' ? 16 : 1000))).toEqual([16, 1000]);
    expect(() => readoutWidths({ sum: [[1, { dot: { read: 'a' }, w: 0 }], [1, { dot: { read: 'b' }, w: 0 }]] }, (n) => (n === 'a' ? 16 : 1000))).toThrow('readout: weight 0 meets rows of 16 and of 1000 values');
    expect(() => readoutWidths({ dot: { read: 'a' }, w: 1 }, () => 4)).toThrow('readout: weight 0 is never used');
  });
});
