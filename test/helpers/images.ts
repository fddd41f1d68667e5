import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';

/**
 * Test images generated on the fly with sharp, so no binary fixtures live in git.
 * Each helper writes one file and returns its path.
 */

export type RGB = [r: number, g: number, b: number];

export async function makeTempDir(prefix = 'pa-data-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

async function ensureDir(path: string): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  return path;
}

/** Raw RGB(A) pixels from a per-pixel function, as a sharp input. */
export function rawImage(width: number, height: number, channels: 3 | 4, px: (x: number, y: number) => number[]): Sharp {
  const buf = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const v = px(x, y);
      for (let c = 0; c < channels; c++) buf[(y * width + x) * channels + c] = v[c]!;
    }
  return sharp(buf, { raw: { width, height, channels } });
}

export function solid(width: number, height: number, rgb: RGB): Sharp {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
}

export async function writeJpeg(path: string, width: number, height: number, rgb: RGB = [200, 60, 30]): Promise<string> {
  await solid(width, height, rgb).jpeg({ quality: 95 }).toFile(await ensureDir(path));
  return path;
}

/** PNG whose left half is opaque `rgb` and right half fully transparent over hidden black. */
export async function writeAlphaPng(path: string, width: number, height: number, rgb: RGB): Promise<string> {
  await rawImage(width, height, 4, (x) => (x < width / 2 ? [...rgb, 255] : [0, 0, 0, 0]))
    .png()
    .toFile(await ensureDir(path));
  return path;
}

export async function write16BitPng(path: string, width: number, height: number, rgb: RGB): Promise<string> {
  await solid(width, height, rgb).toColourspace('rgb16').png().toFile(await ensureDir(path));
  return path;
}

/** Single-channel 8-bit greyscale PNG of one grey level. */
export async function writeGreyPng(path: string, width: number, height: number, level: number): Promise<string> {
  await solid(width, height, [level, level, level]).toColourspace('b-w').png().toFile(await ensureDir(path));
  return path;
}

/** Two-channel greyscale + alpha PNG (grey `level` at alpha `alpha`/255). */
export async function writeGreyAlphaPng(path: string, width: number, height: number, level: number, alpha: number): Promise<string> {
  await rawImage(width, height, 4, () => [level, level, level, alpha])
    .toColourspace('b-w')
    .png()
    .toFile(await ensureDir(path));
  return path;
}

export async function writeCmykJpeg(path: string, width: number, height: number, rgb: RGB): Promise<string> {
  await solid(width, height, rgb).toColourspace('cmyk').jpeg({ quality: 95 }).toFile(await ensureDir(path));
  return path;
}

export async function writeWebp(path: string, width: number, height: number, rgb: RGB): Promise<string> {
  await solid(width, height, rgb).webp({ lossless: true }).toFile(await ensureDir(path));
  return path;
}

/**
 * JPEG stored `width`×`height` with left half red and right half blue, tagged EXIF orientation 6
 * ("rotate 90° clockwise to display"). Displayed upright it is height×width with red on top.
 */
export async function writeRotatedJpeg(path: string, width: number, height: number): Promise<string> {
  await rawImage(width, height, 3, (x) => (x < width / 2 ? [255, 0, 0] : [0, 0, 255]))
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(await ensureDir(path));
  return path;
}

/** Green centre with `border`-wide red strips left and right: a centre crop must cut the red off. */
export async function writeBorderedPng(path: string, width: number, height: number, border: number): Promise<string> {
  await rawImage(width, height, 3, (x) => (x < border || x >= width - border ? [255, 0, 0] : [0, 255, 0]))
    .png()
    .toFile(await ensureDir(path));
  return path;
}

/** A JPEG cut to `fraction` of its bytes. Noisy content, so the cut falls inside the entropy-coded data. */
export async function writeTruncatedJpeg(path: string, width = 256, height = 256, fraction = 0.5): Promise<string> {
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
  const full = await rawImage(width, height, 3, () => [rnd(), rnd(), rnd()]).jpeg({ quality: 90 }).toBuffer();
  await writeFile(await ensureDir(path), full.subarray(0, Math.floor(full.length * fraction)));
  return path;
}

export async function writeText(path: string, text = 'this is not an image\n'): Promise<string> {
  await writeFile(await ensureDir(path), text);
  return path;
}

export async function writeEmpty(path: string): Promise<string> {
  await writeFile(await ensureDir(path), Buffer.alloc(0));
  return path;
}

/**
 * A valid PNG header declaring width×height with no real pixel data: enough for a header-only
 * size check, without spending the time and memory to encode a huge image.
 */
export async function writeHugeHeaderPng(path: string, width: number, height: number): Promise<string> {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  await writeFile(await ensureDir(path), png);
  return path;
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/** Copy a file (for building dataset layouts from one generated image). */
export async function copyTo(src: string, dest: string): Promise<string> {
  await writeFile(await ensureDir(dest), await readFile(src));
  return dest;
}

/** Pixel (r,g,b) at (x,y) of an HWC RGB buffer. */
export function pixelAt(data: Uint8Array, width: number, x: number, y: number): RGB {
  const i = (y * width + x) * 3;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

/** Largest per-channel distance between every pixel and `rgb`. */
export function maxDiff(data: Uint8Array, rgb: RGB): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) m = Math.max(m, Math.abs(data[i]! - rgb[i % 3]!));
  return m;
}

/** Largest per-channel distance between two colours. */
export function rgbDiff(a: RGB, b: RGB): number {
  return Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]));
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A big JPEG (e.g. 10,000 × 10,000) of Gaussian noise, so the decoder has real entropy to chew on,
 * with a red band across the stored top tenth to show where the top ends up; optional EXIF
 * orientation. Written by a child process so the test process's RSS only shows decoding, and
 * with optimiseCoding off so the encoder streams (~85 MB) instead of buffering the whole image.
 */
export function writeLargeJpeg(path: string, width: number, height: number, orientation = 0): string {
  const script = `
    import sharp from 'sharp';
    const path = process.argv[1];
    const [w, h, o] = process.argv.slice(2).map(Number);
    const t = Math.min(1000, w, h);
    const tile = await sharp({ create: { width: t, height: t, channels: 3, noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png().toBuffer();
    const band = await sharp({ create: { width: w, height: Math.round(h / 10), channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
    let img = sharp(tile)
      .extend({ right: w - t, bottom: h - t, extendWith: 'repeat' })
      .composite([{ input: band, top: 0, left: 0 }])
      .jpeg({ quality: 90, optimiseCoding: false });
    if (o) img = img.withMetadata({ orientation: o });
    await img.toFile(path);
  `;
  execFileSync(process.execPath, ['--input-type=module', '-e', script, path, String(width), String(height), String(orientation)], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  return path;
}
