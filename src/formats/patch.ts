import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import { loadPatchImage, type PatchImage } from '../data/patches.js';
import { writeFileAtomic } from '../util/atomic.js';
import { className, num, parseFormat, parseJson, writeFormat, type Format } from './file.js';
import { producer, producerSchema } from './producer.js';

/**
 * A patch on disk: `<name>.png` (8-bit RGB, exactly the pixels evaluated) and `<name>.json` beside it
 * (the sidecar) saying what it is and how it was made: its kind, the class pair, the atlas cell it came
 * from, its settings and training trace. A patch can be re-applied, re-evaluated or optimised further
 * without the atlas or run that made it, and `evaluate` takes the class pair from it.
 *
 * Version 2 adds `format` and `producer` and names the patch side `patchPx` (version 1 had no format
 * field, `tool` and `size`); version-1 sidecars are upgraded on read.
 */
export const PATCH_FORMAT = 'patch-atlas-patch/2';

export const PATCH_KINDS = ['icon', 'eot', 'photo', 'noise'] as const;
export type PatchKind = (typeof PATCH_KINDS)[number];

/** The atlas cell a patch was made from (icon patches, and EOT patches started from an icon). */
const cellSchema = z.object({
  /** atlas.json and the collect run it was built from, where known. */
  atlas: z.string().optional(),
  run: z.string().optional(),
  layer: z.string(),
  i: z.number().int(),
  j: z.number().int(),
  count: z.number().int(),
  /** Bridge rank (1 = best) and score. */
  rank: z.number().int(),
  score: num,
  reason: z.string().nullable().optional(),
  topClasses: z.array(z.object({ wnid: z.string(), name: z.string(), value: num })).optional(),
});
export type PatchCell = z.infer<typeof cellSchema>;

/** How an icon patch was rendered (feature visualisation of the cell's whitened mean activation). */
const iconSettings = z.object({
  patchPx: z.number().int(),
  steps: z.number().int(),
  tries: z.number().int(),
  cossimPower: z.number(),
  lr: z.number(),
  parameterisation: z.string(),
  transforms: z.string(),
  optimiser: z.string(),
});
/** How an EOT patch was optimised (see src/patch/optimise.ts). */
const eotSettings = z.object({
  patchPx: z.number().int(),
  steps: z.number().int(),
  stepOffset: z.number().int(),
  batchSize: z.number().int(),
  lr: z.number(),
  sizeRange: z.tuple([z.number(), z.number()]),
  maxRotation: z.number(),
  untargetedWeight: z.number(),
  seed: z.number(),
  parameterisation: z.literal('sigmoid-logits'),
  optimiser: z.literal('adam'),
});
export type IconPatchSettings = z.infer<typeof iconSettings>;
export type EotPatchSettings = z.infer<typeof eotSettings>;

const traceSchema = z.object({
  steps: z.number().int(),
  firstStep: z.number().int(),
  lastStep: z.number().int(),
  first: z.object({ loss: num, pTarget: num }),
  /** Means over the last ≤10 steps: single steps are noisy (each sees different images and placements). */
  last: z.object({ loss: num, pTarget: num }),
});
export type TraceSummary = z.infer<typeof traceSchema>;

const sidecarSchema = z.object({
  format: z.literal(PATCH_FORMAT),
  producer: producerSchema,
  name: z.string(),
  kind: z.enum(PATCH_KINDS),
  /** The model the patch was made for. */
  model: z.string(),
  target: className,
  source: className.optional(),
  cell: cellSchema.optional(),
  /** What the optimisation started from: 'noise', 'fourier-noise', an icon file, or a previous patch. */
  init: z.string().optional(),
  seed: z.number().optional(),
  settings: z.union([iconSettings, eotSettings]).optional(),
  /** What the pixels maximise, in words, and its value where there is one. */
  objective: z.object({ kind: z.enum(['direction-cossim', 'eot-log-prob']), description: z.string(), value: num.optional() }).optional(),
  /** The split an EOT patch was trained on (its train side). */
  split: z.object({ file: z.string(), testFraction: z.number(), seed: z.number(), train: z.number(), test: z.number(), trainPool: z.number() }).optional(),
  trace: traceSchema.optional(),
  /** Patch side in pixels. */
  patchPx: z.number().int(),
  /** sha256 of the RGB bytes: a PNG replaced after its sidecar was written is detected, not misdescribed. */
  pixelsSha256: z.string(),
  createdAt: z.string(),
});
export type PatchSidecar = z.infer<typeof sidecarSchema>;

/** What the caller describes; format, producer, side, checksum and time are filled in. */
export type PatchDescription = Omit<PatchSidecar, 'format' | 'producer' | 'patchPx' | 'pixelsSha256' | 'createdAt'> & { createdAt?: string };

const renamePx = (s: unknown) => {
  if (!s || typeof s !== 'object') return s;
  const { side, ...rest } = s as Record<string, unknown>;
  return side === undefined ? s : { patchPx: side, ...rest };
};

export const patchFormat: Format<PatchSidecar> = {
  what: 'a patch sidecar written by patch-atlas',
  file: 'patch.json',
  version: PATCH_FORMAT,
  schema: sidecarSchema,
  code: 'BAD_IMAGE',
  hint: 'delete it to use the PNG alone',
  unversioned: {
    test: (raw) => typeof raw.pixelsSha256 === 'string' && typeof raw.size === 'number',
    upgrade: (raw) => {
      const { tool, size, settings, ...rest } = raw as Record<string, unknown> & { tool?: { version?: string } };
      return {
        ...rest,
        format: PATCH_FORMAT,
        producer: { tool: 'patch-atlas', version: String(tool?.version ?? 'unknown'), model: typeof raw.model === 'string' ? raw.model : null, engine: 'unknown', threads: 0 },
        patchPx: size,
        ...(settings !== undefined ? { settings: renamePx(settings) } : {}),
      };
    },
  },
};

export interface ReadPatch extends PatchImage {
  /** null when there is no sidecar, or it no longer matches the PNG (see `warning`). */
  sidecar: PatchSidecar | null;
  warning?: string;
}

export function sidecarPath(pngPath: string): string {
  return extname(pngPath).toLowerCase() === '.png' ? pngPath.slice(0, -4) + '.json' : pngPath + '.json';
}

/**
 * Writes the PNG, then its sidecar, each atomically (readers see a whole old or whole new file). The
 * sidecar carries the pixels' checksum, so a reader that catches the pair between the two renames
 * sees a mismatch rather than the old description on the new pixels.
 */
export async function writePatch(pngPath: string, patch: { rgb: Uint8Array; px: number }, desc: PatchDescription): Promise<{ png: string; json: string; sidecar: PatchSidecar }> {
  const { rgb, px } = patch;
  if (!Number.isInteger(px) || px < 1 || rgb.length !== px * px * 3) {
    throw new PatchAtlasError('BAD_FLAG', `patch "${desc.name}" has ${rgb.length} bytes, expected ${px}×${px}×3`);
  }
  if (!(PATCH_KINDS as readonly string[]).includes(desc.kind)) throw new PatchAtlasError('BAD_FLAG', `patch kind "${String(desc.kind)}" is not one of ${PATCH_KINDS.join(', ')}`);
  if (extname(pngPath).toLowerCase() !== '.png') throw new PatchAtlasError('BAD_FLAG', `patch file ${pngPath} must end in .png`, 'PNG keeps the pixels exactly');
  const { createdAt, ...rest } = desc;
  const sidecar: PatchSidecar = {
    format: PATCH_FORMAT,
    producer: producer(desc.model),
    ...rest,
    patchPx: px,
    pixelsSha256: sha256(rgb),
    createdAt: createdAt ?? new Date().toISOString(),
  };
  const png = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: px, height: px, channels: 3 } }).png().toBuffer();
  const json = sidecarPath(pngPath);
  await writeFileAtomic(pngPath, png);
  await writeFormat(patchFormat, json, sidecar);
  return { png: pngPath, json, sidecar };
}

/**
 * A patch image with its sidecar when it has one: ready for evaluation (named after the sidecar, else
 * the file), or as the `init` of a further optimisation (with `sidecar.trace.lastStep + 1` as the step
 * offset). Images that are not square RGB PNGs are read as `loadPatchImage` reads them.
 */
export async function readPatch(pngPath: string): Promise<ReadPatch> {
  if (!(await stat(pngPath).catch(() => undefined))?.isFile()) throw new PatchAtlasError('NOT_FOUND', `patch ${pngPath} does not exist`);
  const image = await loadPatchImage(pngPath);
  const json = sidecarPath(pngPath);
  let text: string;
  try {
    text = await readFile(json, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ...image, sidecar: null };
    throw new PatchAtlasError('NOT_FOUND', `cannot read patch sidecar ${json}: ${(e as Error).message}`);
  }
  const sidecar = parseFormat(patchFormat, parseJson(patchFormat, text, json), json);
  if (sidecar.patchPx !== image.px || sidecar.pixelsSha256 !== sha256(image.rgb)) {
    return { ...image, sidecar: null, warning: `${json} describes other pixels than ${pngPath} (the PNG was changed after it was written); ignoring the sidecar` };
  }
  return { ...image, name: sidecar.name, sidecar };
}

/** The sidecar of a patch file when it has a readable one that matches its pixels; null otherwise (never throws for a bad sidecar). */
export async function sidecarOf(pngPath: string): Promise<PatchSidecar | null> {
  try {
    return (await readPatch(pngPath)).sidecar;
  } catch (e) {
    if (isPatchAtlasError(e)) return null;
    throw e;
  }
}

/** The file name without its extension: a patch's name when it has no sidecar. */
export function patchFileName(path: string): string {
  return basename(path, extname(path));
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
