import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageBatches, type Batch } from '../../src/data/batches.js';
import type { ImageItem, Skipped } from '../../src/data/dataset.js';
import type { Preprocess } from '../../src/data/decode.js';
import {
  makeTempDir,
  rawImage,
  removeDir,
  writeEmpty,
  writeJpeg,
  writeText,
  writeTruncatedJpeg,
  writeWebp,
  type RGB,
} from '../helpers/images.js';

const PRE: Preprocess = { size: [8, 8], resizeShorter: null };
let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('pa-batches-');
});
afterAll(async () => {
  await removeDir(dir);
});

/** A distinct colour per index, far enough apart to survive lossless WebP exactly. */
const colourOf = (i: number): RGB => [(i * 23) % 256, (i * 7 + 40) % 256, 255 - ((i * 11) % 256)];

async function colourItems(n: number, tag: string): Promise<ImageItem[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => ({ path: await writeWebp(join(dir, `${tag}-${String(i).padStart(3, '0')}.webp`), 8, 8, colourOf(i)) })));
}

/** The index whose colour a batch image shows (checks pixels really belong to that item). */
function indexOfImage(b: Batch, k: number): number {
  const [, h, w] = b.shape;
  const off = k * h * w * 3;
  const px = [0, 1, 2].map((c) => Math.round(b.pixels[off + c]! * 255));
  for (let i = 0; i < 1000; i++) if (colourOf(i).every((v, c) => v === px[c])) return i;
  return -1;
}

async function collect(items: ImageItem[], opts: Partial<Parameters<typeof imageBatches>[1]> = {}) {
  const skipped: Skipped[] = [];
  const batches: Batch[] = [];
  for await (const b of imageBatches(items, { pre: PRE, batchSize: 4, onSkip: (s) => skipped.push(s), ...opts })) batches.push(b);
  return { batches, skipped };
}

describe('imageBatches', () => {
  it('yields full batches then a remainder, in input order, with pixels in [0,1] of the right image', async () => {
    const items = await colourItems(10, 'order');
    const { batches, skipped } = await collect(items, { concurrency: 3 });
    expect(skipped).toEqual([]);
    expect(batches.map((b) => b.shape)).toEqual([
      [4, 8, 8, 3],
      [4, 8, 8, 3],
      [2, 8, 8, 3],
    ]);
    expect(batches.flatMap((b) => b.items)).toEqual(items);
    for (const b of batches) {
      expect(b.pixels).toBeInstanceOf(Float32Array);
      expect(b.pixels.length).toBe(b.shape[0] * 8 * 8 * 3);
      expect(Math.min(...b.pixels)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...b.pixels)).toBeLessThanOrEqual(1);
    }
    expect(batches.flatMap((b) => b.items.map((_, k) => indexOfImage(b, k)))).toEqual([...Array(10).keys()]);
  });

  it('keeps input order when early images take longer to decode than later ones', async () => {
    // A large noisy PNG first: with 4 decodes in flight, the small ones finish before it.
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
    const slow = join(dir, 'slow.png');
    await rawImage(1500, 1500, 3, () => [rnd(), rnd(), rnd()]).png().toFile(slow);
    const fast = await colourItems(6, 'fast');
    const items = [{ path: slow }, ...fast];
    const { batches } = await collect(items, { batchSize: 3, concurrency: 4 });
    expect(batches.flatMap((b) => b.items.map((i) => i.path))).toEqual(items.map((i) => i.path));
  });

  it('skips unreadable files through onSkip, never throws, and still fills batches', async () => {
    const good = await colourItems(7, 'skip');
    const bad = {
      trunc: { path: await writeTruncatedJpeg(join(dir, 'bad-trunc.jpg')) },
      text: { path: await writeText(join(dir, 'bad-text.jpg')) },
      empty: { path: await writeEmpty(join(dir, 'bad-empty.png')) },
      missing: { path: join(dir, 'bad-missing.jpg') },
    };
    const items = [bad.trunc, good[0]!, good[1]!, bad.text, good[2]!, good[3]!, good[4]!, bad.empty, good[5]!, bad.missing, good[6]!];
    const { batches, skipped } = await collect(items, { batchSize: 3 });
    expect(skipped.map((s) => s.path)).toEqual([bad.trunc.path, bad.text.path, bad.empty.path, bad.missing.path]);
    for (const s of skipped) expect(s.reason).toMatch(/^cannot read image .+: .+/);
    expect(batches.map((b) => b.shape[0])).toEqual([3, 3, 1]);
    expect(batches.flatMap((b) => b.items)).toEqual(good);
    expect(batches.flatMap((b) => b.items.map((_, k) => indexOfImage(b, k)))).toEqual([...Array(7).keys()]);
  });

  it('yields nothing when every image is unreadable, or there are none', async () => {
    const items = [{ path: await writeText(join(dir, 'only-bad.jpg')) }, { path: join(dir, 'nothing.png') }];
    const { batches, skipped } = await collect(items);
    expect(batches).toEqual([]);
    expect(skipped).toHaveLength(2);
    expect((await collect([])).batches).toEqual([]);
  });

  it('works without onSkip', async () => {
    const items = [{ path: await writeText(join(dir, 'quiet.jpg')) }, ...(await colourItems(2, 'quiet'))];
    const batches: Batch[] = [];
    for await (const b of imageBatches(items, { pre: PRE, batchSize: 8 })) batches.push(b);
    expect(batches.map((b) => b.shape[0])).toEqual([2]);
  });

  it('decodes with the real preprocessing to 224×224', async () => {
    const items = [{ path: await writeJpeg(join(dir, 'real.jpg'), 320, 240) }];
    const { batches } = await collect(items, { pre: { size: [224, 224], resizeShorter: 256 } });
    expect(batches[0]!.shape).toEqual([1, 224, 224, 3]);
    expect(batches[0]!.pixels.length).toBe(224 * 224 * 3);
  });

  it('rejects a batch size or concurrency below 1 with BAD_FLAG', async () => {
    await expect(collect([], { batchSize: 0 })).rejects.toMatchObject({ code: 'BAD_FLAG' });
    await expect(collect([], { concurrency: 0 })).rejects.toMatchObject({ code: 'BAD_FLAG' });
    await expect(collect([], { batchSize: 1.5 })).rejects.toMatchObject({ code: 'BAD_FLAG' });
  });
});
