import { join } from 'node:path';
import { z } from 'zod';
import { className, num, readFormat, writeFormat, type Format, type ReadOptions } from './file.js';
import { producerSchema } from './producer.js';

/**
 * atlas.json: what `atlas` writes and every later stage reads (icons, patches, evaluate --atlas, the
 * report, the screen) without going back to the run: the class pair, the layout, per cell its mean
 * activation, attribution, composition and source images, and the bridge ranking. `icons` adds each
 * rendered cell's icon file and objective value, and its settings.
 *
 * Version 2 adds `producer` and names the icon side `iconPx`; version-1 files are upgraded on read.
 */
export const ATLAS_FORMAT = 'patch-atlas-atlas/2';
export const ATLAS_FILE = 'atlas.json';

const composition = z.object({
  classes: z.array(z.object({ cls: z.number(), value: num })),
  other: num,
  unlabelled: num,
  top: z.array(z.object({ cls: z.number(), count: z.number() })),
});

const cell = z.object({
  i: z.number().int(),
  j: z.number().int(),
  x: num,
  y: num,
  count: z.number().int(),
  /** The cell's mean activation: the direction its icon is rendered from. */
  meanAct: z.array(num),
  /** Mean attribution to each class of the atlas (by WordNet id). */
  attr: z.array(z.object({ wnid: z.string(), value: num })),
  topClasses: z.array(z.object({ wnid: z.string(), name: z.string(), value: num })),
  images: z.array(z.object({ path: z.string(), label: z.string().nullable(), count: z.number() })),
  labels: composition,
  predicted: composition.optional(),
  /** Written by `icons`: the icon file, relative to atlas.json's folder, and its objective value. */
  icon: z.string().optional(),
  iconObjective: num.optional(),
});
export type AtlasCell = z.infer<typeof cell>;

/** One cell's bridge score, best first (see src/atlas/bridge.ts for what each term means). */
const bridge = z.object({
  cell: z.number().int(),
  i: z.number().int(),
  j: z.number().int(),
  count: z.number().int(),
  rank: z.number().int(),
  score: num,
  towardB: num,
  fromA: num,
  fromASource: z.enum(['label', 'prediction', 'attribution', 'none']),
  between: num,
  t: num,
  support: num,
  reason: z.string(),
});
export type AtlasBridge = z.infer<typeof bridge>;

const params = z.object({
  grid: z.number().int(),
  minDensity: z.number().int(),
  margin: z.number(),
  k: z.number().int(),
  umap: z.object({ nNeighbors: z.number(), minDist: z.number(), metric: z.enum(['cosine', 'euclidean']), seed: z.number(), nEpochs: z.number().nullable() }),
  /** Points kept per class by attribution (pair and class atlases). */
  topN: z.number(),
  /** Whole-layer atlas: points laid out (null otherwise). */
  subsample: z.number().nullable(),
  /** Pair atlas: class columns and the layout; class atlas: the class column. */
  a: z.number().optional(),
  b: z.number().optional(),
  layout: z.enum(['pair-axis', 'umap']).optional(),
  cls: z.number().optional(),
});
export type AtlasParams = z.infer<typeof params>;

const iconSettings = z.object({ iconPx: z.number().int(), steps: z.number().int(), tries: z.number().int(), cossimPower: z.number(), seed: z.number() });
export type IconSettings = z.infer<typeof iconSettings>;

const atlasSchema = z.object({
  format: z.literal(ATLAS_FORMAT),
  producer: producerSchema,
  kind: z.enum(['pair', 'class', 'layer']),
  /** The collect run it was built from (absolute, or as given). */
  run: z.string(),
  model: z.string(),
  layer: z.string(),
  /** A then B for a pair atlas; one class for a class atlas; none for a whole layer. */
  classes: z.array(className.extend({ column: z.number().int() })),
  params,
  notes: z.array(z.string()),
  points: z.number().int(),
  /** Normalised layout, [x, y] per laid-out point, and each point's index in the run. */
  layout: z.object({ xy: z.array(num), point: z.array(z.number()) }),
  cells: z.array(cell),
  /** Every cell ranked by bridge score (pair atlases; empty otherwise). */
  bridges: z.array(bridge),
  iconSettings: iconSettings.optional(),
});
export type AtlasFile = z.infer<typeof atlasSchema>;

export const atlasFormat: Format<AtlasFile> = {
  what: 'an atlas.json written by `patch-atlas atlas`',
  file: ATLAS_FILE,
  version: ATLAS_FORMAT,
  schema: atlasSchema,
  hint: 'write one with `patch-atlas atlas --run RUN --pair A:B`',
  upgrades: {
    'patch-atlas-atlas/1': (raw) => {
      const { version, iconSettings: icons, ...rest } = raw as Record<string, unknown> & { iconSettings?: Record<string, unknown> & { size?: number } };
      const { size, ...iconRest } = icons ?? {};
      return {
        ...rest,
        format: ATLAS_FORMAT,
        producer: { tool: 'patch-atlas', version: String(version ?? 'unknown'), model: typeof raw.model === 'string' ? raw.model : null, engine: 'unknown', threads: 0 },
        ...(icons ? { iconSettings: { ...iconRest, iconPx: size } } : {}),
      };
    },
  },
};

/** atlas.json at `path`, or inside the folder `path` when it is one (errors name `label`, e.g. --atlas). */
export function readAtlas(path: string, o: ReadOptions = {}): AtlasFile {
  return readFormat(atlasFormat, path, o);
}

export async function writeAtlas(path: string, atlas: AtlasFile): Promise<void> {
  await writeFormat(atlasFormat, path, atlas);
}

/** The icon file of a cell, relative to atlas.json's folder (where `icons` writes it). */
export function cellIconFile(c: Pick<AtlasCell, 'i' | 'j'>): string {
  return join('icons', `cell-${c.i}-${c.j}.png`);
}
