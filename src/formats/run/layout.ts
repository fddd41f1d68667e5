import { endianness } from 'node:os';
import type { ArrayDtype, ArrayInfo, ArrayName, RunIdentity } from './types.js';
import { META_COLUMNS, PROB_COLUMNS } from './types.js';

/**
 * A run folder:
 *
 *   manifest.json   RunManifest; written last at every step, so `complete: true` means the arrays are whole
 *   images.json     the full (unsharded) ImageRecord list, in index order
 *   acts.f32 attr.f16 meta.i32 prob.f32
 *                   row-major little-endian arrays, no header (np.memmap-able); present once complete
 *   chunks/         while collecting: <name>.bin (acts|attr|meta|prob back to back) + <name>.json (its
 *                   index, renamed into place last: a .bin without its .json is garbage from a kill)
 *   *.tmp           in-flight writes; always garbage when no writer is running
 */
export const MANIFEST_FILE = 'manifest.json';
export const IMAGES_FILE = 'images.json';
export const CHUNKS_DIR = 'chunks';
export const TMP_SUFFIX = '.tmp';

export const ARRAY_NAMES: readonly ArrayName[] = ['acts', 'attr', 'meta', 'prob'];

export const ARRAY_FILES: Record<ArrayName, string> = { acts: 'acts.f32', attr: 'attr.f16', meta: 'meta.i32', prob: 'prob.f32' };

export const DTYPE_BYTES: Record<ArrayDtype, number> = { float32: 4, float16: 2, int32: 4 };

export function arrayInfos(identity: RunIdentity): Record<ArrayName, ArrayInfo> {
  return {
    acts: { file: ARRAY_FILES.acts, dtype: 'float32', rowLength: identity.channels },
    attr: { file: ARRAY_FILES.attr, dtype: 'float16', rowLength: identity.classes.length },
    meta: { file: ARRAY_FILES.meta, dtype: 'int32', rowLength: META_COLUMNS },
    prob: { file: ARRAY_FILES.prob, dtype: 'float32', rowLength: PROB_COLUMNS },
  };
}

export function rowBytes(info: ArrayInfo): number {
  return info.rowLength * DTYPE_BYTES[info.dtype];
}

/** Typed arrays are written and read as raw memory, which is only the file format on little-endian hosts. */
export function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('patch-atlas run files are little-endian; this big-endian host is not supported');
}
