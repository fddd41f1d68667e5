import type { Dataset, Skipped } from '../data/dataset.js';
import { PatchAtlasError } from '../errors.js';
import { AccuracyTally } from '../evaluate/accuracy.js';
import { ACCURACY_FORMAT, writeAccuracy, type AccuracyReport } from '../formats/accuracy.js';
import { producer } from '../formats/producer.js';
import type { Classifier } from '../model/classifier.js';
import { checkParams, type ParamSpec } from './params.js';
import { PREDICT_PARAMS, predictImages } from './predict.js';

/** `accuracy`: clean top-1 / top-5 over the labelled images of a dataset (before any patch), optionally written as accuracy.json. */

export interface AccuracyParams {
  /** Images per forward pass (does not change results). */
  batchSize: number;
}

export const ACCURACY_PARAMS: ParamSpec<AccuracyParams> = { batchSize: PREDICT_PARAMS.batchSize };

export interface AccuracyOptions {
  params?: Partial<AccuracyParams>;
  /** Write accuracy.json here. */
  out?: string;
  /** Images done so far (read or skipped). */
  onProgress?: (n: number) => void;
  onSkip?: (s: Skipped) => void;
}

export async function accuracy(c: Classifier, ds: Dataset, opts: AccuracyOptions = {}): Promise<AccuracyReport> {
  const p = checkParams(ACCURACY_PARAMS, opts.params ?? {});
  const labelled = ds.items.filter((i) => i.label);
  if (labelled.length === 0) {
    throw new PatchAtlasError('NO_LABELS', `no labelled images in ${ds.source}`, 'name class folders or files by WordNet id or class name, or pass a CSV manifest path,label');
  }
  const tally = new AccuracyTally({ model: c.descriptor.name, backend: c.forwardBackend, source: ds.source, unlabelled: ds.unlabelled });
  for (const s of ds.skipped) tally.skip(s);
  const images = predictImages(c, labelled, {
    top: 5,
    batchSize: p.batchSize,
    onSkip: (s) => {
      tally.skip(s);
      opts.onSkip?.(s);
      opts.onProgress?.(1);
    },
    ...(opts.onProgress ? { onBatch: opts.onProgress } : {}),
  });
  for await (const r of images) tally.add(r.item.path, r.item.label!, r.top);
  const unlabelledImages = ds.items.filter((i) => !i.label).map((i) => ({ path: i.path, reason: i.unlabelled ?? 'no label' }));
  const report: AccuracyReport = { format: ACCURACY_FORMAT, producer: producer(c.descriptor.name), ...tally.result(), unlabelledImages };
  if (opts.out) await writeAccuracy(opts.out, report);
  return report;
}
