import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { PatchAtlasError } from '../errors.js';

/** A square patch image: `px`×`px`×3 bytes, row-major RGB. */
export interface PatchImage {
  name: string;
  rgb: Uint8Array;
  /** Side in pixels. */
  px: number;
}

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
 * One patch image as square RGB at its own resolution, named after the file: non-square images are
 * centre-cropped, transparency is flattened onto grey (a neutral colour). A square opaque 8-bit RGB
 * PNG (what patch-atlas writes) comes back byte for byte.
 */
export async function loadPatchImage(file: string): Promise<PatchImage> {
  try {
    const meta = await sharp(file).metadata();
    const px = Math.min(meta.width ?? 0, meta.height ?? 0);
    if (px < 1) throw new Error('no pixels');
    let img = sharp(file).autoOrient();
    if (meta.width !== meta.height) img = img.resize(px, px, { fit: 'cover' });
    const rgb = await img.flatten({ background: { r: 128, g: 128, b: 128 } }).toColourspace('srgb').removeAlpha().raw().toBuffer();
    return { name: basename(file, extname(file)), rgb: new Uint8Array(rgb.buffer, rgb.byteOffset, px * px * 3), px };
  } catch (e) {
    throw new PatchAtlasError('BAD_IMAGE', `cannot read patch ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Patch images from files or folders (PNG, JPEG, WebP), in `listPatchFiles` order; repeated names get -2, -3, … */
export async function loadPatches(paths: readonly string[]): Promise<PatchImage[]> {
  const names = new Set<string>();
  const out: PatchImage[] = [];
  for (const f of await listPatchFiles(paths)) {
    const p = await loadPatchImage(f);
    let name = p.name;
    for (let k = 2; names.has(name); k++) name = `${p.name}-${k}`;
    names.add(name);
    out.push({ ...p, name });
  }
  return out;
}
