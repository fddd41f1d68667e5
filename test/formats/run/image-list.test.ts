import { describe, expect, it } from 'vitest';
import { PatchAtlasError } from '../../../src/errors.js';
import { hashImageList, parseShard, shardOf } from '../../../src/formats/run/image-list.js';

describe('hashImageList', () => {
  const list = [
    { path: 'a/1.jpg', label: 'n01440764' },
    { path: 'a/2.jpg', label: null },
  ];
  it('is stable and sensitive to paths, labels, null vs empty and order', () => {
    const h = hashImageList(list);
    expect(h).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(hashImageList(list.map((r) => ({ ...r })))).toBe(h);
    expect(hashImageList([list[0]!, { path: 'a/2.jpg', label: '' }])).not.toBe(h);
    expect(hashImageList([list[0]!, { path: 'a/3.jpg', label: null }])).not.toBe(h);
    expect(hashImageList([list[1]!, list[0]!])).not.toBe(h);
    expect(hashImageList([{ path: 'a', label: 'b\nc' }])).not.toBe(hashImageList([{ path: 'a\nb', label: 'c' }]));
    expect(hashImageList([])).not.toBe(h);
  });
});

describe('shardOf', () => {
  it('strides images so shards are disjoint and cover the list', () => {
    expect(shardOf(7, { index: 0, count: 3 })).toEqual([0, 3, 6]);
    expect(shardOf(7, { index: 2, count: 3 })).toEqual([2, 5]);
    expect(shardOf(4, null)).toEqual([0, 1, 2, 3]);
    const all = [0, 1, 2, 3].flatMap((index) => shardOf(103, { index, count: 4 })).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 103 }, (_, i) => i));
  });
});

describe('parseShard', () => {
  it('parses i/N', () => {
    expect(parseShard('0/2')).toEqual({ index: 0, count: 2 });
    expect(parseShard(' 3 / 4 ')).toEqual({ index: 3, count: 4 });
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
  });
  for (const bad of ['2/2', 'a/b', '0/0', '1', '-1/2', '1/2/3', '', '0.5/2']) {
    it(`refuses ${JSON.stringify(bad)} in one line naming --shard`, () => {
      let err: unknown;
      try {
        parseShard(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PatchAtlasError);
      const e = err as PatchAtlasError;
      expect(e.code).toBe('BAD_FLAG');
      expect(e.message).toContain('--shard');
      expect(e.message).not.toContain('\n');
    });
  }
});
