import { describe, expect, it } from 'vitest';
import { binGrid } from '../../src/atlas/grid.js';
import { PatchAtlasError } from '../../src/errors.js';

describe('binGrid', () => {
  // grid 4: cell width 0.25
  const xy = Float32Array.from([
    0.1, 0.1, // 0 → (0, 0)
    0.2, 0.05, // 1 → (0, 0)
    0.24, 0.2, // 2 → (0, 0)
    0.6, 0.9, // 3 → (2, 3)
    1.0, 1.0, // 4 → (3, 3): the upper edge belongs to the last cell
    0.99, 0.76, // 5 → (3, 3)
    0.5, 0.5, // 6 → (2, 2)
  ]);

  it('counts points per cell, with centres and ascending layout rows', () => {
    const cells = binGrid(xy, 4, 1);
    expect(cells.map((c) => [c.i, c.j, c.x, c.y, Array.from(c.points)])).toEqual([
      [0, 0, 0.125, 0.125, [0, 1, 2]],
      [2, 2, 0.625, 0.625, [6]],
      [2, 3, 0.625, 0.875, [3]],
      [3, 3, 0.875, 0.875, [4, 5]],
    ]);
  });

  it('keeps only cells with count ≥ min density', () => {
    expect(binGrid(xy, 4, 2).map((c) => [c.i, c.j, c.points.length])).toEqual([[0, 0, 3], [3, 3, 2]]);
    expect(binGrid(xy, 4, 3).map((c) => [c.i, c.j])).toEqual([[0, 0]]);
  });

  it('fails with EMPTY_ATLAS naming the grid and min density, and suggesting the fix', () => {
    let err: unknown;
    try {
      binGrid(xy, 4, 10);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PatchAtlasError);
    const e = err as PatchAtlasError;
    expect(e.code).toBe('EMPTY_ATLAS');
    expect(e.message).toContain('4×4');
    expect(e.message).toContain('--min-density 10');
    expect(e.message).toContain('fullest cell: 3');
    expect(e.message).toMatch(/smaller --grid or --min-density/);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('rejects a bad grid size as a flag error', () => {
    expect(() => binGrid(xy, 0, 1)).toThrow(/--grid/);
  });
});
