import { describe, expect, it } from 'vitest';
import { footprint } from '../../src/patch/paste.js';
import { gridPlacements, randomPlacements, sideFor, type Placement } from '../../src/patch/placement.js';

/** The same placement moved onto a canvas with a wide margin: nothing can be clipped there. */
const unclippedCount = (p: Placement, h: number, w: number) => footprint({ ...p, x: p.x + 100, y: p.y + 100 }, h + 200, w + 200).count;

describe('gridPlacements', () => {
  it('lists positions × sizes in a fixed order with ids like top-left@0.3', () => {
    const ps = gridPlacements([224, 224]);
    expect(ps.map((p) => p.id)).toEqual([
      'top-left@0.2', 'top-left@0.3', 'top-left@0.4',
      'top-right@0.2', 'top-right@0.3', 'top-right@0.4',
      'bottom-left@0.2', 'bottom-left@0.3', 'bottom-left@0.4',
      'bottom-right@0.2', 'bottom-right@0.3', 'bottom-right@0.4',
      'centre@0.2', 'centre@0.3', 'centre@0.4',
    ]);
    expect(gridPlacements([224, 224])).toEqual(ps);
  });

  it('puts corners flush with the edges and the centre at floor((W - side)/2), sized on the shorter side', () => {
    const [h, w] = [23, 31];
    const ps = gridPlacements([h, w], [0.3, 1], undefined);
    const at = (id: string) => ps.find((p) => p.id === id)!;
    const side = sideFor([h, w], 0.3);
    expect(side).toBe(7); // round(0.3 × 23)
    expect(at('top-left@0.3')).toMatchObject({ kind: 'corner', corner: 'top-left', x: 0, y: 0, side: 7, rotation: 0, circular: false });
    expect(at('top-right@0.3')).toMatchObject({ x: w - 7, y: 0 });
    expect(at('bottom-left@0.3')).toMatchObject({ x: 0, y: h - 7 });
    expect(at('bottom-right@0.3')).toMatchObject({ x: w - 7, y: h - 7 });
    expect(at('centre@0.3')).toMatchObject({ kind: 'centre', x: 12, y: 8 });
    expect(at('centre@0.3').corner).toBeUndefined();
    expect(at('top-left@1')).toMatchObject({ side: 23 });
    for (const p of ps) expect(footprint(p, h, w).count).toBe(p.side * p.side);
  });

  it('accepts "center", drops duplicates and marks circular ids', () => {
    const ps = gridPlacements([64, 64], [0.5, 0.5], ['center', 'Top-Left', 'centre'], { circular: true });
    expect(ps.map((p) => p.id)).toEqual(['centre@0.5/circle', 'top-left@0.5/circle']);
    expect(ps.every((p) => p.circular)).toBe(true);
  });

  it('rejects bad sizes and position names with one line naming the value and the valid names', () => {
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect((e as Error).name).toBe('PatchAtlasError');
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      throw new Error('did not throw');
    };
    expect(msg(() => gridPlacements([224, 224], [0.2, 1.5]))).toMatch(/patch size 1\.5 is not a fraction of the image side in \(0, 1\]/);
    expect(msg(() => gridPlacements([224, 224], [30]))).toMatch(/for 30 % write 0\.3/);
    expect(msg(() => gridPlacements([224, 224], [0]))).toMatch(/patch size 0 /);
    expect(msg(() => gridPlacements([224, 224], [Number.NaN]))).toMatch(/patch size NaN /);
    expect(msg(() => gridPlacements([224, 224], []))).toMatch(/no patch sizes/);
    expect(msg(() => gridPlacements([224, 224], [0.2], ['top-left', 'top-centre']))).toBe(
      'unknown patch position "top-centre" (did you mean "centre"?); valid: top-left, top-right, bottom-left, bottom-right, centre',
    );
    expect(msg(() => gridPlacements([224, 224], [0.2], ['middle']))).toMatch(/unknown patch position "middle".*valid: top-left, top-right, bottom-left, bottom-right, centre$/);
    expect(msg(() => gridPlacements([0, 224]))).toMatch(/image size 0×224/);
  });
});

describe('randomPlacements', () => {
  it('is reproducible from the seed and different for another seed', () => {
    const a = randomPlacements([64, 48], 20, { seed: 7, maxRotation: 22.5 });
    expect(randomPlacements([64, 48], 20, { seed: 7, maxRotation: 22.5 })).toEqual(a);
    expect(randomPlacements([64, 48], 20, { seed: 8, maxRotation: 22.5 })).not.toEqual(a);
    expect(new Set(a.map((p) => p.id)).size).toBe(20);
    expect(a.every((p) => p.kind === 'random' && Math.abs(p.rotation) <= 22.5)).toBe(true);
  });

  it('never puts a patch pixel off the image, shrinking patches that cannot fit at their rotation', () => {
    const [h, w] = [40, 56];
    for (const p of randomPlacements([h, w], 200, { seed: 3, sizeRange: [0.1, 1], maxRotation: 45 })) {
      expect(footprint(p, h, w).count).toBe(unclippedCount(p, h, w));
    }
    // Full-size patches fit only unrotated: turned ones are shrunk, and their size says so.
    const full = randomPlacements([h, w], 30, { seed: 4, sizes: [1], maxRotation: 45 });
    for (const p of full) {
      const fp = footprint(p, h, w);
      expect(fp.count).toBe(unclippedCount(p, h, w));
      if (Math.abs(p.rotation) > 2) expect(p.side).toBeLessThan(h);
      expect(p.size).toBeCloseTo(p.side / h, 12);
    }
  });

  it('draws sizes from a list or a range, and checks its options', () => {
    const fromList = randomPlacements([100, 100], 50, { seed: 1, sizes: [0.2, 0.4] });
    expect(new Set(fromList.map((p) => p.side))).toEqual(new Set([20, 40]));
    expect(fromList.every((p) => p.rotation === 0)).toBe(true);
    const fromRange = randomPlacements([100, 100], 50, { seed: 1, sizeRange: [0.3, 0.35] });
    expect(fromRange.every((p) => p.side >= 30 && p.side <= 35)).toBe(true);
    expect(() => randomPlacements([100, 100], 5, { seed: 1, sizes: [0.2], sizeRange: [0.1, 0.2] })).toThrow(/not both/);
    expect(() => randomPlacements([100, 100], 5, { seed: 1, sizeRange: [0.5, 0.2] })).toThrow(/range 0\.5\.\.0\.2 is empty/);
    expect(() => randomPlacements([100, 100], 5, { seed: 1, sizeRange: [0.1, 2] })).toThrow(/patch size 2 /);
    expect(() => randomPlacements([100, 100], 5, { seed: 1, maxRotation: 200 })).toThrow(/rotation 200/);
    expect(() => randomPlacements([100, 100], 0, { seed: 1 })).toThrow(/whole number ≥ 1, got 0/);
  });
});
