import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset, type Dataset } from '../../src/data/dataset.js';
import { isImageFile } from '../../src/data/extensions.js';
import { PatchAtlasError } from '../../src/errors.js';
import { LabelSet } from '../../src/model/labels.js';
import { makeTempDir, removeDir, writeJpeg, writeText } from '../helpers/images.js';

const labels = new LabelSet(JSON.parse(readFileSync(new URL('../../models/labels/imagenet-1000.json', import.meta.url), 'utf8')));
const GREY_WHALE = 'n02066245';
const TENCH = 'n01440764';
const SHARK = 'n01484850';

let root: string;
beforeAll(async () => {
  root = await makeTempDir('pa-dataset-');
});
afterAll(async () => {
  await removeDir(root);
});

let shade = 1;

/** Build files under a fresh folder: names ending in an image extension get a real JPEG. */
async function tree(name: string, files: string[]): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const f of files) {
    if (f.endsWith('/')) await mkdir(join(dir, f), { recursive: true });
    // A different colour per file: identical images are one image to openDataset (counted once).
    else if (isImageFile(f)) await writeJpeg(join(dir, f), 16, 16, [(shade * 37) % 256, (shade * 91) % 256, (shade++ * 53) % 256]);
    else await writeText(join(dir, f));
  }
  return dir;
}

const rel = (ds: Dataset, base: string) => ds.items.map((i) => [i.path.slice(base.length + 1), i.label?.wnid]);

async function rejection(p: Promise<unknown>): Promise<PatchAtlasError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PatchAtlasError);
  return e as PatchAtlasError;
}

describe('openDataset: class folders', () => {
  it('labels sub-folders named by WordNet id, sorted by path', async () => {
    const dir = await tree('wnid-folders', [`${GREY_WHALE}/b.png`, `${GREY_WHALE}/a.jpg`, `${TENCH}/z.JPEG`]);
    const ds = await openDataset(dir, labels);
    expect(ds.layout).toBe('class-folders');
    expect(ds.source).toBe(dir);
    expect(rel(ds, dir)).toEqual([
      [`${TENCH}/z.JPEG`, TENCH],
      [`${GREY_WHALE}/a.jpg`, GREY_WHALE],
      [`${GREY_WHALE}/b.png`, GREY_WHALE],
    ]);
    expect(ds.unlabelled).toBe(0);
    expect(ds.skipped).toEqual([]);
  });

  it('labels sub-folders named by class name, with underscores or spaces, and searches nested folders', async () => {
    const dir = await tree('name-folders', ['grey_whale/1.jpg', 'great white shark/2.jpg', 'tench/deeper/3.jpg', 'tench/4.jpg']);
    const ds = await openDataset(dir, labels);
    expect(ds.layout).toBe('class-folders');
    expect(rel(ds, dir)).toEqual([
      ['great white shark/2.jpg', SHARK],
      ['grey_whale/1.jpg', GREY_WHALE],
      ['tench/4.jpg', TENCH],
      ['tench/deeper/3.jpg', TENCH],
    ]);
  });

  it('skips unknown and ambiguous folder names, once per folder, with a suggestion; skips non-images; ignores hidden files', async () => {
    const dir = await tree('unknown-folders', [
      'gray whael/1.jpg',
      'gray whael/2.jpg',
      'crane/3.jpg',
      'grey_whale/ok.jpg',
      'grey_whale/notes.txt',
      'grey_whale/.DS_Store',
      'README.md',
      '.hidden/x.jpg',
    ]);
    const ds = await openDataset(dir, labels);
    expect(ds.items.map((i) => i.label?.wnid)).toEqual([GREY_WHALE]);
    const byPath = Object.fromEntries(ds.skipped.map((s) => [s.path.slice(dir.length + 1), s.reason]));
    expect(Object.keys(byPath).sort()).toEqual(['README.md', 'crane', 'gray whael', 'grey_whale/notes.txt']);
    expect(byPath['gray whael']).toMatch(/not a class.*unknown class "gray whael".*"grey whale"/);
    expect(byPath['crane']).toMatch(/ambiguous.*n02012849.*n03126707/);
    expect(byPath['README.md']).toBe('not an image file (extension .md)');
    expect(byPath['grey_whale/notes.txt']).toBe('not an image file (extension .txt)');
  });

  it('stays a class-folder dataset when a stray image sits beside the class folders', async () => {
    const dir = await tree('stray', ['tench/1.jpg', 'tench/2.jpg', 'stray.jpg']);
    const ds = await openDataset(dir, labels);
    expect(ds.layout).toBe('class-folders');
    expect(rel(ds, dir)).toEqual([
      ['tench/1.jpg', TENCH],
      ['tench/2.jpg', TENCH],
    ]);
    expect(ds.skipped).toEqual([{ path: join(dir, 'stray.jpg'), reason: 'image outside the class folders (no label)' }]);
  });

  it('gives NO_IMAGES, naming a skipped entry, when no folder is a class', async () => {
    const dir = await tree('no-classes', ['gray whael/1.jpg']);
    const e = await rejection(openDataset(dir, labels));
    expect(e.code).toBe('NO_IMAGES');
    expect(e.message).toContain(dir);
    expect(e.message).toContain('gray whael');
  });
});

describe('openDataset: flat folder of <wnid>_* files', () => {
  it('labels by wnid prefix, keeps other images unlabelled, skips non-images and sub-folders (even one named like a class synonym)', async () => {
    const dir = await tree('flat', [
      `${TENCH}_tench.JPEG`,
      `${GREY_WHALE}_123.png`,
      'holiday.jpg',
      'n99999999_unknown.jpg',
      'n0206624_short.jpg',
      'notes.txt',
      'sub/inner.jpg', // "sub" is a synonym of submarine
    ]);
    const ds = await openDataset(dir, labels);
    expect(ds.layout).toBe('wnid-files');
    expect(rel(ds, dir)).toEqual([
      ['holiday.jpg', undefined],
      [`${TENCH}_tench.JPEG`, TENCH],
      [`${GREY_WHALE}_123.png`, GREY_WHALE],
      ['n0206624_short.jpg', undefined],
      ['n99999999_unknown.jpg', undefined],
    ]);
    expect(ds.unlabelled).toBe(3);
    expect(ds.skipped.map((s) => s.path.slice(dir.length + 1))).toEqual(['sub', 'notes.txt']);
    expect('label' in ds.items[0]!).toBe(false);
  });
});

describe('openDataset: CSV manifest', () => {
  it('reads path,label rows relative to the CSV, with a header, quotes, names and wnids, in file order', async () => {
    const dir = await tree('manifest', ['imgs/a.jpg', 'imgs/with, comma.jpg', 'imgs/quote"d.png', 'imgs/b.webp', 'elsewhere/abs.jpg']);
    const abs = join(dir, 'elsewhere/abs.jpg');
    const csv = join(dir, 'sub', 'list.csv');
    await mkdir(join(dir, 'sub'));
    await writeFile(
      csv,
      [
        'path,label',
        `../imgs/b.webp,${GREY_WHALE}`,
        '"../imgs/with, comma.jpg","grey whale"',
        '',
        '"../imgs/quote""d.png",tench',
        `${abs},great_white_shark`,
        '../imgs/a.jpg,',
        '../imgs/missing.jpg,tench',
        '../imgs/a.jpg',
      ].join('\r\n'),
    );
    const ds = await openDataset(csv, labels);
    expect(ds.layout).toBe('manifest');
    expect(ds.source).toBe(csv);
    expect(rel(ds, dir)).toEqual([
      ['imgs/b.webp', GREY_WHALE],
      ['imgs/with, comma.jpg', GREY_WHALE],
      ['imgs/quote"d.png', TENCH],
      ['elsewhere/abs.jpg', SHARK],
      ['imgs/a.jpg', undefined],
    ]);
    expect(ds.unlabelled).toBe(1);
    // The repeated row is counted once, with a note.
    expect(ds.skipped).toEqual([
      { path: join(dir, 'imgs/missing.jpg'), reason: 'not found (manifest line 8)' },
      { path: join(dir, 'imgs/a.jpg'), reason: `the same image as ${join(dir, 'imgs/a.jpg')} (listed twice), counted once` },
    ]);
  });

  it('works without a header', async () => {
    const dir = await tree('manifest-nohead', ['x.jpg']);
    const csv = join(dir, 'm.csv');
    await writeFile(csv, `x.jpg,${TENCH}\n`);
    const ds = await openDataset(csv, labels);
    expect(rel(ds, dir)).toEqual([['x.jpg', TENCH]]);
  });

  const badRow = async (name: string, body: string) => {
    const dir = await tree(name, ['x.jpg']);
    const csv = join(dir, 'bad.csv');
    await writeFile(csv, body);
    const e = await rejection(openDataset(csv, labels));
    expect(e.code).toBe('BAD_MANIFEST');
    return { e, csv };
  };

  it('unknown label: BAD_MANIFEST naming file and line, with a suggestion', async () => {
    const { e, csv } = await badRow('bad-label', `path,label\nx.jpg,tench\nx.jpg,gray whael\n`);
    expect(e.message.startsWith(`${csv}:3: unknown label "gray whael"`)).toBe(true);
    expect(e.hint).toMatch(/grey whale/);
    expect(e.message.match(/closest/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });

  it('too many fields: BAD_MANIFEST with the line', async () => {
    const { e, csv } = await badRow('bad-fields', `x.jpg,tench\nx.jpg,tench,extra\n`);
    expect(e.message).toMatch(new RegExp(`^${csv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: expected "path,label"`));
  });

  it('unterminated quote and empty path: BAD_MANIFEST with the line', async () => {
    expect((await badRow('bad-quote', `x.jpg,tench\n"x.jpg,tench\n`)).e.message).toMatch(/bad\.csv:2: unterminated quoted field/);
    expect((await badRow('bad-empty', `x.jpg,tench\n,tench\n`)).e.message).toMatch(/bad\.csv:2: empty image path/);
  });
});

describe('openDataset: explicit files', () => {
  it('keeps the given order, labels by wnid prefix, expands folders, skips non-images', async () => {
    const dir = await tree('files', [`z.jpg`, `${TENCH}_x.png`, 'note.txt', 'folder/b.jpg', 'folder/a.jpg']);
    const ds = await openDataset([join(dir, 'z.jpg'), join(dir, `${TENCH}_x.png`), join(dir, 'note.txt'), join(dir, 'folder')], labels);
    expect(ds.layout).toBe('files');
    expect(rel(ds, dir)).toEqual([
      ['z.jpg', undefined],
      [`${TENCH}_x.png`, TENCH],
      ['folder/a.jpg', undefined],
      ['folder/b.jpg', undefined],
    ]);
    expect(ds.unlabelled).toBe(3);
    expect(ds.skipped).toEqual([{ path: join(dir, 'note.txt'), reason: 'not an image file (extension .txt)' }]);
  });

  it('a single image path is a one-item dataset', async () => {
    const dir = await tree('single', ['one.jpg']);
    const ds = await openDataset(join(dir, 'one.jpg'), labels);
    expect(ds.layout).toBe('files');
    expect(ds.items).toEqual([{ path: join(dir, 'one.jpg'), unlabelled: 'no WordNet id at the start of the file name' }]);
  });

  it('a missing path in the list is NOT_FOUND naming it', async () => {
    const dir = await tree('files-missing', ['ok.jpg']);
    const e = await rejection(openDataset([join(dir, 'ok.jpg'), 'no/such/file.jpg'], labels));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain('no/such/file.jpg');
  });
});

describe('openDataset: errors', () => {
  it('missing source: NOT_FOUND naming the path', async () => {
    const missing = join(root, 'does-not-exist');
    const e = await rejection(openDataset(missing, labels));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain(missing);
  });

  it('empty folder, or only non-images: NO_IMAGES', async () => {
    expect((await rejection(openDataset(await tree('empty', []), labels))).code).toBe('NO_IMAGES');
    expect((await rejection(openDataset(await tree('texts', ['a.txt', 'b.bmp']), labels))).code).toBe('NO_IMAGES');
    expect((await rejection(openDataset([], labels))).code).toBe('NO_IMAGES');
  });
});

describe('openDataset: hostile folders', () => {
  it('skips dangling links, link loops and FIFOs with a reason each (a FIFO is never opened)', async () => {
    const dir = await tree('specials', [`${TENCH}_a.jpg`]);
    symlinkSync(join(dir, 'nowhere.jpg'), join(dir, `${TENCH}_dangling.jpg`));
    symlinkSync(join(dir, 'loop-b.jpg'), join(dir, 'loop-a.jpg'));
    symlinkSync(join(dir, 'loop-a.jpg'), join(dir, 'loop-b.jpg'));
    execFileSync('mkfifo', [join(dir, `${TENCH}_fifo.jpg`)]);
    const ds = await openDataset(dir, labels);
    expect(rel(ds, dir)).toEqual([[`${TENCH}_a.jpg`, TENCH]]);
    const reasons = Object.fromEntries(ds.skipped.map((s) => [s.path.slice(dir.length + 1), s.reason]));
    expect(reasons[`${TENCH}_dangling.jpg`]).toMatch(/dangling symbolic link/);
    expect(reasons['loop-a.jpg']).toMatch(/symbolic link loop/);
    expect(reasons[`${TENCH}_fifo.jpg`]).toMatch(/named pipe/);
    // Given explicitly, or in a manifest, a FIFO is skipped too rather than read.
    const direct = await openDataset([join(dir, `${TENCH}_fifo.jpg`), join(dir, `${TENCH}_a.jpg`)], labels);
    expect(direct.items).toHaveLength(1);
    expect(direct.skipped[0]!.reason).toMatch(/named pipe/);
  });

  it('does not let a link out of a class folder lend its images that class', async () => {
    const dir = await tree('escape', [`${GREY_WHALE}/own.jpg`, `${SHARK}/shark.jpg`]);
    symlinkSync(join(dir, SHARK, 'shark.jpg'), join(dir, GREY_WHALE, 'borrowed.jpg'));
    symlinkSync(join(dir, SHARK), join(dir, GREY_WHALE, 'more'));
    const ds = await openDataset(dir, labels);
    expect(rel(ds, dir)).toEqual([[`${SHARK}/shark.jpg`, SHARK], [`${GREY_WHALE}/own.jpg`, GREY_WHALE]]);
    const out = ds.skipped.filter((s) => /leads out of its class folder/.test(s.reason)).map((s) => s.path.slice(dir.length + 1));
    expect(out.sort()).toEqual([`${GREY_WHALE}/borrowed.jpg`, `${GREY_WHALE}/more`]);
  });

  it('counts the same image once: a repeated manifest line, a copy under another name', async () => {
    const dir = await tree('dups', [`${TENCH}_a.jpg`, `${TENCH}_b.jpg`]);
    copyFileSync(join(dir, `${TENCH}_a.jpg`), join(dir, `${TENCH}_copy.jpg`));
    const flat = await openDataset(dir, labels);
    expect(rel(flat, dir)).toEqual([[`${TENCH}_a.jpg`, TENCH], [`${TENCH}_b.jpg`, TENCH]]);
    expect(flat.skipped).toEqual([{ path: join(dir, `${TENCH}_copy.jpg`), reason: `the same image as ${join(dir, `${TENCH}_a.jpg`)} (same content), counted once` }]);
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, `${TENCH}_b.jpg,tench\n${TENCH}_b.jpg,tench\n${TENCH}_a.jpg,tench\n`);
    const m = await openDataset(csv, labels);
    expect(m.items.map((i) => basename(i.path))).toEqual([`${TENCH}_b.jpg`, `${TENCH}_a.jpg`]);
    expect(m.skipped.map((s) => s.reason)).toEqual([`the same image as ${join(dir, `${TENCH}_b.jpg`)} (listed twice), counted once`]);
  });
});

