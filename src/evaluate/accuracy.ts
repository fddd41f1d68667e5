import type { Skipped } from '../data/dataset.js';
import type { AccuracyReport } from '../formats/accuracy.js';
import type { Prediction } from '../model/classifier.js';
import { LabelSet, type ClassRef } from '../model/labels.js';

/** Clean accuracy without the file header (format, producer): what the tally computes. */
export type AccuracyBody = Omit<AccuracyReport, 'format' | 'producer'>;

/**
 * Clean top-1 / top-5 accuracy, accumulated one prediction at a time (the accuracy recipe streams the
 * images through the model); overall, per class and per image.
 */
export class AccuracyTally {
  private readonly perClass = new Map<string, { wnid: string; name: string; images: number; top1: number; top5: number }>();
  private readonly predictions: AccuracyReport['predictions'] = [];
  private readonly skipped: Skipped[] = [];
  private c1 = 0;
  private c5 = 0;

  constructor(private readonly info: { model: string; backend: string; source: string; unlabelled: number }) {}

  /** One image of class `truth` and the model's top predictions for it (best first). */
  add(path: string, truth: ClassRef, top: readonly Prediction[]): void {
    const rank = top.findIndex((t) => t.class.wnid === truth.wnid);
    const hit1 = rank === 0;
    const hit5 = rank >= 0 && rank < 5;
    this.c1 += +hit1;
    this.c5 += +hit5;
    const row = this.perClass.get(truth.wnid) ?? { wnid: truth.wnid, name: LabelSet.display(truth), images: 0, top1: 0, top5: 0 };
    row.images++;
    row.top1 += +hit1;
    row.top5 += +hit5;
    this.perClass.set(truth.wnid, row);
    this.predictions.push({ path, label: truth.wnid, predicted: top[0]!.class.wnid, probability: top[0]!.probability, rank: rank >= 0 ? rank + 1 : null });
  }

  skip(s: Skipped): void {
    this.skipped.push(s);
  }

  result(): AccuracyBody {
    const n = this.predictions.length;
    return {
      ...this.info,
      images: n,
      top1: n ? this.c1 / n : 0,
      top5: n ? this.c5 / n : 0,
      correctTop1: this.c1,
      correctTop5: this.c5,
      skipped: [...this.skipped],
      perClass: [...this.perClass.values()].map((r) => ({ ...r, top1: r.top1 / r.images, top5: r.top5 / r.images })).sort((a, b) => a.wnid.localeCompare(b.wnid)),
      predictions: [...this.predictions],
    };
  }
}
