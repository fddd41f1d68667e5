import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { mapLimit } from '../util/concurrency.js';

/** Content hashes of files: what identifies an image or a patch, wherever the file lives and whatever it is called. */

/** sha256 of a file's bytes, hex; null when it cannot be read. */
export async function fileSha256(path: string): Promise<string | null> {
  try {
    return createHash('sha256').update(await readFile(path)).digest('hex');
  } catch {
    return null;
  }
}

/** sha256 of each file, a few read at once; null for files that cannot be read. */
export async function fileSha256s(paths: readonly string[]): Promise<Array<string | null>> {
  return mapLimit(paths, 8, fileSha256);
}

/** Name and content hash of each file (photo patches): the key follows the pixels, not where the files live. */
export async function fileDigests(files: readonly string[]): Promise<Array<{ name: string; sha256: string }>> {
  return mapLimit(files, 8, async (f) => ({ name: basename(f), sha256: createHash('sha256').update(await readFile(f)).digest('hex') }));
}


/** A small text file a user names (a list of pairs): its text, or one line naming it. */
export async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const { PatchAtlasError } = await import('../errors.js');
    throw new PatchAtlasError('NOT_FOUND', `cannot read ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
}
