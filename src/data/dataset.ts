import { createReadStream } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import type { ClassRef, LabelSet } from '../model/labels.js';
import { CsvSyntaxError, parseCsv } from './csv.js';
import { isImageFile } from './extensions.js';
import { mapLimit } from '../util/concurrency.js';

export interface ImageItem {
  path: string;
  label?: ClassRef;
  /** Why an image has no label (a WordNet id the model does not have, none in the file name, an empty manifest label). */
  unlabelled?: string;
}

export interface Skipped {
  path: string;
  reason: string;
}

/**
 * Images to run on, with labels where the layout gives them.
 * - class-folders: `root/<wnid or class name>/**\/*.jpg`
 * - wnid-files: a flat folder of `<wnid>_*.jpg` (files without a wnid prefix are kept, unlabelled)
 * - manifest: a CSV of `path,label`
 * - files: explicit image paths (labelled by wnid prefix where they have one)
 * Item paths are absolute. Folder layouts are sorted by name (code-point order, so the same on
 * every machine); manifests and explicit lists keep the order the user gave.
 */
export interface Dataset {
  source: string;
  layout: 'class-folders' | 'wnid-files' | 'manifest' | 'files';
  items: ImageItem[];
  unlabelled: number;
  skipped: Skipped[];
}

/** A WordNet id at the start of a file name, as in ImageNet's `n02066245_1234.JPEG`. */
const WNID_PREFIX = /^(n\d{8})(?=$|[^0-9])/;

/** First-row first fields that mark a manifest header rather than an image path. */
const HEADER_NAMES = new Set(['path', 'file', 'filename', 'file_name', 'filepath', 'file_path', 'image', 'image_path', 'img']);

/**
 * Open a dataset: a folder (class sub-folders, or a flat folder of images), a `.csv` manifest,
 * one image file, or a list of image files/folders. Missing paths are NOT_FOUND; a source that
 * yields no images is NO_IMAGES; a bad manifest row is BAD_MANIFEST with file:line.
 */
export async function openDataset(source: string | string[], labels: LabelSet): Promise<Dataset> {
  if (Array.isArray(source)) {
    if (source.length === 0) throw new PatchAtlasError('NO_IMAGES', 'no image paths given');
    if (source.length > 1) return openFiles(source, labels);
    source = source[0]!;
  }
  const abs = resolve(source);
  const st = await statOrThrow(abs, source);
  if (st.isDirectory()) return openFolder(abs, labels);
  if (extname(abs).toLowerCase() === '.csv') return openManifest(abs, labels);
  return openFiles([source], labels);
}

async function openFolder(dir: string, labels: LabelSet): Promise<Dataset> {
  const { files, dirs, others } = await listDir(dir);
  const topImages = files.filter((f) => isImageFile(f));

  // Class folders: every sub-folder named after a class, searched recursively.
  const classItems: ImageItem[] = [];
  const classSkipped: Skipped[] = [];
  for (const d of dirs) {
    const path = join(dir, d);
    const label = labels.tryResolve(d);
    if (!label) {
      classSkipped.push({ path, reason: `folder name is not a class: ${unknownClassMessage(labels, d)}` });
      continue;
    }
    for (const file of await walk(path, classSkipped)) classItems.push({ path: file, label });
  }

  // Images directly inside and sub-folders too: the side with more images decides. Names like
  // "sub" or "images" resolve as class synonyms, so one such folder must not turn a flat folder
  // of thousands of files into class folders, nor one stray image hide every class folder.
  if (topImages.length > 0 && classItems.length < topImages.length) {
    const skipped: Skipped[] = [...others, ...dirs.map((d) => ({ path: join(dir, d), reason: 'sub-folder ignored: its parent holds images directly, so it is read as a flat folder' }))];
    const items: ImageItem[] = [];
    for (const f of files) {
      const path = join(dir, f);
      if (isImageFile(f)) items.push(wnidLabel(path, f, labels));
      else skipped.push(notImage(path));
    }
    return finish(dir, 'wnid-files', items, skipped);
  }

  const skipped: Skipped[] = files.map((f) => {
    const path = join(dir, f);
    return isImageFile(f) ? { path, reason: 'image outside the class folders (no label)' } : notImage(path);
  });
  return finish(dir, 'class-folders', classItems, [...others, ...skipped, ...classSkipped]);
}

async function openManifest(csv: string, labels: LabelSet): Promise<Dataset> {
  const bad = (line: number, msg: string, hint?: string) => new PatchAtlasError('BAD_MANIFEST', `${csv}:${line}: ${msg}`, hint);
  let text: string;
  try {
    text = await readFile(csv, 'utf8');
  } catch (e) {
    throw new PatchAtlasError('BAD_MANIFEST', `cannot read manifest ${csv}: ${(e as Error).message}`);
  }
  let rows;
  try {
    rows = parseCsv(text);
  } catch (e) {
    if (e instanceof CsvSyntaxError) throw bad(e.line, e.message);
    throw e;
  }
  if (rows.length > 0 && HEADER_NAMES.has(rows[0]!.fields[0]!.trim().toLowerCase())) rows = rows.slice(1);

  const base = dirname(csv);
  const parsed: Array<{ line: number; path: string; label: ClassRef | undefined }> = [];
  for (const { line, fields } of rows) {
    if (fields.length > 2) throw bad(line, `expected "path,label" (2 fields), got ${fields.length}`, 'quote paths that contain commas');
    const rel = fields[0]!.trim();
    if (!rel) throw bad(line, 'empty image path');
    const q = (fields[1] ?? '').trim();
    let label: ClassRef | undefined;
    if (q) {
      label = labels.tryResolve(q);
      if (!label) {
        try {
          labels.resolve(q, 'label');
        } catch (e) {
          if (isPatchAtlasError(e)) throw bad(line, withoutHint(e), e.hint);
          throw e;
        }
      }
    }
    parsed.push({ line, path: resolve(base, rel), label });
  }

  // A listed file that is missing or not an image is skipped, not fatal: one stale row should
  // not stop a long run, and the skipped list names it with its line.
  const stats = await mapLimit(parsed, 32, (r) => statOrUndefined(r.path));
  const items: ImageItem[] = [];
  const skipped: Skipped[] = [];
  parsed.forEach((r, i) => {
    const st = stats[i];
    if (!st) skipped.push({ path: r.path, reason: `not found (manifest line ${r.line})` });
    else if (!st.isFile()) skipped.push({ path: r.path, reason: `${st.isDirectory() ? 'a folder' : specialKind(st)} (manifest line ${r.line})` });
    else if (!isImageFile(r.path)) skipped.push({ path: r.path, reason: `${notImage(r.path).reason} (manifest line ${r.line})` });
    else items.push(r.label ? { path: r.path, label: r.label } : { path: r.path, unlabelled: `no label on manifest line ${r.line}` });
  });
  return finish(csv, 'manifest', items, skipped);
}

/** Explicit paths: image files as given, folders expanded to the images directly inside them. */
async function openFiles(paths: string[], labels: LabelSet): Promise<Dataset> {
  const items: ImageItem[] = [];
  const skipped: Skipped[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    const st = await statOrThrow(abs, p);
    if (st.isDirectory()) {
      const { files, dirs, others } = await listDir(abs);
      skipped.push(...others);
      for (const d of dirs) skipped.push({ path: join(abs, d), reason: 'sub-folder not searched (give it explicitly)' });
      for (const f of files) {
        const path = join(abs, f);
        if (isImageFile(f)) items.push(wnidLabel(path, f, labels));
        else skipped.push(notImage(path));
      }
    } else if (!st.isFile()) {
      skipped.push({ path: abs, reason: specialKind(st) });
    } else if (isImageFile(abs)) {
      items.push(wnidLabel(abs, basename(abs), labels));
    } else {
      skipped.push(notImage(abs));
    }
  }
  const source = paths.length === 1 ? resolve(paths[0]!) : `${paths.length} paths`;
  return finish(source, 'files', items, skipped);
}

async function finish(source: string, layout: Dataset['layout'], all: ImageItem[], skipped: Skipped[]): Promise<Dataset> {
  const items = await dedupe(all, skipped);
  if (items.length === 0) {
    const why = skipped.length
      ? `; ${skipped.length} entr${skipped.length === 1 ? 'y' : 'ies'} skipped, e.g. ${skipped[0]!.path}: ${skipped[0]!.reason}`
      : '';
    throw new PatchAtlasError(
      'NO_IMAGES',
      `no images in ${source}${why}`,
      'expected class sub-folders (wnid or class name), files named <wnid>_*.jpg, a path,label CSV, or image files',
    );
  }
  return { source, layout, items, unlabelled: items.filter((i) => !i.label).length, skipped };
}

/**
 * The same image listed twice (a repeated manifest line, a link, a copy under another name) is kept once, the first
 * time, and the others are skipped with a note. Same real path is a duplicate outright; otherwise files are compared
 * by content hash, only among files of the same size (so a folder of distinct images reads nothing extra).
 */
async function dedupe(items: ImageItem[], skipped: Skipped[]): Promise<ImageItem[]> {
  const reals = await mapLimit(items, 32, (i) => realpath(i.path).catch(() => i.path));
  const sizes = await mapLimit(reals, 32, async (p) => (await statOrUndefined(p))?.size ?? -1);
  const bySize = new Map<number, number>();
  for (const n of sizes) bySize.set(n, (bySize.get(n) ?? 0) + 1);
  const hashes = await mapLimit(reals, 8, (p, k) => (bySize.get(sizes[k]!)! > 1 ? hashFile(p) : Promise.resolve(`path:${p}`)));
  const firstOf = new Map<string, string>();
  const out: ImageItem[] = [];
  items.forEach((item, k) => {
    const keys = [`path:${reals[k]}`, hashes[k]!];
    const first = keys.map((key) => firstOf.get(key)).find((f) => f !== undefined);
    if (first !== undefined) {
      skipped.push({ path: item.path, reason: `the same image as ${first} (${first === item.path ? 'listed twice' : 'same content'}), counted once` });
      return;
    }
    for (const key of keys) firstOf.set(key, item.path);
    out.push(item);
  });
  return out;
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch {
    return `path:${path}`; // unreadable: the decoder will say why
  }
  return `sha256:${h.digest('hex')}`;
}

/** An image labelled by the WordNet id its file name starts with, or unlabelled with the reason. */
function wnidLabel(path: string, name: string, labels: LabelSet): ImageItem {
  const m = WNID_PREFIX.exec(name);
  if (!m) return { path, unlabelled: 'no WordNet id at the start of the file name' };
  // A wnid that is not in this model's label set leaves the image unlabelled rather than dropped.
  const label = labels.tryResolve(m[1]!);
  return label ? { path, label } : { path, unlabelled: `WordNet id ${m[1]} is not among the model's classes` };
}

function notImage(path: string): Skipped {
  const ext = extname(path);
  return { path, reason: ext ? `not an image file (extension ${ext})` : 'not an image file (no extension)' };
}

/** LabelSet.resolve's one-line message and "closest" hint, for an unresolvable name. */
function unknownClassMessage(labels: LabelSet, name: string): string {
  try {
    labels.resolve(name);
    return `"${name}"`;
  } catch (e) {
    if (!isPatchAtlasError(e)) throw e;
    return e.hint ? `${withoutHint(e)}; ${e.hint}` : e.message;
  }
}

/** The message without its hint (PatchAtlasError folds the hint into the message), to re-wrap it. */
function withoutHint(e: PatchAtlasError): string {
  const tail = `; ${e.hint}`;
  return e.hint && e.message.endsWith(tail) ? e.message.slice(0, -tail.length) : e.message;
}

/**
 * Entries of a folder, sorted by code point, hidden ones (".DS_Store", ".git") left out. Symlinks are followed;
 * what is neither a file nor a folder (a dangling or looping link, a FIFO, a socket, a device) is returned in
 * `others` with the reason, so callers count it as skipped instead of dropping it (or hanging on a FIFO).
 */
async function listDir(dir: string): Promise<{ files: string[]; dirs: string[]; others: Skipped[] }> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files: string[] = [];
  const dirs: string[] = [];
  const others: Skipped[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const kind = await kindOf(dir, e);
    if (kind === 'file') files.push(e.name);
    else if (kind === 'dir') dirs.push(e.name);
    else others.push({ path: join(dir, e.name), reason: kind });
  }
  return { files, dirs, others };
}

async function kindOf(dir: string, e: Dirent): Promise<'file' | 'dir' | string> {
  if (e.isFile()) return 'file';
  if (e.isDirectory()) return 'dir';
  if (e.isSymbolicLink()) {
    try {
      const st = await stat(join(dir, e.name));
      if (st.isFile()) return 'file';
      if (st.isDirectory()) return 'dir';
      return `a link to ${specialKind(st)}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ELOOP' ? 'a symbolic link loop' : code === 'ENOENT' ? 'a dangling symbolic link (its target does not exist)' : `an unreadable link (${code ?? 'error'})`;
    }
  }
  return specialKind(e);
}

/** What a non-regular, non-folder entry is, in words. */
function specialKind(e: Pick<Dirent, 'isFIFO' | 'isSocket' | 'isBlockDevice' | 'isCharacterDevice'>): string {
  if (e.isFIFO()) return 'not a regular file (a named pipe)';
  if (e.isSocket()) return 'not a regular file (a socket)';
  if (e.isBlockDevice() || e.isCharacterDevice()) return 'not a regular file (a device)';
  return 'not a regular file';
}

/**
 * Image files under a class folder, depth first in sorted order; non-images and special entries go to `skipped`.
 * A file whose real path lies outside the class folder (reached through a link) is skipped: it must not take the
 * folder's label.
 */
async function walk(dir: string, skipped: Skipped[], depth = 0, root?: string): Promise<string[]> {
  const top = root ?? (await realpath(dir));
  const { files, dirs, others } = await listDir(dir);
  skipped.push(...others);
  const out: string[] = [];
  for (const f of files) {
    const path = join(dir, f);
    if (!isImageFile(f)) skipped.push(notImage(path));
    else if (!(await inside(path, top))) skipped.push({ path, reason: 'a link that leads out of its class folder (it would take this folder\'s label)' });
    else out.push(path);
  }
  for (const d of dirs) {
    // Guards against symlink cycles; real datasets are one or two levels deep.
    if (depth >= 8) skipped.push({ path: join(dir, d), reason: 'folder nested too deep (over 8 levels)' });
    else if (!(await inside(join(dir, d), top))) skipped.push({ path: join(dir, d), reason: 'a link that leads out of its class folder (it would take this folder\'s label)' });
    else out.push(...(await walk(join(dir, d), skipped, depth + 1, top)));
  }
  return out;
}

async function inside(path: string, root: string): Promise<boolean> {
  const real = await realpath(path).catch(() => undefined);
  return !!real && (real === root || real.startsWith(root + sep));
}

async function statOrThrow(abs: string, given: string): Promise<Stats> {
  const st = await statOrUndefined(abs);
  if (!st) throw new PatchAtlasError('NOT_FOUND', `not found: ${given}${given === abs ? '' : ` (${abs})`}`);
  return st;
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

