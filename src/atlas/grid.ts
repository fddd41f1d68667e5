/**
 * Binning (article §3, lucid's `bin_laid_out_activations`): cut the unit square into grid × grid
 * cells and keep the cells dense enough for their mean activation to mean something.
 */
import { PatchAtlasError } from '../errors.js';

export interface Cell {
  /** Column, along x: 0 … grid−1. */
  i: number;
  /** Row, along y: 0 … grid−1. */
  j: number;
  /** Cell centre in [0, 1]. */
  x: number;
  y: number;
  /** Indices into the layout rows, ascending. */
  points: Int32Array;
}

/**
 * Bins a normalised layout ([n × 2] in [0, 1]; x = 1 falls in the last column) and keeps cells
 * with count ≥ minDensity, ordered by column then row. Throws EMPTY_ATLAS when none is kept:
 * an atlas without cells is always a parameter problem the user can fix.
 */
export function binGrid(xy: Float32Array, grid: number, minDensity: number): Cell[] {
  if (!Number.isInteger(grid) || grid < 1) throw new PatchAtlasError('BAD_FLAG', `--grid must be a positive integer, got ${grid}`);
  if (!(minDensity >= 0)) throw new PatchAtlasError('BAD_FLAG', `--min-density must be ≥ 0, got ${minDensity}`);
  const n = xy.length / 2;
  if (!Number.isInteger(n)) throw new Error(`binGrid: ${xy.length} values is not [n × 2]`);
  const cellOf = new Int32Array(n);
  const counts = new Int32Array(grid * grid);
  for (let r = 0; r < n; r++) {
    const x = xy[2 * r]!;
    const y = xy[2 * r + 1]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error(`binGrid: layout row ${r} is not finite`);
    const c = bin(x, grid) * grid + bin(y, grid);
    cellOf[r] = c;
    counts[c]!++;
  }
  const members: Int32Array[] = [];
  const fill = new Int32Array(grid * grid);
  for (let c = 0; c < counts.length; c++) if (counts[c]! > 0 && counts[c]! >= minDensity) members[c] = new Int32Array(counts[c]!);
  for (let r = 0; r < n; r++) {
    const m = members[cellOf[r]!];
    if (m) m[fill[cellOf[r]!]!++] = r;
  }
  const cells: Cell[] = [];
  for (let c = 0; c < counts.length; c++) {
    const points = members[c];
    if (!points) continue;
    const i = Math.floor(c / grid);
    const j = c % grid;
    cells.push({ i, j, x: (i + 0.5) / grid, y: (j + 0.5) / grid, points });
  }
  if (cells.length === 0) {
    const fullest = counts.reduce((m, v) => Math.max(m, v), 0);
    throw new PatchAtlasError(
      'EMPTY_ATLAS',
      `no cell of the ${grid}×${grid} grid holds at least --min-density ${minDensity} of the ${n} points (fullest cell: ${fullest})`,
      'use a smaller --grid or --min-density, or collect more points',
    );
  }
  return cells;
}

/** Values outside [0, 1] are clamped to the edge cells, as lucid does. */
function bin(v: number, grid: number): number {
  return Math.min(grid - 1, Math.max(0, Math.floor(v * grid)));
}
