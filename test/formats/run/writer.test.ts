import { mkdir, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunReader, RunWriter, fromHalf, hashImageList, shardOf, type RunManifest } from '../../../src/formats/run/index.js';
import { bytes, chunkFor, expected, groups, synth, tempDir, caught } from './fixtures.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

async function expectRun(run: string, s: ReturnType<typeof synth>, reverseWithinImage = false): Promise<void> {
  const want = expected(s, reverseWithinImage);
  // Final files are exactly the expected little-endian arrays.
  expect(bytes(await readFile(join(run, 'acts.f32'))).equals(bytes(want.acts))).toBe(true);
  expect(bytes(await readFile(join(run, 'attr.f16'))).equals(bytes(want.attr))).toBe(true);
  expect(bytes(await readFile(join(run, 'meta.i32'))).equals(bytes(want.meta))).toBe(true);
  expect(bytes(await readFile(join(run, 'prob.f32'))).equals(bytes(want.prob))).toBe(true);
  const r = await RunReader.open(run);
  try {
    expect(r.points).toBe(want.points);
    const all = Array.from({ length: r.points }, (_, i) => i);
    expect(await r.rows('acts', all)).toEqual(want.acts);
    expect(await r.rows('attr', all)).toEqual(fromHalf(want.attr));
    expect(await r.rows('meta', all)).toEqual(want.meta);
    expect(bytes(await r.rows('prob', all)).equals(bytes(want.prob))).toBe(true); // NaNs compared by bits
  } finally {
    await r.close();
  }
}

describe('RunWriter', () => {
  it('creates a run: manifest incomplete, images.json, chunks/', async () => {
    const s = synth(10);
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    expect(w.resumed).toBe(false);
    expect(w.complete).toBe(false);
    expect(w.pendingImages()).toEqual(shardOf(10, null));
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as RunManifest;
    expect(m).toMatchObject({ format: 'patch-atlas-run/1', tool: 'patch-atlas', complete: false, shard: null, images: 10, layer: 'conv_pw_11' });
    expect(m.arrays.attr).toEqual({ file: 'attr.f16', dtype: 'float16', rowLength: 7 });
    expect(JSON.parse(await readFile(join(dir, 'images.json'), 'utf8'))).toEqual(s.images);
    expect((await stat(join(dir, 'chunks'))).isDirectory()).toBe(true);
  });

  it('chunks written out of order finalize into rows ordered by image, exact values', async () => {
    const s = synth(37, { skipped: [4, 30] });
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    const gs = groups(shardOf(37, null), 5);
    // Reverse chunk order, interleave one chunk's images, shuffle rows inside chunks.
    const order = [...gs].reverse();
    await w.writeChunk(chunkFor(s, [order[0]![0]!, order[3]![1]!], true));
    const used = new Set([order[0]![0]!, order[3]![1]!]);
    for (const g of order) await w.writeChunk(chunkFor(s, g.filter((i) => !used.has(i)), true));
    expect(w.doneImages.size).toBe(37);
    const m = await w.finalize();
    expect(m).toMatchObject({ complete: true, processedImages: 35, points: expected(s).points });
    expect(m.skippedImages.map((x) => x.image)).toEqual([4, 30]);
    expect(m.finishedAt).not.toBeNull();
    expect(await readdir(dir)).toEqual(expect.not.arrayContaining(['chunks']));
    await expectRun(dir, s, true);
    // The manifest on disk is the returned one.
    expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))).toEqual(m);
  });

  it('finalize refuses while images are missing, and writeChunk refuses bad chunks', async () => {
    const s = synth(8);
    const w = await RunWriter.open(dir, s.identity, s.images, { index: 1, count: 2 });
    expect(w.pendingImages()).toEqual([1, 3, 5, 7]);
    await w.writeChunk(chunkFor(s, [1, 3]));
    const e = await caught(w.finalize());
    expect(e.message).toMatch(/2 images of shard 1\/2 are not collected yet \(first: image 5\)/);
    await expect(w.writeChunk(chunkFor(s, [2]))).rejects.toThrow(/not in shard 1\/2/);
    await expect(w.writeChunk(chunkFor(s, [3, 5]))).rejects.toThrow(/image 3 is already written/);
    await expect(w.writeChunk(chunkFor(s, [9]))).rejects.toThrow(/not an index/);
    const bad = chunkFor(s, [5]);
    await expect(w.writeChunk({ ...bad, acts: bad.acts.subarray(1) })).rejects.toThrow(/acts has/);
    await expect(w.writeChunk({ ...bad, images: [7] })).rejects.toThrow(/names image 5/);
    // Failed writes leave nothing behind, and the queue still works.
    await w.writeChunk(chunkFor(s, [5, 7]));
    await w.finalize();
    expect(w.complete).toBe(true);
  });

  it('resumes after a kill: orphan bins and half-written temp files are ignored and cleaned', async () => {
    const s = synth(20);
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    await w.writeChunk(chunkFor(s, [0, 1, 2, 3]));
    await w.writeChunk(chunkFor(s, [8, 9]));
    const chunks = join(dir, 'chunks');
    // What a kill leaves: a bin whose index was never written, a half-written index temp,
    // a bin whose index claims more bytes than it has, and a half-written images temp.
    await writeFile(join(chunks, 'c0000000004-deadbeef.bin'), Buffer.alloc(100, 1));
    await writeFile(join(chunks, 'c0000000004-deadbeef.json.123.abcd.tmp'), '{"format":"patch-at');
    const truncatedIdx = (await readdir(chunks)).find((n) => n.startsWith('c0000000008') && n.endsWith('.json'))!;
    const truncatedBin = truncatedIdx.replace('.json', '.bin');
    await truncate(join(chunks, truncatedBin), 10);
    await writeFile(join(dir, 'images.json.99.ffff.tmp'), '[{"pa');

    const r = await RunWriter.open(dir, s.identity, s.images, null);
    expect(r.resumed).toBe(true);
    expect(r.complete).toBe(false);
    expect([...r.doneImages].sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    expect(r.discarded.sort()).toEqual(['c0000000004-deadbeef.bin', 'c0000000004-deadbeef.json.123.abcd.tmp', truncatedBin, truncatedIdx].sort());
    expect((await readdir(chunks)).length).toBe(2);
    expect(await readdir(dir)).not.toContain('images.json.99.ffff.tmp');
    expect(r.pendingImages()).toEqual(Array.from({ length: 16 }, (_, i) => i + 4));
    for (const g of groups(r.pendingImages(), 3)) await r.writeChunk(chunkFor(s, g));
    await r.finalize();
    await expectRun(dir, s);
  });

  it('recovers from a kill during finalize (final arrays written, manifest not yet complete)', async () => {
    const s = synth(12);
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    for (const g of groups(shardOf(12, null), 4)) await w.writeChunk(chunkFor(s, g));
    // The state after assembleArrays renamed some arrays (one of them garbage) and was killed before the manifest.
    await writeFile(join(dir, 'acts.f32'), Buffer.alloc(64, 0xff));
    await writeFile(join(dir, 'meta.i32.tmp'), Buffer.alloc(8));
    await expect(RunReader.open(dir)).rejects.toThrow(/unfinished collect run/);
    const r = await RunWriter.open(dir, s.identity, s.images, null);
    expect(r.doneImages.size).toBe(12);
    expect(await readdir(dir)).not.toContain('acts.f32');
    await r.finalize();
    await expectRun(dir, s);
  });

  it('recovers from a kill after the complete manifest (chunks/ still there)', async () => {
    const s = synth(6);
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    await w.writeChunk(chunkFor(s, [0, 1, 2, 3, 4, 5]));
    await w.finalize();
    await mkdir(join(dir, 'chunks'), { recursive: true });
    await writeFile(join(dir, 'chunks', 'c0000000000-00000000.bin'), 'x');
    const r = await RunWriter.open(dir, s.identity, s.images, null);
    expect(r.complete).toBe(true);
    expect(r.pendingImages()).toEqual([]);
    expect(r.doneImages.size).toBe(6);
    expect(await readdir(dir)).not.toContain('chunks');
    await expect(r.writeChunk(chunkFor(s, [0]))).rejects.toThrow(/already complete/);
    expect(await r.finalize()).toEqual(r.manifest);
    await expectRun(dir, s);
  });

  it('a folder left by a kill during creation (no manifest yet) is taken over', async () => {
    const s = synth(4);
    await writeFile(join(dir, 'images.json'), '[');
    await writeFile(join(dir, 'manifest.json.1.2.tmp'), '{');
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    expect(w.resumed).toBe(false);
    expect(JSON.parse(await readFile(join(dir, 'images.json'), 'utf8'))).toEqual(s.images);
  });

  it('refuses a non-empty folder that is not a run', async () => {
    const s = synth(4);
    await writeFile(join(dir, 'holiday.jpg'), 'x');
    const e = await caught(RunWriter.open(dir, s.identity, s.images, null));
    expect(e.code).toBe('BAD_RUN');
    expect(e.message).toMatch(/not empty.*holiday\.jpg.*--out/);
  });

  describe('identity mismatch on resume names the key', () => {
    const cases: Array<[string, (s: ReturnType<typeof synth>) => Parameters<typeof RunWriter.open>, RegExp]> = [
      ['layer', (s) => [dir, { ...s.identity, layer: 'conv_pw_13' }, s.images, null], /layer "conv_pw_11", this collect has layer "conv_pw_13"/],
      ['seed', (s) => [dir, { ...s.identity, seed: 8 }, s.images, null], /seed 7, this collect has seed 8/],
      ['positions', (s) => [dir, { ...s.identity, positions: 'all' }, s.images, null], /positions 1, .* positions "all"/],
      ['classes', (s) => [dir, { ...s.identity, classes: s.identity.classes.map((c, i) => (i === 3 ? 'n09999999' : c)) }, s.images, null], /classes 7 classes, column 3 = n01000003, .*column 3 = n09999999/],
      ['imageListHash', (s) => {
        const images = s.images.slice(0, 3);
        return [dir, { ...s.identity, imageListHash: hashImageList(images) }, images, null];
      }, /imageListHash "sha256:/],
      ['shard', (s) => [dir, s.identity, s.images, { index: 0, count: 2 }], /collected with no --shard, this collect has --shard 0\/2/],
    ];
    for (const [key, args, pattern] of cases) {
      it(key, async () => {
        const s = synth(6);
        await RunWriter.open(dir, s.identity, s.images, null);
        const e = await caught(RunWriter.open(...args(s)));
        expect(e.code).toBe('RUN_MISMATCH');
        expect(e.message).toMatch(pattern);
        expect(e.message).toMatch(/pick another --out, or delete the folder/);
        expect(e.message).not.toContain('\n');
      });
    }
  });

  it('serialises writeChunk calls that are not awaited', async () => {
    const s = synth(30);
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    await Promise.all(groups(shardOf(30, null), 2).map((g) => w.writeChunk(chunkFor(s, g))));
    const dup = w.writeChunk(chunkFor(s, [0]));
    await expect(dup).rejects.toThrow(/already written/);
    await w.finalize();
    await expectRun(dir, s);
  });

  it('skipped images may also be listed in images (as collect does): same run either way', async () => {
    const s = synth(12, { skipped: [2, 9, 10] });
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    const withSkipped = (imgs: number[]) => {
      const c = chunkFor(s, imgs);
      return { ...c, images: [...c.images, ...c.skipped.map((x) => x.image)] };
    };
    await w.writeChunk(withSkipped([0, 1, 2, 3]));
    await w.writeChunk(chunkFor(s, [4, 5, 6, 7]));
    await w.writeChunk(withSkipped([9, 10])); // a chunk of only skipped images, no points
    await expect(w.writeChunk(withSkipped([2]))).rejects.toThrow(/image 2 is already written/);
    await expect(w.writeChunk({ ...chunkFor(s, [8]), images: [8, 8] })).rejects.toThrow(/listed twice/);
    const sk = chunkFor(s, [11]);
    await expect(w.writeChunk({ ...sk, skipped: [{ image: 11, reason: 'x' }] })).rejects.toThrow(/names image 11, which is not among the chunk's processed/);
    await w.writeChunk(chunkFor(s, [8, 11]));
    const m = await w.finalize();
    expect(m.processedImages).toBe(9);
    expect(m.skippedImages.map((x) => x.image)).toEqual([2, 9, 10]);
    await expectRun(dir, s);
  });

  it('empty chunks and images without points are fine', async () => {
    const s = synth(5, { pointsOf: (i) => (i === 1 ? 3 : 0) });
    const w = await RunWriter.open(dir, s.identity, s.images, null);
    await w.writeChunk(chunkFor(s, []));
    await w.writeChunk(chunkFor(s, [0, 1, 2, 3, 4]));
    const m = await w.finalize();
    expect(m.points).toBe(3);
    await expectRun(dir, s);
  });
});
