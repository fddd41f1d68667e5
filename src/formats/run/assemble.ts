import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PatchAtlasError } from '../../errors.js';
import { HandleCache, readFully } from './io.js';
import { TMP_SUFFIX } from './layout.js';

/** Where row 0 of one array lives: a file and a byte offset (chunk files hold four arrays back to back). */
export interface ArraySource {
  path: string;
  offset: number;
}

/**
 * An ordered list of row ranges (source, first row, row count) that make up an output array.
 * Typed columns rather than objects, since a merge has one segment per image (millions);
 * a range that continues the previous one in the same source is folded into it.
 */
export class Segments {
  src = new Int32Array(256);
  start = new Float64Array(256);
  count = new Float64Array(256);
  length = 0;
  rows = 0;

  push(src: number, start: number, count: number): void {
    if (count === 0) return;
    this.rows += count;
    const last = this.length - 1;
    if (last >= 0 && this.src[last] === src && this.start[last] + this.count[last] === start) {
      this.count[last] += count;
      return;
    }
    if (this.length === this.src.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.src = grow(this.src, (n) => new Int32Array(n));
      this.start = grow(this.start, (n) => new Float64Array(n));
      this.count = grow(this.count, (n) => new Float64Array(n));
    }
    this.src[this.length] = src;
    this.start[this.length] = start;
    this.count[this.length] = count;
    this.length++;
  }
}

export interface AssembleSpec {
  /** Output file name inside the target folder. */
  file: string;
  rowBytes: number;
  /** Indexed by the segments' source numbers. */
  sources: ArraySource[];
}

const COPY_BUFFER = 4 << 20;

/**
 * Write each spec's array into `dir` by copying the segments' rows in order, through one fixed
 * buffer (memory does not grow with the run). All arrays go to `<file>.tmp` first, are synced, and
 * only then renamed into place, so a kill leaves either no final file or a whole one. Callers write
 * their manifest after this returns; until then the renamed files are not trusted by anyone.
 */
export async function assembleArrays(dir: string, specs: AssembleSpec[], segs: Segments): Promise<void> {
  const handles = new HandleCache();
  const buf = Buffer.allocUnsafe(COPY_BUFFER);
  try {
    for (const spec of specs) await assembleOne(join(dir, spec.file + TMP_SUFFIX), spec, segs, handles, buf);
  } catch (e) {
    await Promise.all(specs.map((s) => rm(join(dir, s.file + TMP_SUFFIX), { force: true })));
    throw e;
  } finally {
    await handles.closeAll();
  }
  for (const spec of specs) await rename(join(dir, spec.file + TMP_SUFFIX), join(dir, spec.file));
}

async function assembleOne(tmp: string, spec: AssembleSpec, segs: Segments, handles: HandleCache, buf: Buffer): Promise<void> {
  const out = await open(tmp, 'w');
  try {
    let fill = 0;
    let outPos = 0;
    const flush = async () => {
      let off = 0;
      while (off < fill) {
        const { bytesWritten } = await out.write(buf, off, fill - off, outPos);
        off += bytesWritten;
        outPos += bytesWritten;
      }
      fill = 0;
    };
    for (let s = 0; s < segs.length; s++) {
      const source = spec.sources[segs.src[s]!];
      if (!source) throw new Error(`assemble: segment ${s} names source ${segs.src[s]} of ${spec.sources.length}`);
      const fh = await handles.get(source.path);
      let pos = source.offset + segs.start[s] * spec.rowBytes;
      let need = segs.count[s] * spec.rowBytes;
      while (need > 0) {
        const n = Math.min(need, buf.length - fill);
        await readFully(fh, source.path, buf, fill, n, pos);
        fill += n;
        pos += n;
        need -= n;
        if (fill === buf.length) await flush();
      }
    }
    await flush();
    if (outPos !== segs.rows * spec.rowBytes) {
      throw new PatchAtlasError('BAD_RUN', `${tmp}: wrote ${outPos} bytes, expected ${segs.rows * spec.rowBytes}`);
    }
    await out.sync();
  } finally {
    await out.close();
  }
}
