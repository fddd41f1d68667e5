import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunReader, RunWriter, fromHalf, shardOf } from '../../../src/formats/run/index.js';
import { bytes, chunkFor, expected, groups, synth, tempDir, caught } from './fixtures.js';

let root: string;
let cleanup: () => Promise<void>;
let run: string;
const s = synth(120, { channels: 9, classes: 11, skipped: [17] });

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir());
  run = join(root, 'run');
  const w = await RunWriter.open(run, s.identity, s.images, null);
  for (const g of groups(shardOf(120, null), 13)) await w.writeChunk(chunkFor(s, g));
  await w.finalize();
});
afterAll(async () => cleanup());

describe('RunReader', () => {
  it('exposes manifest, images and points', async () => {
    const r = await RunReader.open(run);
    expect(r.points).toBe(expected(s).points);
    expect(r.images).toEqual(s.images);
    expect(r.manifest.complete).toBe(true);
    expect(r.rowLength('acts')).toBe(9);
    expect(r.rowLength('attr')).toBe(11);
    await r.close();
  });

  it('blocks, column, columns and rows agree with each other and with the data', async () => {
    const r = await RunReader.open(run);
    const want = expected(s);
    try {
      for (const a of ['acts', 'attr', 'meta', 'prob'] as const) {
        const rl = r.rowLength(a);
        const full = a === 'attr' ? fromHalf(want.attr) : want[a];
        for (const per of [1, 7, 64, 10_000]) {
          const parts: number[] = [];
          let next = 0;
          for await (const b of r.blocks(a, per)) {
            expect(b.start).toBe(next);
            expect(b.data.length).toBe(b.rows * rl);
            next += b.rows;
            parts.push(...b.data);
          }
          expect(next).toBe(r.points);
          expect(bytes(a === 'meta' ? Int32Array.from(parts) : Float32Array.from(parts)).equals(bytes(full))).toBe(true);
        }
        const cols = await r.columns(a, Array.from({ length: rl }, (_, c) => c));
        for (let c = 0; c < rl; c++) {
          const col = await r.column(a, c);
          expect(bytes(col).equals(bytes(cols[c]!))).toBe(true);
          for (let p = 0; p < r.points; p++) expect(Object.is(col[p], full[p * rl + c]) || (Number.isNaN(col[p]) && Number.isNaN(full[p * rl + c]))).toBe(true);
        }
        const all = await r.rows(a, Array.from({ length: r.points }, (_, i) => i));
        expect(bytes(all).equals(bytes(full))).toBe(true);
      }
    } finally {
      await r.close();
    }
  });

  it('rows: any order, repeats, typed-array indices, a sub-range of blocks', async () => {
    const r = await RunReader.open(run);
    try {
      const want = expected(s);
      const idx = Uint32Array.from([5, 0, r.points - 1, 5, 3, 150, 1]);
      const got = await r.rows('acts', idx);
      const rl = 9;
      idx.forEach((p, k) => expect([...got.subarray(k * rl, (k + 1) * rl)]).toEqual([...want.acts.subarray(p * rl, (p + 1) * rl)]));
      const attr = await r.rows('attr', [r.points - 1, 0]);
      expect([...attr.subarray(0, 11)]).toEqual([...fromHalf(want.attr.subarray((r.points - 1) * 11))]);
      const meta = await r.rows('meta', [2]);
      expect(meta).toBeInstanceOf(Int32Array);
      expect([...meta]).toEqual([...want.meta.subarray(12, 18)]);
      expect((await r.rows('acts', [])).length).toBe(0);
      await expect(r.rows('acts', [r.points])).rejects.toThrow(RangeError);
      await expect(r.rows('acts', [1.5])).rejects.toThrow(RangeError);
      const sub: number[] = [];
      for await (const b of r.blocks('meta', 4, { start: 10, end: 19 })) sub.push(b.start, b.rows);
      expect(sub).toEqual([10, 4, 14, 4, 18, 1]);
      await expect(r.column('acts', 9)).rejects.toThrow(RangeError);
    } finally {
      await r.close();
    }
  });

  it('meta rows are ordered by image, and prob holds NaN for unlabelled images', async () => {
    const r = await RunReader.open(run);
    const img = await r.column('meta', 0);
    for (let i = 1; i < img.length; i++) expect(img[i]!).toBeGreaterThanOrEqual(img[i - 1]!);
    expect([...img]).not.toContain(17);
    const truth = await r.column('prob', 1);
    const trueCls = await r.column('meta', 3);
    for (let i = 0; i < img.length; i++) expect(Number.isNaN(truth[i]!)).toBe(trueCls[i] === -1);
    await r.close();
  });

  it('refuses an incomplete run, telling the user to re-run collect', async () => {
    const inc = join(root, 'incomplete');
    const w = await RunWriter.open(inc, s.identity, s.images, null);
    await w.writeChunk(chunkFor(s, [0, 1]));
    const e = await caught(RunReader.open(inc));
    expect(e.code).toBe('BAD_RUN');
    expect(e.message).toMatch(/unfinished collect run; re-run collect with the same settings and --out to resume it/);
  });

  it('refuses unknown formats, missing folders, non-runs and damaged arrays', async () => {
    expect((await caught(RunReader.open(join(root, 'nope')))).code).toBe('NOT_FOUND');
    expect((await caught(RunReader.open(root))).message).toMatch(/not a patch-atlas run/);
    const other = join(root, 'other');
    await RunWriter.open(other, s.identity, s.images, null);
    const m = JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8'));
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ ...m, format: 'patch-atlas-run/9', complete: true }));
    const e = await caught(RunReader.open(other));
    expect(e.message).toMatch(/format "patch-atlas-run\/9", this patch-atlas reads patch-atlas-run\/1/);
    expect(e.message).not.toContain('\n');
    // A complete manifest whose arrays are short.
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ ...m, complete: true, points: 3 }));
    for (const f of ['acts.f32', 'attr.f16', 'meta.i32']) await writeFile(join(other, f), Buffer.alloc(1));
    expect((await caught(RunReader.open(other))).message).toMatch(/acts\.f32 is 1 bytes, the manifest implies 108 bytes/);
  });
});
