import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { atlasPicture, pngFromRgb, writeIcons } from '../../src/data/png.js';

const solid = (n: number, rgb: [number, number, number]) => {
  const b = new Uint8Array(n * n * 3);
  for (let k = 0; k < n * n; k++) b.set(rgb, k * 3);
  return b;
};

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, info, at: (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)) };
}

describe('icons and the atlas picture', () => {
  it('writes icons as PNGs that read back to the same pixels', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-fv-icons-'));
    const gradient = Uint8Array.from({ length: 4 * 5 * 3 }, (_, k) => (k * 7) % 256);
    const paths = await writeIcons(dir, [gradient, solid(5, [1, 2, 3]).subarray(0, 60)], 5, 4);
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(['icon-0000.png', 'icon-0001.png']);
    const { data, info } = await sharp(paths[0]!).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([5, 4, 3]);
    expect(Array.from(data)).toEqual(Array.from(gradient));
  });

  it('composes a grid: size = grid × iconSize, icons land in their cells, empty cells stay blank', async () => {
    const size = 8;
    const red = solid(size, [255, 0, 0]);
    // A patterned icon, to check orientation inside its cell (not only the colour).
    const pattern = solid(size, [0, 0, 255]);
    pattern.set([0, 255, 0], (1 * size + 6) * 3); // (x 6, y 1) green
    const bluePng = await pngFromRgb(pattern, size, size);
    const png = await atlasPicture(
      [
        { i: 0, j: 0, png: red },
        { i: 2, j: 1, png: new Uint8Array(bluePng) },
        { i: 1, j: 1 }, // no image: blank
      ],
      [3, 2],
      size,
      // A caption wider than its cell is clipped to it (the cells on either side are checked below).
      { labels: [{ i: 1, j: 0, text: 'a <long> label & more' }] },
    );
    const p = await pixels(png);
    expect([p.info.width, p.info.height]).toEqual([24, 16]);
    expect(p.at(3, 1)).toEqual([255, 0, 0]);
    expect(p.at(2 * size + 3, size + 4)).toEqual([0, 0, 255]);
    expect(p.at(2 * size + 6, size + 1)).toEqual([0, 255, 0]);
    expect(p.at(size - 1, size - 2)).toEqual([255, 0, 0]);
    expect(p.at(2 * size, size - 2)).toEqual([255, 255, 255]);
    for (const [x, y] of [[size + 3, size + 3], [size + 4, size + 4], [size + 7, size + 7]]) expect(p.at(x!, y!)).toEqual([255, 255, 255]);
  });

  it('square grids and a custom background; rejects wrong-size icons and cells outside the grid', async () => {
    const png = await atlasPicture([], 4, 6, { background: [10, 20, 30] });
    const p = await pixels(png);
    expect([p.info.width, p.info.height]).toEqual([24, 24]);
    expect(p.at(13, 13)).toEqual([10, 20, 30]);
    await expect(atlasPicture([{ i: 0, j: 0, png: new Uint8Array(5) }], 2, 6)).rejects.toThrow(/6×6×3/);
    await expect(atlasPicture([{ i: 2, j: 0, png: solid(6, [0, 0, 0]) }], 2, 6)).rejects.toThrow(/outside/);
  });
});
