import { resolve } from 'node:path';
import { decodedBatches } from '../data/batches.js';
import type { ImageItem, Skipped } from '../data/dataset.js';
import { loadPatches, type PatchImage } from '../data/patches.js';
import { PatchAtlasError } from '../errors.js';
import { evaluatePatches, noisePatch, type EvaluatePatchesOptions, type EvaluatePatchesResult } from '../evaluate/evaluate-patches.js';
import { writeEvaluation, type EvaluationMeta } from '../formats/evaluation.js';
import type { Split } from '../formats/split.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { DEFAULT_SIZES, gridPlacements, POSITIONS, type Placement, type Position } from '../patch/placement.js';
import { keyedSeed, sampleIndices } from '../util/random.js';
import { PREDICT_PARAMS } from './predict.js';
import { anyWholeNumber, checkParams, sizeHint, sizeList, wholeNumber, type ParamFail, type ParamSpec } from './params.js';

/**
 * `evaluate`: paste patches at positions × sizes on images and measure how often the model flips to
 * the target class, with a noise control of the same sizes measured in the same run; results.json +
 * results.csv. The one evaluation recipe: the `evaluate` command, each `audit` check and the `run`
 * pipeline's evaluate stage all call it, and differ only in which images and patches they hand it.
 */

export interface EvaluateParams {
  /** Patch sides as fractions of the image side. */
  sizes: number[];
  /** Where patches are pasted. */
  positions: Position[];
  circular: boolean;
  /** Also measure a noise patch (the control). */
  noise: boolean;
  /** The noise control's side in pixels and seed. */
  noisePx: number;
  noiseSeed: number;
  /** Images per forward pass (does not change results). */
  batchSize: number;
}

export const EVALUATE_PARAMS: ParamSpec<EvaluateParams> = {
  sizes: { default: [...DEFAULT_SIZES], check: sizeList, hint: sizeHint },
  positions: { default: [...POSITIONS] },
  circular: { default: false },
  noise: { default: true },
  noisePx: { default: 64, check: wholeNumber(1, 1024) },
  noiseSeed: { default: 0, check: anyWholeNumber },
  batchSize: PREDICT_PARAMS.batchSize,
};

export interface EvaluateRequest {
  classifier: Classifier;
  /** The images to measure on, already chosen (`eligibleImages`, then any sample). */
  images: ImageItem[];
  /** Patch files or folders, named as `loadPatches` names them. */
  patches: string[];
  /** Patches already in memory, measured after the files. */
  extraPatches?: PatchImage[];
  /** Targeted (source-class images only) when there is a source; universal otherwise. */
  source?: ClassRef;
  target: ClassRef;
  params?: Partial<EvaluateParams>;
  /** How a face names a bad parameter (default: as CLI flags). */
  fail?: ParamFail;
  /** Name of the noise control (default "noise"; made unique among the patches). */
  noiseName?: string;
  /** Where results.json and results.csv go. */
  out: string;
  /** Recorded in results.json: the split the images were held out by, and the audit check. */
  split?: EvaluationMeta['split'];
  check?: string;
  onProgress?: (done: number, total: number) => void;
  onSkip?: (s: Skipped) => void;
}

export interface EvaluateOutcome extends EvaluatePatchesResult {
  files: { json: string; csv: string };
  /** The noise control's name among `results` (null without one). */
  noise: string | null;
  placements: Placement[];
  params: EvaluateParams;
}

export async function evaluate(req: EvaluateRequest): Promise<EvaluateOutcome> {
  const p = checkParams(EVALUATE_PARAMS, req.params ?? {}, req.fail);
  const { classifier: c, source, target } = req;
  if (source && source.wnid === target.wnid) throw new PatchAtlasError('BAD_FLAG', `source and target are both "${LabelSet.display(target)}"`, 'a targeted patch must move images to a different class');
  const patches = [...(req.patches.length ? await loadPatches(req.patches) : []), ...(req.extraPatches ?? [])];
  let noise: string | null = null;
  if (p.noise) {
    const base = req.noiseName ?? 'noise';
    noise = base;
    for (let k = 2; patches.some((q) => q.name === noise); k++) noise = `${base}-${k}`;
    patches.push({ ...noisePatch(p.noisePx, p.noiseSeed), name: noise });
  }
  const placements = gridPlacements(c.inputSize, p.sizes, p.positions, { circular: p.circular });
  const r = await measurePatches({ classifier: c, items: req.images, patches, placements, target, batchSize: p.batchSize, ...(source ? { source } : {}), ...(req.onProgress ? { onProgress: req.onProgress } : {}), ...(req.onSkip ? { onSkip: req.onSkip } : {}) });
  const name = (k: ClassRef) => ({ wnid: k.wnid, name: LabelSet.display(k) });
  const files = await writeEvaluation(req.out, {
    model: c.descriptor.name,
    ...(req.check !== undefined ? { check: req.check } : {}),
    source: source ? name(source) : null,
    target: name(target),
    sizes: p.sizes,
    positions: p.positions,
    circular: p.circular,
    noise: noise ? { name: noise, patchPx: p.noisePx, seed: p.noiseSeed } : null,
    split: req.split ?? null,
  }, r);
  return { ...r, files, noise, placements, params: p };
}

/** The evaluation block's options, with image files (`items`) in place of decoded batches. */
export type MeasureOptions = Omit<EvaluatePatchesOptions, 'images' | 'count'> & { items: ImageItem[]; onSkip?: (s: Skipped) => void };

/** The evaluation block on image files: decoded batch by batch for the classifier, unreadable files skipped. */
export async function measurePatches(o: MeasureOptions): Promise<EvaluatePatchesResult> {
  const batchSize = o.batchSize ?? EVALUATE_PARAMS.batchSize.default;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new PatchAtlasError('BAD_FLAG', `batch size must be a whole number ≥ 1, got ${batchSize}`);
  const images = decodedBatches(o.items, { pre: o.classifier.preprocess, batchSize, ...(o.onSkip ? { onSkip: o.onSkip } : {}) });
  const { items, onSkip: _, ...rest } = o;
  return evaluatePatches({ ...rest, images, count: items.length, batchSize });
}

/**
 * The images an evaluation counts: with a source, the images labelled it (targeted success); without,
 * every image not labelled the target (universal success: images already of B say nothing). With a
 * split, only its held-out (test) side.
 */
export function eligibleImages(items: readonly ImageItem[], o: { source?: ClassRef; target: ClassRef; split?: Split; where: string; splitFile?: string }): ImageItem[] {
  const { source, target } = o;
  let out = source ? items.filter((i) => i.label?.wnid === source.wnid) : items.filter((i) => i.label?.wnid !== target.wnid);
  if (out.length === 0) {
    throw new PatchAtlasError('NO_IMAGES', `no images ${source ? `labelled "${LabelSet.display(source)}"` : `other than "${LabelSet.display(target)}"`} in ${o.where}`, source ? 'omit the source to measure universal success over every image' : undefined);
  }
  if (o.split) {
    const held = o.split.test;
    const before = out.length;
    out = out.filter((i) => held.has(resolve(i.path)));
    if (out.length === 0) throw new PatchAtlasError('NO_IMAGES', `none of the ${before} eligible images in ${o.where} are on the test side of ${o.splitFile ?? 'the split'}`, 'pass the images the split was made from');
  }
  return out;
}

/** A fixed random sample of at most `max` images (the same for the same list, whatever asks for it). */
export function sampleImages(items: readonly ImageItem[], max: number | undefined): ImageItem[] {
  if (max === undefined || items.length <= max) return [...items];
  return Array.from(sampleIndices(items.length, max, keyedSeed(0, 'audit/images')), (i) => items[i]!);
}
