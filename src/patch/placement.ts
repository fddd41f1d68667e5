import { PatchAtlasError } from '../errors.js';
import { mulberry32 } from '../util/random.js';
import { closest } from '../util/suggest.js';

/**
 * Where a square patch goes on an image. `x`, `y`, `side` are whole pixels (the unrotated square is
 * columns x..x+side-1, rows y..y+side-1); `rotation` turns it about its centre (degrees, clockwise as
 * displayed); `circular` keeps only the pixels whose centres lie within the inscribed circle.
 * `size` is the fraction of the image's shorter side the patch was asked to cover.
 */
export interface Placement {
  /** Unique within a list, e.g. "top-left@0.3"; the column name in a success matrix. */
  id: string;
  kind: 'corner' | 'centre' | 'random';
  corner?: Corner;
  size: number;
  x: number;
  y: number;
  side: number;
  rotation: number;
  circular: boolean;
}

export type Corner = 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';
export type Position = Corner | 'centre';

export const CORNERS: readonly Corner[] = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];
export const POSITIONS: readonly Position[] = [...CORNERS, 'centre'];
export const DEFAULT_SIZES: readonly number[] = [0.2, 0.3, 0.4];

/** US spelling accepted on input; ids always use "centre". */
const ALIASES: Record<string, Position> = { center: 'centre' };

/** Patch side in pixels for a fraction of the shorter image side: at least 1 px, at most the side. */
export function sideFor(imageSize: readonly [number, number], size: number): number {
  const m = Math.min(imageSize[0], imageSize[1]);
  return Math.min(m, Math.max(1, Math.round(size * m)));
}

/**
 * Every (position, size) pair, positions outer, sizes inner, in the order given: deterministic, so a
 * success matrix's columns line up between runs. Sizes and names are checked before anything is built.
 */
export function gridPlacements(
  imageSize: readonly [number, number],
  sizes: readonly number[] = DEFAULT_SIZES,
  positions: readonly string[] = POSITIONS,
  opts: { circular?: boolean } = {},
): Placement[] {
  checkImageSize(imageSize);
  const okSizes = checkSizes(sizes);
  const okPositions = checkPositions(positions);
  const [h, w] = imageSize;
  const circular = opts.circular ?? false;
  const out: Placement[] = [];
  for (const pos of okPositions) {
    for (const size of okSizes) {
      const side = sideFor(imageSize, size);
      const right = w - side;
      const bottom = h - side;
      const [x, y] =
        pos === 'top-left' ? [0, 0]
        : pos === 'top-right' ? [right, 0]
        : pos === 'bottom-left' ? [0, bottom]
        : pos === 'bottom-right' ? [right, bottom]
        // Odd leftovers put the extra pixel right/below, as sharp's 'centre' gravity does.
        : [Math.floor(right / 2), Math.floor(bottom / 2)];
      out.push({
        id: `${pos}@${size}${circular ? '/circle' : ''}`,
        kind: pos === 'centre' ? 'centre' : 'corner',
        ...(pos === 'centre' ? {} : { corner: pos }),
        size,
        x,
        y,
        side,
        rotation: 0,
        circular,
      });
    }
  }
  return out;
}

export interface RandomPlacementOptions {
  /** Draw the size from this list (uniformly)… */
  sizes?: readonly number[];
  /** …or uniformly from [lo, hi]. Default [0.1, 1] (IBM ART's AdversarialPatch scale range). */
  sizeRange?: readonly [number, number];
  /** Rotation drawn uniformly from [-maxRotation, maxRotation] degrees (default 0). */
  maxRotation?: number;
  seed: number;
  circular?: boolean;
}

/**
 * `n` random placements for expectation-over-transformation evaluation, reproducible from `seed`.
 * Every patch pixel lands on the image: the position is drawn so the rotated square's bounding box
 * fits, and a patch too large to fit at its rotation is shrunk (its `size` then records the side
 * actually used), rather than letting corners fall off the image and silently shrink the patch.
 */
export function randomPlacements(imageSize: readonly [number, number], n: number, opts: RandomPlacementOptions): Placement[] {
  checkImageSize(imageSize);
  if (!Number.isInteger(n) || n < 1) throw new PatchAtlasError('BAD_FLAG', `number of random placements must be a whole number ≥ 1, got ${n}`);
  if (opts.sizes !== undefined && opts.sizeRange !== undefined) {
    throw new PatchAtlasError('BAD_FLAG', 'give patch sizes or a size range, not both');
  }
  const sizes = opts.sizes !== undefined ? checkSizes(opts.sizes) : undefined;
  const [lo, hi] = opts.sizeRange ?? [0.1, 1];
  if (!sizes) {
    checkSizes([lo, hi]);
    if (lo > hi) throw new PatchAtlasError('BAD_FLAG', `patch size range ${lo}..${hi} is empty`, 'give the smaller size first');
  }
  const maxRotation = opts.maxRotation ?? 0;
  if (!(Number.isFinite(maxRotation) && maxRotation >= 0 && maxRotation <= 180)) {
    throw new PatchAtlasError('BAD_FLAG', `maximum patch rotation ${maxRotation} must be between 0 and 180 degrees`);
  }
  if (!Number.isFinite(opts.seed)) throw new PatchAtlasError('BAD_FLAG', `seed must be a number, got ${opts.seed}`);

  const [h, w] = imageSize;
  const m = Math.min(h, w);
  const rnd = mulberry32(opts.seed);
  const circular = opts.circular ?? false;
  const out: Placement[] = [];
  for (let i = 0; i < n; i++) {
    let size = sizes ? sizes[Math.floor(rnd() * sizes.length)]! : lo + (hi - lo) * rnd();
    const rotation = maxRotation === 0 ? 0 : (2 * rnd() - 1) * maxRotation;
    const t = (rotation * Math.PI) / 180;
    // The rotated square's half-extent along x and y is side/2 · (|cos| + |sin|).
    // Rounded so 90° (cos = 6e-17) does not cost a pixel of room to floating-point noise.
    const spread = Math.round((Math.abs(Math.cos(t)) + Math.abs(Math.sin(t))) * 1e9) / 1e9;
    let side = sideFor(imageSize, size);
    const range = (s: number, extent: number) => {
      const e = (s / 2) * spread;
      return [Math.ceil(e - s / 2), Math.floor(extent - s / 2 - e)] as const;
    };
    const fits = (s: number) => range(s, w)[0] <= range(s, w)[1] && range(s, h)[0] <= range(s, h)[1];
    if (!fits(side)) {
      side = Math.min(side, Math.floor(m / spread) + 1);
      while (side > 1 && !fits(side)) side--;
      size = side / m;
    }
    const [x0, x1] = range(side, w);
    const [y0, y1] = range(side, h);
    const x = Math.max(0, x0) + Math.floor(rnd() * Math.max(1, x1 - x0 + 1));
    const y = Math.max(0, y0) + Math.floor(rnd() * Math.max(1, y1 - y0 + 1));
    const r3 = (v: number) => Math.round(v * 1000) / 1000;
    out.push({
      id: `random-${i}@${r3(size)}${rotation ? `r${r3(rotation)}` : ''}${circular ? '/circle' : ''}`,
      kind: 'random',
      size,
      x,
      y,
      side,
      rotation,
      circular,
    });
  }
  return out;
}

/** Sizes as fractions in (0, 1], duplicates dropped (they would only repeat a column). */
export function checkSizes(sizes: readonly number[]): number[] {
  if (sizes.length === 0) throw new PatchAtlasError('BAD_FLAG', 'no patch sizes given', 'e.g. 0.2,0.3,0.4 (fractions of the image side)');
  for (const s of sizes) {
    if (!(typeof s === 'number' && Number.isFinite(s) && s > 0 && s <= 1)) {
      throw new PatchAtlasError(
        'BAD_FLAG',
        `patch size ${String(s)} is not a fraction of the image side in (0, 1]`,
        typeof s === 'number' && s > 1 && s <= 100 ? `for ${s} % write ${s / 100}` : 'e.g. 0.2,0.3,0.4',
      );
    }
  }
  return [...new Set(sizes)];
}

/** Position names, "center" read as "centre", duplicates dropped. */
export function checkPositions(positions: readonly string[]): Position[] {
  if (positions.length === 0) throw new PatchAtlasError('BAD_FLAG', 'no patch positions given', `valid: ${POSITIONS.join(', ')}`);
  const out: Position[] = [];
  for (const raw of positions) {
    const name = raw.trim().toLowerCase();
    const pos = ALIASES[name] ?? (POSITIONS as readonly string[]).find((p) => p === name);
    if (!pos) {
      const near = closest(name, POSITIONS, 1);
      throw new PatchAtlasError(
        'BAD_FLAG',
        `unknown patch position "${raw}"${near.length ? ` (did you mean "${near[0]}"?)` : ''}`,
        `valid: ${POSITIONS.join(', ')}`,
      );
    }
    if (!out.includes(pos as Position)) out.push(pos as Position);
  }
  return out;
}

function checkImageSize(imageSize: readonly [number, number]): void {
  const [h, w] = imageSize;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1)) {
    throw new PatchAtlasError('BAD_FLAG', `image size ${h}×${w} must be whole numbers of pixels ≥ 1`);
  }
}
