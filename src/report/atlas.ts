/**
 * atlas.json → the report's atlas section: the cell grid with attribution, composition, icons and
 * example thumbnails, and the bridge ranking. Icons (`icons/cell-<i>-<j>.png`) and `atlas.png` are
 * optional: the `icons` stage may not have run, and the grid is drawn without them.
 */
import { dirname, join } from 'node:path';
import type { Media } from '../data/media.js';
import type { AtlasFile } from '../formats/atlas.js';
import type { CellExample, DataUri, ReportAtlas, ReportBridge, ReportCell } from '../formats/report.js';
import { mapLimit } from '../util/concurrency.js';

export interface AtlasSectionOptions {
  /** Bridges listed in the report (best first); default 10. */
  bridges?: number;
  /** Bridges outlined on the grid; default 5. */
  highlight?: number;
  /** Example images per cell; default 3, of which `thumbs` get a thumbnail. */
  examples?: number;
  thumbs?: number;
  /** At most this many distinct thumbnails in the whole report (file size); default 400. */
  maxThumbs?: number;
  thumbSize?: number;
  iconSize?: number;
  onNote?: (note: string) => void;
}

export async function atlasSection(atlas: AtlasFile, path: string, media: Media, opts: AtlasSectionOptions = {}): Promise<ReportAtlas> {
  const dir = dirname(path);
  const note = opts.onNote ?? (() => {});
  const classes = atlas.classes.map((c) => ({ wnid: c.wnid, name: c.name }));
  // Image labels in atlas.json are WordNet ids; name them where the atlas knows the class.
  const nameOf = new Map([...atlas.cells.flatMap((c) => c.topClasses.map((t) => [t.wnid, t.name] as const)), ...classes.map((c) => [c.wnid, c.name] as const)]);
  const grid = Math.max(atlas.params.grid, ...atlas.cells.map((c) => Math.max(c.i, c.j) + 1));

  const bridges = [...atlas.bridges].sort((a, b) => a.rank - b.rank);
  // Only bridges that actually push toward B are outlined: a negative score is a cell pulling toward A.
  const highlighted = new Map(bridges.filter((b) => (b.score ?? 0) > 0).slice(0, opts.highlight ?? 5).map((b) => [`${b.i},${b.j}`, b]));

  // Icons: one file per cell, found or not.
  const iconSize = opts.iconSize ?? 96;
  // Icons are where `icons` recorded them in atlas.json.
  const icons = await mapLimit(atlas.cells, 4, (c) => (c.icon ? media.pngFile(join(dir, c.icon), iconSize) : Promise.resolve(null)));
  const iconCount = icons.filter((x) => x !== null).length;
  if (iconCount === 0) note(`no cell icons in ${join(dir, 'icons')} (run \`patch-atlas icons\`): the atlas is drawn as a grid of cells`);
  else if (iconCount < atlas.cells.length) note(`${atlas.cells.length - iconCount} of ${atlas.cells.length} cells have no icon in ${join(dir, 'icons')}`);
  const picturePath = join(dir, 'atlas.png');
  const picture = media.locate(picturePath, []) ? await media.pngFile(picturePath, 1024) : null;
  if (media.locate(picturePath, []) && !picture) note(`${picturePath} could not be read`);

  // Thumbnails, shared between cells and bridges; capped so a 20×20 layer atlas stays a few MB.
  const thumbs = new Map<string, Promise<DataUri | null>>();
  const maxThumbs = opts.maxThumbs ?? 400;
  let capped = 0;
  let unreadable = 0;
  const bases = [process.cwd(), dir, atlas.run ?? ''].filter(Boolean);
  const thumb = (p: string): Promise<DataUri | null> => {
    const hit = thumbs.get(p);
    if (hit) return hit;
    if (thumbs.size >= maxThumbs) {
      capped++;
      return Promise.resolve(null);
    }
    const file = media.locate(p, bases);
    const t = (file ? media.thumbnail(file, opts.thumbSize ?? 64) : Promise.resolve(null)).then((u) => {
      if (!u) unreadable++;
      return u;
    });
    thumbs.set(p, t);
    return t;
  };
  const nEx = opts.examples ?? 3;
  const nThumb = opts.thumbs ?? 2;
  const examplesOf = (c: AtlasFile['cells'][number], withThumbs: number): Array<Promise<CellExample>> =>
    c.images.slice(0, nEx).map(async (im, k) => ({ path: im.path, label: im.label === null ? null : (nameOf.get(im.label) ?? im.label), count: im.count, thumb: k < withThumbs ? await thumb(im.path) : null }));

  // Bridge cells first, so the cap never starves the cells the report is about.
  const cellAt = new Map(atlas.cells.map((c, k) => [`${c.i},${c.j}`, k]));
  const bridgeList = bridges.slice(0, opts.bridges ?? 10);
  const bridgeExamples = await Promise.all(
    bridgeList.map((b) => {
      const c = atlas.cells[cellAt.get(`${b.i},${b.j}`) ?? -1];
      return c ? Promise.all(examplesOf(c, nEx)) : Promise.resolve([]);
    }),
  );
  const cellExamples = await mapLimit(atlas.cells, 4, (c) => Promise.all(examplesOf(c, nThumb)));
  if (capped) note(`${capped} example thumbnails left out (at most ${maxThumbs} per report)`);
  if (unreadable) note(`${unreadable} example images could not be read for thumbnails (paths in atlas.json are relative to where \`collect\` ran)`);

  const cells = atlas.cells.map((c, k): ReportCell => {
    const hl = highlighted.get(`${c.i},${c.j}`);
    const comp = c.labels;
    return {
      i: c.i,
      j: c.j,
      count: c.count,
      attr: c.attr.map((v) => ({ wnid: v.wnid, name: nameOf.get(v.wnid) ?? v.wnid, value: v.value })),
      composition: { classes: comp.classes.map((v, q) => ({ name: classes[q]?.name ?? `class ${q + 1}`, value: v.value ?? 0 })), other: comp.other ?? 0, unlabelled: comp.unlabelled ?? 0 },
      topClasses: c.topClasses.map((t) => ({ wnid: t.wnid, name: t.name, value: t.value })),
      icon: icons[k] ?? null,
      bridge: hl ? { rank: hl.rank, score: hl.score } : null,
      examples: cellExamples[k]!,
    };
  });
  const reportBridges = bridgeList.map((b, k): ReportBridge => ({
    rank: b.rank,
    i: b.i,
    j: b.j,
    count: b.count,
    score: b.score,
    towardB: b.towardB,
    fromA: b.fromA,
    between: b.between,
    reason: b.reason,
    icon: icons[cellAt.get(`${b.i},${b.j}`) ?? -1] ?? null,
    examples: bridgeExamples[k]!,
  }));
  return { file: path, kind: atlas.kind, model: atlas.model, layer: atlas.layer, run: atlas.run, classes, grid, points: atlas.points, picture, cells, bridges: reportBridges, icons: iconCount };
}
