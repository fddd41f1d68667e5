/** PNG files of rendered icons, and the atlas picture: icons composited on a grid (lucid's make_canvas). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { writeFileAtomic } from '../util/atomic.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

/** Raw RGB bytes [H, W, 3] → PNG. */
export async function pngFromRgb(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  if (rgb.length !== width * height * 3) throw new Error(`pngFromRgb: ${rgb.length} bytes is not ${width}×${height}×3`);
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Write one RGB image as a PNG (atomically: readers never see half a file). */
export async function writePng(path: string, rgb: Uint8Array, width: number, height: number): Promise<void> {
  await writeFileAtomic(path, await pngFromRgb(rgb, width, height));
}

/** Write each image as `<dir>/<name(i)>.png` (default icon-0000.png …); returns the paths. */
export async function writeIcons(
  dir: string,
  images: readonly Uint8Array[],
  width: number,
  height: number,
  name: (i: number) => string = (i) => `icon-${String(i).padStart(4, '0')}`,
): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < images.length; i++) {
    const path = join(dir, `${name(i)}.png`);
    await writePng(path, images[i]!, width, height);
    paths.push(path);
  }
  return paths;
}

export interface AtlasIcon {
  /** Column (x), 0 … cols−1. */
  i: number;
  /** Row (y), 0 … rows−1. */
  j: number;
  /** Raw RGB bytes of iconSize × iconSize (or an encoded PNG of any size, resized to fit); absent: the cell stays blank. */
  png?: Uint8Array;
}

export interface AtlasPictureOptions {
  /** Captions drawn at the bottom of their cells. */
  labels?: ReadonlyArray<{ i: number; j: number; text: string }>;
  /** Blank colour (default white, as lucid's make_canvas). */
  background?: [number, number, number];
}

const isPng = (b: Uint8Array) => b.length > 8 && PNG_MAGIC.every((m, k) => b[k] === m);

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * Compose icons into one PNG of (cols·iconSize) × (rows·iconSize); cell (i, j) has its top-left corner
 * at (i·iconSize, j·iconSize). `grid` is the side of a square grid or [cols, rows].
 */
export async function atlasPicture(icons: readonly AtlasIcon[], grid: number | [number, number], iconSize: number, opts: AtlasPictureOptions = {}): Promise<Buffer> {
  const [cols, rows] = typeof grid === 'number' ? [grid, grid] : grid;
  if (!(cols >= 1 && rows >= 1 && iconSize >= 1)) throw new Error(`atlasPicture: bad grid ${cols}×${rows} or icon size ${iconSize}`);
  const [r, g, b] = opts.background ?? [255, 255, 255];
  const layers: OverlayOptions[] = [];
  for (const icon of icons) {
    if (!icon.png) continue;
    if (icon.i < 0 || icon.i >= cols || icon.j < 0 || icon.j >= rows) throw new Error(`atlasPicture: cell (${icon.i}, ${icon.j}) is outside the ${cols}×${rows} grid`);
    let input: Buffer;
    if (isPng(icon.png)) {
      input = await sharp(icon.png).resize(iconSize, iconSize, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    } else {
      if (icon.png.length !== iconSize * iconSize * 3) throw new Error(`atlasPicture: icon (${icon.i}, ${icon.j}) has ${icon.png.length} bytes, expected ${iconSize}×${iconSize}×3`);
      input = Buffer.from(icon.png.buffer, icon.png.byteOffset, icon.png.byteLength);
    }
    layers.push({ input, raw: { width: iconSize, height: iconSize, channels: 3 }, left: icon.i * iconSize, top: icon.j * iconSize });
  }
  if (opts.labels?.length) {
    // One SVG overlay for all captions, each in a nested <svg> the size of its cell so long text is clipped to
    // the cell; librsvg renders it (text needs a system font, otherwise it is just omitted).
    const font = Math.max(8, Math.round(iconSize / 8));
    const texts = opts.labels
      .map(
        (l) =>
          `<svg x="${l.i * iconSize}" y="${l.j * iconSize}" width="${iconSize}" height="${iconSize}">` +
          `<text x="${iconSize / 2}" y="${iconSize - font / 3}" font-size="${font}" text-anchor="middle" font-family="sans-serif" fill="black" stroke="white" stroke-width="${font / 6}" paint-order="stroke">${escapeXml(l.text)}</text></svg>`,
      )
      .join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${cols * iconSize}" height="${rows * iconSize}">${texts}</svg>`;
    layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  }
  return sharp({ create: { width: cols * iconSize, height: rows * iconSize, channels: 3, background: { r, g, b } } })
    .composite(layers)
    .png()
    .toBuffer();
}

/** The atlas picture from icon files (cells whose file is missing stay blank), written atomically. */
export async function writeAtlasPicture(path: string, icons: ReadonlyArray<{ i: number; j: number; file: string }>, grid: number, iconPx: number): Promise<void> {
  const present = icons.filter((c) => existsSync(c.file)).map((c) => ({ i: c.i, j: c.j, png: readFileSync(c.file) }));
  await writeFileAtomic(path, await atlasPicture(present, grid, iconPx));
}
