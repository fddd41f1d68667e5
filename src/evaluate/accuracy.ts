import type { Dataset, Skipped } from '../data/dataset.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet } from '../model/labels.js';
import { PatchAtlasError } from '../errors.js';
import { predictImages } from './predict.js';

export interface ClassAccuracy {
  wnid: string;
  name: string;
  images: number;
  top1: number;
  top5: number;
}

export interface AccuracyReport {
  model: string;
  backend: string;
  source: string;
  images: number;
  top1: number;
  top5: number;
  correctTop1: number;
  correctTop5: number;
  unlabelled: number;
  skipped: Skipped[];
  perClass: ClassAccuracy[];
  /** One row per image: path, true wnid, predicted wnid and probability. */
  predictions: Array<{ path: string; label: string; predicted: string; probability: number; rank: number | null }>;
}

export interface AccuracyOptions {
  batchSize?: number;
  onProgress?: (n: number) => void;
  onSkip?: (s: Skipped) => void;
}

/** Clean top-1 / top-5 accuracy over the labelled images of a dataset. */
export async function accuracy(c: Classifier, ds: Dataset, opts: AccuracyOptions = {}): Promise<AccuracyReport> {
  const labelled = ds.items.filter((i) => i.label);
  if (labelled.length === 0) {
    throw new PatchAtlasError('NO_LABELS', `no labelled images in ${ds.source}`, 'name class folders or files by WordNet id or class name, or pass a CSV manifest path,label');
  }
  const skipped: Skipped[] = [...ds.skipped];
  const perClass = new Map<string, ClassAccuracy>();
  const predictions: AccuracyReport['predictions'] = [];
  let c1 = 0;
  let c5 = 0;
  for await (const p of predictImages(c, labelled, {
    top: 5,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    onSkip: (s) => {
      skipped.push(s);
      opts.onSkip?.(s);
      opts.onProgress?.(1);
    },
    ...(opts.onProgress ? { onBatch: opts.onProgress } : {}),
  })) {
    const truth = p.item.label!;
    const rank = p.top.findIndex((t) => t.class.wnid === truth.wnid);
    const hit1 = rank === 0;
    const hit5 = rank >= 0;
    c1 += +hit1;
    c5 += +hit5;
    const row = perClass.get(truth.wnid) ?? { wnid: truth.wnid, name: LabelSet.display(truth), images: 0, top1: 0, top5: 0 };
    row.images++;
    row.top1 += +hit1;
    row.top5 += +hit5;
    perClass.set(truth.wnid, row);
    predictions.push({ path: p.item.path, label: truth.wnid, predicted: p.top[0]!.class.wnid, probability: p.top[0]!.probability, rank: rank >= 0 ? rank + 1 : null });
  }
  const n = predictions.length;
  return {
    model: c.descriptor.name,
    backend: c.backend,
    source: ds.source,
    images: n,
    top1: n ? c1 / n : 0,
    top5: n ? c5 / n : 0,
    correctTop1: c1,
    correctTop5: c5,
    unlabelled: ds.unlabelled,
    skipped,
    perClass: [...perClass.values()].map((r) => ({ ...r, top1: r.top1 / r.images, top5: r.top5 / r.images })).sort((a, b) => a.wnid.localeCompare(b.wnid)),
    predictions,
  };
}
