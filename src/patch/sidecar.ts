import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import sharp from 'sharp';
import { PatchAtlasError } from '../errors.js';
import type { PatchInput } from '../evaluate/evaluate-patches.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { packageVersion } from '../util/paths.js';
import type { PatchSettings, PatchStep } from './optimise.js';
import { loadPatches } from './load.js';

/**
 * A patch on disk: `<name>.png` (8-bit RGB, exactly the pixels evaluated) and `<name>.json` beside it
 * saying what it is and how it was made, so it can be re-applied, re-evaluated or optimised further
 * later without the atlas or run that produced it.
 */

export type PatchKind = 'icon' | 'eot' | 'photo' | 'noise';

export interface ClassName {
  wnid: string;
  name: string;
}

/** Loss and target probability over an optimisation, without every step. */
export interface TraceSummary {
  steps: number;
  firstStep: number;
  lastStep: number;
  first: { loss: number; pTarget: number };
  /** Means over the last ≤10 steps: single steps are noisy (each sees different images and placements). */
  last: { loss: number; pTarget: number };
}

export interface PatchSidecar {
  name: string;
  kind: PatchKind;
  /** Model name (descriptor name) the patch was made for. */
  model: string;
  target: ClassName;
  source?: ClassName;
  /** The atlas cell an icon patch came from (layer, grid position, …), as the atlas describes it. */
  cell?: Record<string, unknown>;
  /** What the optimisation started from: 'noise', an icon or file name, or a previous patch. */
  init?: string;
  seed?: number;
  settings?: PatchSettings | Record<string, unknown>;
  trace?: TraceSummary;
  /** Patch side in pixels. */
  size: number;
  /** sha256 of the RGB bytes: a PNG replaced after its sidecar was written is detected, not misdescribed. */
  pixelsSha256: string;
  createdAt: string;
  tool: { name: 'patch-atlas'; version: string };
}

/** What the caller describes; size, checksum, time and tool version are filled in. */
export type PatchDescription = Omit<PatchSidecar, 'size' | 'pixelsSha256' | 'createdAt' | 'tool'> & { createdAt?: string };

export interface ReadPatch extends PatchInput {
  /** null when there is no sidecar, or it no longer matches the PNG (see `warning`). */
  sidecar: PatchSidecar | null;
  warning?: string;
}

const KINDS: readonly PatchKind[] = ['icon', 'eot', 'photo', 'noise'];

export function sidecarPath(pngPath: string): string {
  return extname(pngPath).toLowerCase() === '.png' ? pngPath.slice(0, -4) + '.json' : pngPath + '.json';
}

export function summariseTrace(trace: readonly PatchStep[]): TraceSummary | undefined {
  if (trace.length === 0) return undefined;
  const tail = trace.slice(-10);
  const mean = (k: 'loss' | 'pTarget') => tail.reduce((a, s) => a + s[k], 0) / tail.length;
  return {
    steps: trace.length,
    firstStep: trace[0]!.step,
    lastStep: trace[trace.length - 1]!.step,
    first: { loss: trace[0]!.loss, pTarget: trace[0]!.pTarget },
    last: { loss: mean('loss'), pTarget: mean('pTarget') },
  };
}

/**
 * Write the PNG, then its sidecar, each atomically (readers see a whole old or whole new file). The
 * sidecar carries the pixels' checksum, so a reader that catches the pair between the two renames
 * sees a mismatch rather than the old description on the new pixels.
 */
export async function writePatch(pngPath: string, patch: { rgb: Uint8Array; size: number }, desc: PatchDescription): Promise<{ png: string; json: string; sidecar: PatchSidecar }> {
  const { rgb, size } = patch;
  if (!Number.isInteger(size) || size < 1 || rgb.length !== size * size * 3) {
    throw new PatchAtlasError('BAD_FLAG', `patch "${desc.name}" has ${rgb.length} bytes, expected ${size}×${size}×3`);
  }
  if (!KINDS.includes(desc.kind)) throw new PatchAtlasError('BAD_FLAG', `patch kind "${String(desc.kind)}" is not one of ${KINDS.join(', ')}`);
  if (extname(pngPath).toLowerCase() !== '.png') throw new PatchAtlasError('BAD_FLAG', `patch file ${pngPath} must end in .png`, 'PNG keeps the pixels exactly');
  const { createdAt, ...rest } = desc;
  const sidecar: PatchSidecar = {
    ...rest,
    size,
    pixelsSha256: sha256(rgb),
    createdAt: createdAt ?? new Date().toISOString(),
    tool: { name: 'patch-atlas', version: packageVersion() },
  };
  const png = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
  const json = sidecarPath(pngPath);
  await writeFileAtomic(pngPath, png);
  await writeJsonAtomic(json, sidecar);
  return { png: pngPath, json, sidecar };
}

/**
 * A patch image with its sidecar when it has one: ready for evaluatePatches (named after the sidecar,
 * else the file), or as the `init` of a further optimisation (with `sidecar.trace.lastStep + 1` as the
 * step offset). Images that are not square RGB PNGs are read as loadPatches reads them.
 */
export async function readPatch(pngPath: string): Promise<ReadPatch> {
  if (!(await stat(pngPath).catch(() => undefined))?.isFile()) throw new PatchAtlasError('NOT_FOUND', `patch ${pngPath} does not exist`);
  let rgb: Uint8Array;
  let size: number;
  try {
    const { data, info } = await sharp(pngPath).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.width !== info.height || info.channels !== 3) throw new Error('not square RGB');
    rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    size = info.width;
  } catch {
    // Not one of ours (or not readable): the general loader names the problem, or centre-crops and flattens.
    const [p] = await loadPatches([pngPath]);
    rgb = p!.rgb;
    size = p!.size;
  }
  const fileName = basename(pngPath, extname(pngPath));
  const json = sidecarPath(pngPath);
  let text: string;
  try {
    text = await readFile(json, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { name: fileName, rgb, size, sidecar: null };
    throw new PatchAtlasError('NOT_FOUND', `cannot read patch sidecar ${json}: ${(e as Error).message}`);
  }
  let sidecar: PatchSidecar;
  try {
    sidecar = JSON.parse(text) as PatchSidecar;
  } catch {
    throw new PatchAtlasError('BAD_IMAGE', `patch sidecar ${json} is not valid JSON`, 'delete it to use the PNG alone');
  }
  if (!(sidecar && typeof sidecar.name === 'string' && KINDS.includes(sidecar.kind) && typeof sidecar.target?.wnid === 'string' && typeof sidecar.model === 'string')) {
    throw new PatchAtlasError('BAD_IMAGE', `patch sidecar ${json} lacks name, kind, model or target`, 'delete it to use the PNG alone');
  }
  if (sidecar.size !== size || sidecar.pixelsSha256 !== sha256(rgb)) {
    return { name: fileName, rgb, size, sidecar: null, warning: `${json} describes other pixels than ${pngPath} (the PNG was changed after it was written); ignoring the sidecar` };
  }
  return { name: sidecar.name, rgb, size, sidecar };
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
