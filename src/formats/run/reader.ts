import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PatchAtlasError } from '../../errors.js';
import { fromHalfInto } from './half.js';
import { bytesOf, readFully } from './io.js';
import { ARRAY_NAMES, DTYPE_BYTES, IMAGES_FILE, arrayInfos, assertLittleEndian, rowBytes } from './layout.js';
import { readManifest } from './manifest.js';
import type { ArrayInfo, ArrayName, ImageRecord, RunManifest } from './types.js';

/** What reading an array gives: meta stays int32, everything else is float32 (attr is decoded from float16). */
export type Decoded<A extends ArrayName> = A extends 'meta' ? Int32Array : Float32Array;

export interface Block<A extends ArrayName> {
  /** First row of the block. */
  start: number;
  rows: number;
  /** [rows × rowLength] */
  data: Decoded<A>;
}

/** Bytes read per block by column()/columns() and the largest single read of rows(). */
const BLOCK_BYTES = 4 << 20;
/** rows() reads through gaps up to this size rather than issue another read. */
const GAP_BYTES = 64 << 10;
/** Positioned reads in flight at once for rows(). */
const READ_CONCURRENCY = 8;

/**
 * Read access to a complete run. Nothing is loaded up front except the manifest and image list;
 * every read is a positioned read of just the rows asked for, or a stream in fixed-size blocks,
 * so runs larger than memory work.
 */
export class RunReader {
  private readonly handles = new Map<ArrayName, Promise<FileHandle>>();

  private constructor(
    readonly dir: string,
    readonly manifest: RunManifest,
    readonly images: ImageRecord[],
  ) {}

  get points(): number {
    return this.manifest.points;
  }

  static async open(dir: string): Promise<RunReader> {
    assertLittleEndian();
    const exists = await stat(dir).then((s) => s.isDirectory(), () => false);
    if (!exists) throw new PatchAtlasError('NOT_FOUND', `run folder ${dir} does not exist`, 'pass the --out folder of a collect run');
    const m = await readManifest(dir);
    if (!m) throw new PatchAtlasError('BAD_RUN', `${dir} is not a patch-atlas run (no manifest.json)`, 'pass the --out folder of a collect run');
    if (!m.complete) {
      throw new PatchAtlasError('BAD_RUN', `${dir} is an unfinished collect run`, 're-run collect with the same settings and --out to resume it');
    }
    const expected = arrayInfos(m);
    for (const a of ARRAY_NAMES) {
      const info = m.arrays?.[a];
      if (!info || info.dtype !== expected[a].dtype || info.rowLength !== expected[a].rowLength || typeof info.file !== 'string') {
        throw new PatchAtlasError('BAD_RUN', `${dir}/manifest.json describes array ${a} as ${JSON.stringify(info)}, expected ${JSON.stringify(expected[a])}`, 'the run folder is damaged; collect again');
      }
      const path = join(dir, info.file);
      const size = await stat(path).then((s) => s.size, () => -1);
      const want = m.points * rowBytes(info);
      if (size !== want) {
        const got = size < 0 ? 'missing' : `${size} bytes`;
        throw new PatchAtlasError('BAD_RUN', `${path} is ${got}, the manifest implies ${want} bytes (${m.points} points)`, 'the run folder is damaged; collect again');
      }
    }
    let images: ImageRecord[];
    try {
      images = JSON.parse(await readFile(join(dir, IMAGES_FILE), 'utf8')) as ImageRecord[];
    } catch {
      throw new PatchAtlasError('BAD_RUN', `${join(dir, IMAGES_FILE)} is missing or not valid JSON`, 'the run folder is damaged; collect again');
    }
    if (!Array.isArray(images) || images.length !== m.images) {
      throw new PatchAtlasError('BAD_RUN', `${join(dir, IMAGES_FILE)} lists ${Array.isArray(images) ? images.length : 'no'} images, the manifest says ${m.images}`, 'the run folder is damaged; collect again');
    }
    return new RunReader(dir, m, images);
  }

  info(array: ArrayName): ArrayInfo {
    const info = this.manifest.arrays[array];
    if (!info) throw new Error(`unknown run array ${JSON.stringify(array)}`);
    return info;
  }

  rowLength(array: ArrayName): number {
    return this.info(array).rowLength;
  }

  /** Rows `indices` (any order, repeats allowed) as one [indices.length × rowLength] array. */
  async rows<A extends ArrayName>(array: A, indices: ArrayLike<number>): Promise<Decoded<A>> {
    const info = this.info(array);
    const rl = info.rowLength;
    const rb = rowBytes(info);
    const n = indices.length;
    const out = alloc(array, n * rl);
    if (n === 0 || rl === 0) return out;
    const idx = new Float64Array(n);
    let sorted = true;
    for (let i = 0; i < n; i++) {
      const v = indices[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= this.points) throw new RangeError(`rows(${array}): index ${v} is outside 0..${this.points - 1}`);
      idx[i] = v;
      if (i > 0 && v < idx[i - 1]!) sorted = false;
    }
    // Visit rows in file order so nearby rows share one read; `order` maps back to output slots.
    const order = Uint32Array.from({ length: n }, (_, i) => i);
    if (!sorted) order.sort((a, b) => idx[a]! - idx[b]!);
    const maxRun = Math.max(1, Math.floor(BLOCK_BYTES / rb));
    const maxGap = Math.floor(GAP_BYTES / rb) + 1;
    const runs: Array<[number, number]> = [];
    for (let k = 0; k < n; ) {
      const first = idx[order[k]!]!;
      let e = k + 1;
      while (e < n && idx[order[e]!]! - idx[order[e - 1]!]! <= maxGap && idx[order[e]!]! - first < maxRun) e++;
      runs.push([k, e]);
      k = e;
    }
    const fh = await this.handle(array);
    const path = join(this.dir, info.file);
    let next = 0;
    const worker = async () => {
      while (next < runs.length) {
        const [k0, k1] = runs[next++]!;
        const first = idx[order[k0]!]!;
        const count = idx[order[k1 - 1]!]! - first + 1;
        const raw = new Uint8Array(count * rb);
        await readFully(fh, path, raw, 0, raw.length, first * rb);
        for (let k = k0; k < k1; k++) {
          const slot = order[k]!;
          const at = (idx[slot]! - first) * rb;
          if (info.dtype === 'float16') fromHalfInto(new Uint16Array(raw.buffer, at, rl), out as Float32Array, slot * rl);
          else if (info.dtype === 'int32') (out as Int32Array).set(new Int32Array(raw.buffer, at, rl), slot * rl);
          else (out as Float32Array).set(new Float32Array(raw.buffer, at, rl), slot * rl);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, runs.length) }, worker));
    return out;
  }

  /**
   * Stream rows [start, end) in blocks of `rowsPerBlock`. Each block is a fresh array the caller
   * may keep; only one block is read at a time, so memory is bounded by the block size.
   */
  async *blocks<A extends ArrayName>(array: A, rowsPerBlock: number, range: { start?: number; end?: number } = {}): AsyncGenerator<Block<A>> {
    if (!Number.isInteger(rowsPerBlock) || rowsPerBlock < 1) throw new RangeError(`blocks(${array}): rowsPerBlock must be a whole number ≥ 1, got ${rowsPerBlock}`);
    const start = range.start ?? 0;
    const end = range.end ?? this.points;
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= this.points)) {
      throw new RangeError(`blocks(${array}): range ${start}..${end} is outside 0..${this.points}`);
    }
    const info = this.info(array);
    const rl = info.rowLength;
    const path = join(this.dir, info.file);
    // Own handle per stream: independent of rows() and of other streams, closed when the loop ends.
    const fh = await open(path, 'r');
    // float16 needs a raw buffer before decoding; it is reused, as it never leaves this generator.
    let scratch: Uint16Array | null = null;
    try {
      for (let s = start; s < end; s += rowsPerBlock) {
        const rows = Math.min(rowsPerBlock, end - s);
        const data = alloc(array, rows * rl);
        if (info.dtype === 'float16') {
          if (!scratch || scratch.length < rows * rl) scratch = new Uint16Array(rowsPerBlock * rl);
          const raw = scratch.subarray(0, rows * rl);
          await readFully(fh, path, bytesOf(raw), 0, raw.byteLength, s * rowBytes(info));
          fromHalfInto(raw, data as Float32Array);
        } else {
          await readFully(fh, path, bytesOf(data), 0, data.byteLength, s * rowBytes(info));
        }
        yield { start: s, rows, data };
      }
    } finally {
      await fh.close();
    }
  }

  /** A whole array in memory ([points × rowLength]), for runs small enough to hold (the screen reads each many times). */
  async all<A extends ArrayName>(array: A): Promise<Decoded<A>> {
    const rl = this.info(array).rowLength;
    const out = alloc(array, this.points * rl);
    for await (const b of this.blocks(array, Math.max(1, Math.floor((16 << 20) / (rl * 4))))) (out as Float32Array | Int32Array).set(b.data, b.start * rl);
    return out;
  }

  /** One column of an array, for every point (streamed in blocks). */
  async column<A extends ArrayName>(array: A, col: number): Promise<Decoded<A>> {
    return (await this.columns(array, [col]))[0]!;
  }

  /** Several columns of one array in a single pass over the file. */
  async columns<A extends ArrayName>(array: A, cols: number[]): Promise<Decoded<A>[]> {
    const info = this.info(array);
    const rl = info.rowLength;
    for (const c of cols) if (!Number.isInteger(c) || c < 0 || c >= rl) throw new RangeError(`columns(${array}): column ${c} is outside 0..${rl - 1}`);
    const outs = cols.map(() => alloc(array, this.points));
    if (cols.length === 0 || this.points === 0) return outs;
    const per = Math.max(1, Math.floor(BLOCK_BYTES / (rl * DTYPE_BYTES[info.dtype])));
    for await (const b of this.blocks(array, per)) {
      const d = b.data;
      cols.forEach((c, j) => {
        const o = outs[j]!;
        for (let r = 0; r < b.rows; r++) o[b.start + r] = d[r * rl + c]!;
      });
    }
    return outs;
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => null))?.close()));
  }

  private handle(array: ArrayName): Promise<FileHandle> {
    let h = this.handles.get(array);
    if (!h) {
      h = open(join(this.dir, this.info(array).file), 'r');
      this.handles.set(array, h);
    }
    return h;
  }
}

function alloc<A extends ArrayName>(array: A, n: number): Decoded<A> {
  return (array === 'meta' ? new Int32Array(n) : new Float32Array(n)) as Decoded<A>;
}
