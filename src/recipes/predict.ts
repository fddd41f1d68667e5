import * as tf from '@tensorflow/tfjs';
import { imageBatches } from '../data/batches.js';
import type { ImageItem, Skipped } from '../data/dataset.js';
import type { Classifier, Prediction } from '../model/classifier.js';

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
  for await (const batch of imageBatches(items, { pre: c.preprocess, batchSize: opts.batchSize ?? 16, ...(opts.onSkip ? { onSkip: opts.onSkip } : {}) })) {
    const probs = tf.tidy(() => c.probabilities(tf.tensor4d(batch.pixels, batch.shape)));
    const top = c.topK(probs, opts.top ?? 5);
    probs.dispose();
    opts.onBatch?.(batch.items.length);
    for (let i = 0; i < batch.items.length; i++) yield { item: batch.items[i]!, top: top[i]! };
  }
}
