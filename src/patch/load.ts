import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { PatchAtlasError } from '../errors.js';
import type { PatchInput } from '../evaluate/evaluate-patches.js';

/** Patch files for --patches: files as given, folders as their PNG/JPEG/WebP files, sorted. */
export async function listPatchFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new PatchAtlasError('NOT_FOUND', `--patches ${p} does not exist`);
    if (s.isDirectory()) {
      const inside = (await readdir(p)).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort();
      if (inside.length === 0) throw new PatchAtlasError('NO_IMAGES', `--patches ${p} holds no PNG, JPEG or WebP files`);
      files.push(...inside.map((f) => join(p, f)));
    } else files.push(p);
  }
  return files;
}

/**
 * Patch images from files or folders (PNG, JPEG, WebP), as square RGB at their own resolution
 * (non-square images are centre-cropped; transparency is flattened onto grey, a neutral colour).
 */
export async function loadPatches(paths: string[]): Promise<PatchInput[]> {
  const files = await listPatchFiles(paths);
  const names = new Set<string>();
  const out: PatchInput[] = [];
  for (const f of files) {
    let name = basename(f, extname(f));
    for (let k = 2; names.has(name); k++) name = `${basename(f, extname(f))}-${k}`;
    names.add(name);
    try {
      const meta = await sharp(f).metadata();
      const size = Math.min(meta.width ?? 0, meta.height ?? 0);
      if (size < 1) throw new Error('no pixels');
      const rgb = await sharp(f).autoOrient().resize(size, size, { fit: 'cover' }).flatten({ background: { r: 128, g: 128, b: 128 } }).toColourspace('srgb').removeAlpha().raw().toBuffer();
      out.push({ name, rgb: new Uint8Array(rgb.buffer, rgb.byteOffset, size * size * 3), size });
    } catch (e) {
      throw new PatchAtlasError('BAD_IMAGE', `cannot read patch ${f}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return out;
}
