import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PREPROCESS, decodeImage, toFloatBatch, type DecodedImage, type Preprocess } from '../../src/data/decode.js';
import { PatchAtlasError } from '../../src/errors.js';
import {
  makeTempDir,
  maxDiff,
  pixelAt,
  removeDir,
  rgbDiff,
  write16BitPng,
  writeAlphaPng,
  writeBorderedPng,
  writeCmykJpeg,
  writeEmpty,
  writeGreyAlphaPng,
  writeGreyPng,
  writeHugeHeaderPng,
  writeJpeg,
  writeRotatedJpeg,
  writeText,
  writeTruncatedJpeg,
  writeWebp,
} from '../helpers/images.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir();
});
afterAll(async () => {
  await removeDir(dir);
});

/** Same size in and out: no resampling, so pixel values can be checked exactly. */
const exact = (h: number, w: number): Preprocess => ({ size: [h, w], resizeShorter: null });

async function expectBadImage(path: string, reason: RegExp): Promise<PatchAtlasError> {
  const err = await decodeImage(path, DEFAULT_PREPROCESS).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PatchAtlasError);
  const e = err as PatchAtlasError;
  expect(e.code).toBe('BAD_IMAGE');
  expect(e.message.startsWith(`cannot read image ${path}: `)).toBe(true);
  expect(e.message).toMatch(reason);
  expect(e.message).not.toContain('\n');
  return e;
}

describe('decodeImage: formats and colour', () => {
  it('decodes an RGB JPEG to 224×224×3 uint8 with the default preprocessing', async () => {
    const p = await writeJpeg(join(dir, 'rgb.jpg'), 300, 200, [200, 60, 30]);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect([img.height, img.width]).toEqual([224, 224]);
    expect(img.data).toBeInstanceOf(Uint8Array);
    expect(img.data.length).toBe(224 * 224 * 3);
    expect([img.sourceWidth, img.sourceHeight]).toEqual([300, 200]);
    expect(maxDiff(img.data, [200, 60, 30])).toBeLessThanOrEqual(3);
  });

  it('flattens alpha onto white (transparent pixels hide black, which must not show)', async () => {
    const p = await writeAlphaPng(join(dir, 'alpha.png'), 64, 32, [255, 0, 0]);
    const img = await decodeImage(p, exact(32, 64));
    expect(img.data.length).toBe(32 * 64 * 3);
    expect(pixelAt(img.data, 64, 5, 10)).toEqual([255, 0, 0]);
    expect(pixelAt(img.data, 64, 31, 31)).toEqual([255, 0, 0]);
    expect(pixelAt(img.data, 64, 32, 0)).toEqual([255, 255, 255]);
    expect(pixelAt(img.data, 64, 60, 20)).toEqual([255, 255, 255]);
  });

  it('converts 16-bit PNG to 8-bit', async () => {
    for (const rgb of [
      [255, 0, 0],
      [200, 100, 50],
    ] as const) {
      const p = await write16BitPng(join(dir, `deep-${rgb.join('-')}.png`), 40, 30, [...rgb]);
      const img = await decodeImage(p, exact(30, 40));
      expect(img.data.length).toBe(30 * 40 * 3);
      expect(maxDiff(img.data, [...rgb])).toBeLessThanOrEqual(1);
    }
  });

  it('expands 1-channel greyscale to 3 equal channels', async () => {
    const p = await writeGreyPng(join(dir, 'grey.png'), 40, 30, 100);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect(img.data.length).toBe(224 * 224 * 3);
    expect(maxDiff(img.data, [100, 100, 100])).toBeLessThanOrEqual(1);
  });

  it('flattens 2-channel greyscale + alpha onto white', async () => {
    const p = await writeGreyAlphaPng(join(dir, 'grey-alpha.png'), 40, 30, 128, 128);
    const img = await decodeImage(p, exact(30, 40));
    // 128 at half opacity over 255: about 191.
    expect(maxDiff(img.data, [191, 191, 191])).toBeLessThanOrEqual(2);
  });

  it('converts CMYK JPEG to sRGB (red stays red, not inverted or 4-channel)', async () => {
    const p = await writeCmykJpeg(join(dir, 'cmyk.jpg'), 64, 48, [255, 0, 0]);
    const img = await decodeImage(p, exact(48, 64));
    expect(img.data.length).toBe(48 * 64 * 3);
    // sRGB red → CMYK → sRGB loses some gamut (≈ 232,0,0): accept a clearly red result.
    const [r, g, b] = pixelAt(img.data, 64, 32, 24);
    expect(r).toBeGreaterThan(200);
    expect(g).toBeLessThan(40);
    expect(b).toBeLessThan(40);
  });

  it('decodes WebP', async () => {
    const p = await writeWebp(join(dir, 'x.webp'), 50, 40, [10, 200, 90]);
    const img = await decodeImage(p, exact(40, 50));
    expect(maxDiff(img.data, [10, 200, 90])).toBe(0);
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise) before sizing and cropping', async () => {
    // Stored 80 wide × 40 high, left half red, right half blue; upright it is 40 × 80, red on top.
    const p = await writeRotatedJpeg(join(dir, 'rot6.jpg'), 80, 40);
    const img = await decodeImage(p, exact(80, 40));
    expect([img.sourceWidth, img.sourceHeight]).toEqual([40, 80]);
    for (const [x, y, want] of [
      [20, 5, [255, 0, 0]],
      [5, 30, [255, 0, 0]],
      [20, 75, [0, 0, 255]],
      [35, 50, [0, 0, 255]],
    ] as const) {
      expect(rgbDiff(pixelAt(img.data, 40, x, y), [...want])).toBeLessThanOrEqual(12);
    }
  });
});

describe('decodeImage: geometry', () => {
  it('centre-crops after resizing the shorter side: side borders are cut off', async () => {
    // 400×256 with 40 px red strips at left and right; shorter side is already 256, crop 224
    // starts at x = 88, well inside the green.
    const p = await writeBorderedPng(join(dir, 'border.png'), 400, 256, 40);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect(maxDiff(img.data, [0, 255, 0])).toBe(0);
    // Control: squashing instead of cropping keeps the red.
    const squashed = await decodeImage(p, { size: [224, 224], resizeShorter: null });
    expect(pixelAt(squashed.data, 224, 0, 100)).toEqual([255, 0, 0]);
    expect(pixelAt(squashed.data, 224, 223, 100)).toEqual([255, 0, 0]);
  });

  it('crops the centre after downscaling too', async () => {
    // 800×512 → 400×256 → crop x 88..312; red ends at x 40 and starts at 360 after scaling.
    const p = await writeBorderedPng(join(dir, 'border-big.png'), 800, 512, 80);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect(maxDiff(img.data, [0, 255, 0])).toBeLessThanOrEqual(2);
    expect([img.sourceWidth, img.sourceHeight]).toEqual([800, 512]);
  });

  it('crops a tall image vertically', async () => {
    // 256 wide × 400 high: crop keeps rows 88..312, columns 16..240.
    const p = await writeJpeg(join(dir, 'tall.jpg'), 256, 400, [90, 90, 200]);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect([img.height, img.width]).toEqual([224, 224]);
    expect([img.sourceWidth, img.sourceHeight]).toEqual([256, 400]);
  });

  it('honours non-square sizes (size is [height, width])', async () => {
    const p = await writeJpeg(join(dir, 'ns.jpg'), 300, 200);
    const img = await decodeImage(p, { size: [100, 150], resizeShorter: 128 });
    expect([img.height, img.width, img.data.length]).toEqual([100, 150, 100 * 150 * 3]);
  });

  it('never crops outside the image when resizeShorter is smaller than the crop or the image is very wide', async () => {
    const p = await writeJpeg(join(dir, 'wide.jpg'), 1000, 50);
    for (const pre of [{ size: [224, 224], resizeShorter: 100 }, DEFAULT_PREPROCESS] as Preprocess[]) {
      const img = await decodeImage(p, pre);
      expect(img.data.length).toBe(224 * 224 * 3);
    }
  });

  it('upscales small images', async () => {
    const p = await writeJpeg(join(dir, 'tiny.jpg'), 8, 6, [250, 250, 10]);
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect(img.data.length).toBe(224 * 224 * 3);
    expect(maxDiff(img.data, [250, 250, 10])).toBeLessThanOrEqual(6);
  });

  it('rejects nonsense preprocessing with BAD_FLAG', async () => {
    const p = await writeJpeg(join(dir, 'pp.jpg'), 30, 30);
    await expect(decodeImage(p, { size: [0, 224], resizeShorter: 256 })).rejects.toMatchObject({ code: 'BAD_FLAG' });
    await expect(decodeImage(p, { size: [224, 224], resizeShorter: 2.5 })).rejects.toMatchObject({ code: 'BAD_FLAG' });
  });
});

describe('decodeImage: unreadable files are BAD_IMAGE', () => {
  it('truncated JPEG', async () => {
    await expectBadImage(await writeTruncatedJpeg(join(dir, 'trunc.jpg')), /truncated|premature|end of/i);
  });
  it('a JPEG cut anywhere says it is truncated (never "Unknown error")', async () => {
    const whole = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 0, g: 0, b: 0 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg({ quality: 90 }).toBuffer();
    for (const keep of [200, 700, Math.floor(whole.length / 4), Math.floor(whole.length / 2), whole.length - 10]) {
      const path = join(dir, `cut-${keep}.jpg`);
      writeFileSync(path, whole.subarray(0, keep));
      await expectBadImage(path, /file is truncated/);
    }
  });
  it('text file named .jpg', async () => {
    await expectBadImage(await writeText(join(dir, 'text.jpg')), /not an image/);
  });
  it('zero-byte file', async () => {
    await expectBadImage(await writeEmpty(join(dir, 'empty.png')), /file is empty/);
  });
  it('missing file', async () => {
    await expectBadImage(join(dir, 'nope.jpg'), /file not found/);
  });
  it('a folder', async () => {
    await expectBadImage(dir, /is a folder/);
  });
  it('an image over 20000×20000, from its header alone', async () => {
    const e = await expectBadImage(await writeHugeHeaderPng(join(dir, 'huge.png'), 30_000, 25_000), /30000×25000 pixels is over the limit of 20000×20000/);
    expect(e.message).toContain('huge.png');
  });
});

describe('toFloatBatch', () => {
  const img = (h: number, w: number, fill: (i: number) => number): DecodedImage => ({
    data: Uint8Array.from({ length: h * w * 3 }, (_, i) => fill(i)),
    height: h,
    width: w,
    sourceWidth: w,
    sourceHeight: h,
  });

  it('packs N images into one N×H×W×3 Float32Array of v/255, in order', () => {
    const a = img(2, 3, (i) => i);
    const b = img(2, 3, () => 255);
    const out = toFloatBatch([a, b]);
    expect(out).toBeInstanceOf(Float32Array);
    expect(out.length).toBe(2 * 2 * 3 * 3);
    for (let i = 0; i < 18; i++) expect(out[i]).toBeCloseTo(i / 255, 7);
    for (let i = 18; i < 36; i++) expect(out[i]).toBe(1);
    expect(toFloatBatch([img(1, 1, () => 0)])[0]).toBe(0);
  });

  it('refuses images of different sizes', () => {
    expect(() => toFloatBatch([img(2, 2, () => 0), img(2, 3, () => 0)])).toThrow(/expected 2×2/);
  });

  it('gives an empty array for no images', () => {
    expect(toFloatBatch([]).length).toBe(0);
  });
});
