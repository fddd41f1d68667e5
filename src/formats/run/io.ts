import { open, type FileHandle } from 'node:fs/promises';
import { PatchAtlasError } from '../../errors.js';

/** Read exactly `length` bytes at `position`; a short file means the run is damaged. */
export async function readFully(fh: FileHandle, path: string, buf: Uint8Array, offset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, offset + done, length - done, position + done);
    if (bytesRead === 0) {
      throw new PatchAtlasError('BAD_RUN', `${path} ends at byte ${position + done}, expected at least ${position + length}`, 'the run folder is damaged; delete it and collect again');
    }
    done += bytesRead;
  }
}

export async function writeFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** The bytes of a typed array, without copying (files are little-endian, so is the host: see assertLittleEndian). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Read-only file handles kept open across calls, at most `max` at once (least recently used closes
 * first), so gathering rows from thousands of chunk files never runs out of descriptors.
 */
export class HandleCache {
  private readonly open = new Map<string, Promise<FileHandle>>();
  constructor(private readonly max = 32) {}

  async get(path: string): Promise<FileHandle> {
    let fh = this.open.get(path);
    if (fh) {
      this.open.delete(path); // re-insert: Map order is the LRU order
    } else {
      fh = open(path, 'r');
      if (this.open.size >= this.max) {
        const [oldest, old] = this.open.entries().next().value as [string, Promise<FileHandle>];
        this.open.delete(oldest);
        await (await old).close();
      }
    }
    this.open.set(path, fh);
    return fh;
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => null))?.close()));
  }
}
