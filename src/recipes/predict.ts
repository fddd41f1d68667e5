import * as tf from '@tensorflow/tfjs';
import { imageBatches } from '../data/batches.js';
import type { ImageItem, Skipped } from '../data/dataset.js';
import type { Classifier, Prediction } from '../model/classifier.js';
import { wholeNumber, type ParamSpec } from './params.js';

/** `classify`: the top classes of each image. */
export interface PredictParams {
  /** Classes per image. */
  top: number;
  /** Images per forward pass (does not change results). */
  batchSize: number;
}

export const PREDICT_PARAMS: ParamSpec<PredictParams> = {
  top: { default: 5, check: wholeNumber(1) },
  batchSize: { default: 16, check: wholeNumber(1) },
};

export interface ImagePrediction {
  item: ImageItem;
  top: Prediction[];
}

export interface PredictOptions {
  top?: number;
  batchSize?: number;
  onSkip?: (s: Skipped) => void;
  onBatch?: (n: number) => void;
}

/** Top-k predictions for every readable image, streamed batch by batch; unreadable files go to onSkip. */
export async function* predictImages(c: Classifier, items: ImageItem[], opts: PredictOptions = {}): AsyncGenerator<ImagePrediction> {
  for await (const batch of imageBatches(items, { pre: c.preprocess, batchSize: opts.batchSize ?? PREDICT_PARAMS.batchSize.default, ...(opts.onSkip ? { onSkip: opts.onSkip } : {}) })) {
    const x = tf.tensor4d(batch.pixels, batch.shape);
    const logits = await c.forwardLogits(x);
    const probs = tf.tidy(() => tf.softmax(logits));
    tf.dispose([x, logits]);
    const top = c.topK(probs, opts.top ?? PREDICT_PARAMS.top.default);
    probs.dispose();
    opts.onBatch?.(batch.items.length);
    for (let i = 0; i < batch.items.length; i++) yield { item: batch.items[i]!, top: top[i]! };
  }
}
