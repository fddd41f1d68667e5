import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { ExternalData } from '../engine/index.js';

/**
 * Reader for an ONNX model's external data files in `dir`: a file must resolve (links followed) inside `dir`, and the
 * range must lie inside the file. Errors are one line; the engine adds the tensor's name.
 */
export function externalDataIn(dir: string): ExternalData {
  const root = realpathSync(dir);
  return (location, offset, length) => {
    const path = join(dir, location);
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      throw new Error(`external data file ${path} does not exist`);
    }
    const rel = relative(root, real);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new Error(`external data file ${path} leads outside the model's folder`);
    const fd = openSync(real, 'r');
    try {
      const total = fstatSync(fd).size;
      const n = length ?? total - offset;
      if (offset + n > total || n < 0) throw new Error(`external data range ${offset}+${n} lies outside ${path} (${total} bytes)`);
      const buf = new Uint8Array(n);
      readSync(fd, buf, 0, n, offset);
      return buf;
    } finally {
      closeSync(fd);
    }
  };
}
