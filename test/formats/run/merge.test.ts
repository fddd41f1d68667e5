import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunReader, RunWriter, mergeRuns, shardOf, type ShardSpec } from '../../../src/formats/run/index.js';
import { chunkFor, groups, synth, tempDir, type Synth, caught } from './fixtures.js';

let root: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir: root, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

async function collect(s: Synth, dir: string, shard: ShardSpec | null, chunkSize = 4, finalize = true): Promise<string> {
  const w = await RunWriter.open(dir, s.identity, s.images, shard);
  const gs = groups(shardOf(s.images.length, shard), chunkSize);
  for (const g of gs.reverse()) await w.writeChunk(chunkFor(s, g, true));
  if (finalize) await w.finalize();
  return dir;
}

async function sameFiles(a: string, b: string): Promise<void> {
  for (const f of ['acts.f32', 'attr.f16', 'meta.i32', 'prob.f32', 'images.json']) {
    const [x, y] = await Promise.all([readFile(join(a, f)), readFile(join(b, f))]);
    expect(x.length, f).toBe(y.length);
    expect(x.equals(y), `${f} differs`).toBe(true);
  }
}

describe('mergeRuns', () => {
  it('shards 0/2 + 1/2 merge byte-identical to one unsharded run', async () => {
    const s = synth(53, { skipped: [6, 11] });
    const full = await collect(s, join(root, 'full'), null, 5);
    const s0 = await collect(s, join(root, 's0'), { index: 0, count: 2 }, 3);
    const s1 = await collect(s, join(root, 's1'), { index: 1, count: 2 }, 7);
    const m = await mergeRuns([s1, s0], join(root, 'merged'));
    await sameFiles(full, join(root, 'merged'));
    const a = JSON.parse(await readFile(join(full, 'manifest.json'), 'utf8'));
    const { createdAt: _c1, finishedAt: _f1, ...fa } = a;
    const { createdAt: _c2, finishedAt: _f2, ...fb } = m;
    expect(fb).toEqual(fa);
    expect(m.shard).toBeNull();
    expect(await readdir(join(root, 'merged'))).toEqual(expect.arrayContaining(['manifest.json']));
    const r = await RunReader.open(join(root, 'merged'));
    expect(r.points).toBe(a.points);
    await r.close();
  });

  it('three shards, one with no points at all, also merge identically', async () => {
    const s = synth(20, { pointsOf: (i) => (i % 3 === 2 ? 0 : 2) });
    const full = await collect(s, join(root, 'full'), null, 20);
    const dirs = await Promise.all([0, 1, 2].map((k) => collect(s, join(root, `s${k}`), { index: k, count: 3 }, 2)));
    await mergeRuns(dirs, join(root, 'merged'));
    await sameFiles(full, join(root, 'merged'));
  });

  it('refuses shards that disagree on the layer, naming both values', async () => {
    const s = synth(10);
    const t = synth(10, { layer: 'conv_pw_13' });
    const a = await collect(s, join(root, 'a'), { index: 0, count: 2 });
    const b = await collect(t, join(root, 'b'), { index: 1, count: 2 });
    const e = await caught(mergeRuns([a, b], join(root, 'm')));
    expect(e.code).toBe('RUN_MISMATCH');
    expect(e.message).toMatch(/shard runs disagree on layer: .*\/a has "conv_pw_11", .*\/b has "conv_pw_13"/);
    expect(e.message).not.toContain('\n');
  });

  it('refuses a missing shard, a duplicate shard, differing counts, an unsharded run and an incomplete shard', async () => {
    const s = synth(12);
    const a = await collect(s, join(root, 'a'), { index: 0, count: 3 });
    const b = await collect(s, join(root, 'b'), { index: 1, count: 3 });
    const a2 = await collect(s, join(root, 'a2'), { index: 0, count: 3 });
    const c4 = await collect(s, join(root, 'c4'), { index: 2, count: 4 });
    const full = await collect(s, join(root, 'full'), null);
    const inc = await collect(s, join(root, 'inc'), { index: 2, count: 3 }, 4, false);
    const out = join(root, 'm');
    const msgs = [
      [await caught(mergeRuns([a, b], out)), /shard 2\/3 is missing; pass all 3 shard folders/],
      [await caught(mergeRuns([a, b, a2], out)), /shard 0\/3 is given twice \(.*\/a and .*\/a2\)/],
      [await caught(mergeRuns([a, b, c4], out)), /disagree on the shard count: .*\/a is --shard 0\/3, .*\/c4 is --shard 2\/4/],
      [await caught(mergeRuns([a, full], out)), /\/full was collected without --shard/],
      [await caught(mergeRuns([a, b, inc], out)), /\/inc is an unfinished collect run; re-run collect/],
      [await caught(mergeRuns([], out)), /needs the shard run folders/],
    ] as const;
    for (const [e, re] of msgs) {
      expect(e.message).toMatch(re);
      expect(e.message).not.toContain('\n');
    }
    expect(await readdir(root)).not.toContain('m');
  });

  it('refuses an output folder that holds a run or foreign files; clears leftovers of a killed merge', async () => {
    const s = synth(9);
    const a = await collect(s, join(root, 'a'), { index: 0, count: 2 });
    const b = await collect(s, join(root, 'b'), { index: 1, count: 2 });
    expect((await caught(mergeRuns([a, b], a))).message).toMatch(/already holds a run; pick another --out/);
    const foreign = join(root, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'notes.txt'), 'x');
    expect((await caught(mergeRuns([a, b], foreign))).message).toMatch(/not empty \(it holds notes\.txt\)/);
    // A killed merge: some arrays renamed, a temp file, no manifest.
    const out = join(root, 'out');
    await mkdir(out);
    await writeFile(join(out, 'acts.f32'), 'garbage');
    await writeFile(join(out, 'attr.f16.tmp'), 'garbage');
    await mergeRuns([a, b], out);
    const full = await collect(s, join(root, 'full'), null);
    await sameFiles(full, out);
    expect((await readdir(out)).sort()).toEqual(['acts.f32', 'attr.f16', 'images.json', 'manifest.json', 'meta.i32', 'prob.f32']);
  });
});
