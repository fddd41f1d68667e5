import { randomBytes } from 'node:crypto';
import { open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../util/atomic.js';
import { bytesOf, writeFully } from './io.js';
import { ARRAY_NAMES, rowBytes } from './layout.js';
import { META, META_COLUMNS, type ArrayInfo, type ArrayName, type PointChunk } from './types.js';

export const CHUNK_FORMAT = 'patch-atlas-chunk/1';

/**
 * The JSON index that commits one chunk. Its bin holds acts|attr|meta|prob back to back, rows
 * sorted by image; `counts` lists [image, points] in that order so finalize can place every image's
 * rows without reading the bin.
 */
export interface ChunkIndex {
  format: typeof CHUNK_FORMAT;
  bin: string;
  bytes: number;
  points: number;
  images: number[];
  skipped: Array<{ image: number; reason: string }>;
  counts: Array<[image: number, points: number]>;
}

/** Byte offset of each array inside a chunk bin of `points` rows. */
export function chunkOffsets(infos: Record<ArrayName, ArrayInfo>, points: number): { offsets: Record<ArrayName, number>; bytes: number } {
  const offsets = {} as Record<ArrayName, number>;
  let at = 0;
  for (const name of ARRAY_NAMES) {
    offsets[name] = at;
    at += points * rowBytes(infos[name]);
  }
  return { offsets, bytes: at };
}

/** Check a chunk's shapes and return it with rows stably sorted by image (the order finalize needs). */
export function sortedChunk(chunk: PointChunk, infos: Record<ArrayName, ArrayInfo>): PointChunk & { points: number } {
  const points = chunk.meta.length / META_COLUMNS;
  if (!Number.isInteger(points)) throw new Error(`writeChunk: meta has ${chunk.meta.length} values, not a multiple of ${META_COLUMNS}`);
  for (const name of ARRAY_NAMES) {
    const want = points * infos[name].rowLength;
    if (chunk[name].length !== want) throw new Error(`writeChunk: ${name} has ${chunk[name].length} values, expected ${points} points × ${infos[name].rowLength} = ${want}`);
  }
  const imageOf = (row: number) => chunk.meta[row * META_COLUMNS + META.image]!;
  let sorted = true;
  for (let r = 1; r < points && sorted; r++) sorted = imageOf(r - 1) <= imageOf(r);
  if (sorted) return { ...chunk, points };
  const order = Array.from({ length: points }, (_, r) => r).sort((a, b) => imageOf(a) - imageOf(b) || a - b);
  const permute = <T extends Float32Array | Uint16Array | Int32Array>(src: T, len: number): T => {
    const dst = new (src.constructor as new (n: number) => T)(src.length);
    order.forEach((from, to) => dst.set(src.subarray(from * len, (from + 1) * len), to * len));
    return dst;
  };
  return {
    ...chunk,
    points,
    acts: permute(chunk.acts, infos.acts.rowLength),
    attr: permute(chunk.attr, infos.attr.rowLength),
    meta: permute(chunk.meta, META_COLUMNS),
    prob: permute(chunk.prob, infos.prob.rowLength),
  };
}

/**
 * Commit one chunk: the bin is written and synced under its final name first, then the index is
 * renamed into place. Only the index makes the chunk count, so a kill at any point leaves either a
 * committed chunk or an orphan bin/tmp that loadChunks deletes.
 */
export async function commitChunk(chunksDir: string, chunk: PointChunk & { points: number }, infos: Record<ArrayName, ArrayInfo>): Promise<ChunkIndex> {
  let first = Infinity;
  for (const i of chunk.images) first = Math.min(first, i);
  for (const s of chunk.skipped) first = Math.min(first, s.image);
  const name = `c${String(first).padStart(10, '0')}-${randomBytes(4).toString('hex')}`;
  const { bytes } = chunkOffsets(infos, chunk.points);
  const fh = await open(join(chunksDir, name + '.bin'), 'w');
  try {
    let at = 0;
    for (const a of ARRAY_NAMES) {
      const b = bytesOf(chunk[a]);
      await writeFully(fh, b, at);
      at += b.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  const counts: Array<[number, number]> = [];
  for (let r = 0; r < chunk.points; r++) {
    const img = chunk.meta[r * META_COLUMNS + META.image]!;
    const last = counts[counts.length - 1];
    if (last && last[0] === img) last[1]++;
    else counts.push([img, 1]);
  }
  const index: ChunkIndex = {
    format: CHUNK_FORMAT,
    bin: name + '.bin',
    bytes,
    points: chunk.points,
    images: [...chunk.images].sort((a, b) => a - b),
    skipped: [...chunk.skipped].sort((a, b) => a.image - b.image),
    counts,
  };
  await writeJsonAtomic(join(chunksDir, name + '.json'), index);
  return index;
}

/**
 * The committed chunks in `chunksDir`. Everything else there (bins without an index, .tmp files,
 * indexes whose bin is missing or the wrong size) is what a kill leaves behind: it is deleted and
 * its images are simply collected again.
 */
export async function loadChunks(chunksDir: string, infos: Record<ArrayName, ArrayInfo>): Promise<{ chunks: ChunkIndex[]; discarded: string[] }> {
  let names: string[];
  try {
    names = await readdir(chunksDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { chunks: [], discarded: [] };
    throw e;
  }
  const keep = new Set<string>();
  const chunks: ChunkIndex[] = [];
  for (const n of names.filter((n) => n.endsWith('.json')).sort()) {
    let index: ChunkIndex;
    try {
      index = JSON.parse(await readFile(join(chunksDir, n), 'utf8')) as ChunkIndex;
    } catch {
      continue; // not parseable: cannot have come from commitChunk's atomic rename, so not ours to trust
    }
    if (index.format !== CHUNK_FORMAT || typeof index.bin !== 'string') continue;
    const size = await stat(join(chunksDir, index.bin)).then((s) => s.size, () => -1);
    if (size !== index.bytes || index.bytes !== chunkOffsets(infos, index.points).bytes) continue;
    keep.add(n).add(index.bin);
    chunks.push(index);
  }
  const discarded = names.filter((n) => !keep.has(n));
  await Promise.all(discarded.map((n) => rm(join(chunksDir, n), { force: true, recursive: true })));
  return { chunks, discarded };
}
