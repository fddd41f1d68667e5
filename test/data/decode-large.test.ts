import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PREPROCESS, decodeImage, type DecodedImage } from '../../src/data/decode.js';
import { makeTempDir, maxDiff, pixelAt, removeDir, rgbDiff, writeLargeJpeg } from '../helpers/images.js';

/**
 * Huge inputs must decode in bounded memory (JPEG shrink-on-load + sequential read). This file
 * runs in its own worker and writes the big JPEGs from a child process, so only the decoder's
 * footprint shows in this process's RSS.
 */
// Measured here (node 20, sharp 0.35, fresh worker): +68 MB for the 10k×10k noise JPEG, +37 MB for
// the rotated one. A full 10k×10k RGB raster alone is 300 MB, and a pipeline that rotates before
// shrinking measured +255 MB, so this bound catches losing shrink-on-load.
const RSS_BOUND_MB = 150;

let dir: string;
let plain: string;
let rotated: string;

async function decodeMeasured(path: string): Promise<{ img: DecodedImage; growthMb: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  // libvips decodes on worker threads, so the event loop is free to sample RSS meanwhile.
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 1);
  try {
    const img = await decodeImage(path, DEFAULT_PREPROCESS);
    peak = Math.max(peak, process.memoryUsage().rss);
    return { img, growthMb: (peak - before) / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

beforeAll(async () => {
  dir = await makeTempDir('pa-large-');
  plain = join(dir, 'big.jpg');
  rotated = join(dir, 'big-rot6.jpg');
  writeLargeJpeg(plain, 10_000, 10_000);
  writeLargeJpeg(rotated, 10_000, 6_000, 6);
});
afterAll(async () => {
  await removeDir(dir);
});

describe('decodeImage on 10,000-pixel JPEGs', () => {
  it('decodes a 10,000 × 10,000 JPEG with moderate RSS growth', async () => {
    const { img, growthMb } = await decodeMeasured(plain);
    console.log(`10k×10k JPEG: peak RSS growth ${growthMb.toFixed(0)} MB`);
    expect([img.height, img.width]).toEqual([224, 224]);
    expect([img.sourceWidth, img.sourceHeight]).toEqual([10_000, 10_000]);
    // Crop rows 16..240 of 256: the red band (top 25.6 rows) shows in the first ~9; below it the
    // noise averages out to mid grey when shrunk 39×.
    expect(rgbDiff(pixelAt(img.data, 224, 112, 2), [255, 0, 0])).toBeLessThanOrEqual(40);
    expect(maxDiff(img.data.subarray(20 * 224 * 3), [128, 128, 128])).toBeLessThanOrEqual(40);
    expect(growthMb).toBeLessThan(RSS_BOUND_MB);
  });

  it('keeps memory bounded when EXIF orientation 6 rotates a 10,000 × 6,000 JPEG', async () => {
    const { img, growthMb } = await decodeMeasured(rotated);
    console.log(`10k×6k JPEG, orientation 6: peak RSS growth ${growthMb.toFixed(0)} MB`);
    expect([img.sourceWidth, img.sourceHeight]).toEqual([6_000, 10_000]);
    // Rotated clockwise, the stored top band is now the right-hand edge: 256 wide × 427 high,
    // crop columns 16..240; the band is the last 25.6 columns, so visible at the right.
    expect(rgbDiff(pixelAt(img.data, 224, 222, 112), [255, 0, 0])).toBeLessThanOrEqual(40);
    expect(rgbDiff(pixelAt(img.data, 224, 2, 112), [128, 128, 128])).toBeLessThanOrEqual(40);
    expect(growthMb).toBeLessThan(RSS_BOUND_MB);
  });

  it("accepts images above sharp's default 268-Mpx limit (ours is 20000×20000)", async () => {
    const p = join(dir, 'over-default.jpg');
    writeLargeJpeg(p, 17_000, 16_000); // 272 Mpx
    const img = await decodeImage(p, DEFAULT_PREPROCESS);
    expect([img.sourceWidth, img.sourceHeight, img.data.length]).toEqual([17_000, 16_000, 224 * 224 * 3]);
  });
});

describe('decodeImage on extreme aspect ratios (tiny files, huge resize)', () => {
  // A 1×N image resized so its shorter side is 256 would be N·256 wide: 1×100000 is a 275-byte PNG that asked
  // for 18 GB. Only the centre crop is kept, so the region it covers is cut out first.
  // 1 px thin: the crop covers under a pixel of the long axis, so it is the centre pixel, ⌊(n − 1)/2⌋ (the last
  // red one), throughout; 3 px thin: about 2.6 px around the centre, red then blue.
  for (const [w, h, first, last] of [[100_000, 1, 'red', 'red'], [1, 100_000, 'red', 'red'], [8000, 1, 'red', 'red'], [3, 20_000, 'red', 'blue']] as const) {
    it(`decodes a ${w}×${h} PNG to 224×224 within the memory bound, keeping its colours`, async () => {
      const path = join(dir, `strip-${w}x${h}.png`);
      // Left half red, right half blue (along the long side): the centre crop straddles the boundary.
      const long = Math.max(w, h);
      const raw = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set((w > h ? x : y) < long / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
      await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
      const { img, growthMb } = await decodeMeasured(path);
      expect([img.height, img.width]).toEqual([224, 224]);
      expect([img.sourceWidth, img.sourceHeight]).toEqual([w, h]);
      const along = (k: number) => (w > h ? pixelAt(img.data, 224, k, 112) : pixelAt(img.data, 224, 112, k));
      const rgb = { red: [255, 0, 0], blue: [0, 0, 255] } as const;
      expect(rgbDiff(along(2), [...rgb[first]])).toBeLessThanOrEqual(40);
      expect(rgbDiff(along(221), [...rgb[last]])).toBeLessThanOrEqual(40);
      expect(growthMb).toBeLessThan(RSS_BOUND_MB);
    });
  }
});

