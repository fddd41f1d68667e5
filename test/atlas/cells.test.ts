import { describe, expect, it } from 'vitest';
import { allCellStats, cellStats, type CellInputs } from '../../src/atlas/cells.js';
import type { Cell } from '../../src/atlas/grid.js';

describe('cellStats', () => {
  // 6 points × 3 channels
  const acts = Float32Array.from([1, 2, 3, 3, 2, 1, 0, 0, 6, 10, 10, 10, 2, 4, 6, 5, 5, 5]);
  const data: CellInputs = {
    acts,
    C: 3,
    classes: [7, 9],
    attr: [Float32Array.from([0, 0.5, 0, 0, 0.25, 1.5]), Float32Array.from([0, 1, 0, 0, 2, -0.5])],
    label: Int32Array.from([7, 7, 9, 9, 2, 7]),
    image: Int32Array.from([0, 10, 1, 1, 11, 10]),
  };
  // layout rows 0..3 are points 1, 2, 4, 5; the cell holds rows 0, 2, 3 → points 1, 4, 5
  const rowToPoint = Int32Array.from([1, 2, 4, 5]);
  const cell: Cell = { i: 1, j: 2, x: 0.3, y: 0.5, points: Int32Array.from([0, 2, 3]) };
  // full attribution rows over K = 4 classes: point p → [p, −p, 1, p/2]
  const calls: number[][] = [];
  const attrRows = (idx: Int32Array) => {
    calls.push(Array.from(idx));
    return Float32Array.from(Array.from(idx).flatMap((p) => [p, -p, 1, p / 2]));
  };

  it('computes exact means, images, label composition and top classes', async () => {
    const s = await cellStats(cell, rowToPoint, data, { k: 2, attrRows });
    expect(s.count).toBe(3);
    expect(Array.from(s.points)).toEqual([1, 4, 5]);
    expect(Array.from(s.rows)).toEqual([0, 2, 3]);
    // ([3,2,1] + [2,4,6] + [5,5,5]) / 3
    expect(Array.from(s.meanAct)).toEqual(Array.from(Float32Array.from([10 / 3, 11 / 3, 4])));
    expect(s.attr).toEqual([
      { cls: 7, value: (0.5 + 0.25 + 1.5) / 3 },
      { cls: 9, value: (1 + 2 - 0.5) / 3 },
    ]);
    expect(s.images).toEqual([
      { image: 10, count: 2 },
      { image: 11, count: 1 },
    ]);
    expect(s.labels).toEqual({
      classes: [
        { cls: 7, value: 2 / 3 },
        { cls: 9, value: 0 },
      ],
      other: 1 / 3,
      unlabelled: 0,
      top: [
        { cls: 7, count: 2 },
        { cls: 2, count: 1 },
      ],
    });
    expect(s.predicted).toBeUndefined();
    expect(calls).toEqual([[1, 4, 5]]);
    // class means over points 1, 4, 5: [10/3, −10/3, 1, 5/3] → top 2 = class 0, class 3
    expect(s.topClasses.map((c) => c.cls)).toEqual([0, 3]);
    expect(s.topClasses[0]!.value).toBeCloseTo(10 / 3, 12);
    expect(s.topClasses[1]!.value).toBeCloseTo(5 / 3, 12);
    expect([s.i, s.j, s.x, s.y]).toEqual([1, 2, 0.3, 0.5]);
  });

  it('adds a prediction composition, counts unlabelled points, and accepts async attrRows', async () => {
    const withPred: CellInputs = { ...data, label: Int32Array.from([7, -1, 9, 9, -1, 9]), pred: Int32Array.from([0, 9, 0, 0, 9, 7]) };
    const [s] = await allCellStats([cell], rowToPoint, withPred, { k: 5, attrRows: async (idx) => attrRows(idx) });
    expect(s!.labels.unlabelled).toBeCloseTo(2 / 3, 12);
    expect(s!.labels.classes).toEqual([
      { cls: 7, value: 0 },
      { cls: 9, value: 1 / 3 },
    ]);
    expect(s!.labels.other).toBeCloseTo(0, 12);
    expect(s!.predicted!.classes).toEqual([
      { cls: 7, value: 1 / 3 },
      { cls: 9, value: 2 / 3 },
    ]);
    expect(s!.topClasses).toHaveLength(4);
  });

  it('leaves topClasses empty without attrRows', async () => {
    expect((await cellStats(cell, rowToPoint, data)).topClasses).toEqual([]);
  });
});
