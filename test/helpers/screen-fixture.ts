import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { openDataset } from '../../src/data/dataset.js';
import type { Classifier } from '../../src/model/classifier.js';
import { collect } from '../../src/recipes/collect.js';
import type { ScreenParams } from '../../src/recipes/screen.js';
import { loadTinyClassifier } from './tiny-models.js';

/**
 * A screen on the tiny model (32 px input, an 8×8×16 atlas layer), with images labelled by the model's
 * own answer so that every image can be tested: `images/` (at least two images of each of two classes),
 * a collect `run/` of conv_pw_1_relu, and `pairs` naming both directions between those two classes.
 * Small budgets: a handful of icon steps.
 */
export interface ScreenFixture {
  c: Classifier;
  images: string;
  run: string;
  pairs: string;
  classes: [string, string];
}

export const TINY_SCREEN_PARAMS: Partial<ScreenParams> = { iconSteps: 3, patchPx: 32, grid: 3, minDensity: 1, iconBatch: 6, batchSize: 32 };

export async function screenFixture(root: string): Promise<ScreenFixture> {
  const c = await loadTinyClassifier(root);
  const images = join(root, 'images');
  mkdirSync(images);
  // Random images, each named after the class the model gives it (so each is "correctly classified").
  const byClass = new Map<string, number>();
  for (let i = 0; [...byClass.values()].filter((n) => n >= 2).length < 2; i++) {
    if (i > 400) throw new Error(`the tiny model gives too few classes: ${[...byClass.entries()]}`);
    const px = Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, k) => ((k * (i + 7) * 2654435761 + i * 40503) >>> 24) & 255));
    const file = join(root, 'probe.png');
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(file);
    const probs = tf.tidy(() => c.probabilities(tf.div(tf.tensor4d(px, [1, 32, 32, 3], 'int32').toFloat(), 255) as tf.Tensor4D));
    const top = c.topK(probs, 1)[0]![0]!.class;
    probs.dispose();
    if ((byClass.get(top.wnid) ?? 0) >= 3) continue;
    byClass.set(top.wnid, (byClass.get(top.wnid) ?? 0) + 1);
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(images, `${top.wnid}_${i}.png`));
  }
  const classes = [...byClass.keys()].filter((w) => byClass.get(w)! >= 2) as [string, string];
  const ds = await openDataset(images, c.labels);
  const run = join(root, 'run');
  await collect(c, ds, { layer: 'conv_pw_1_relu', out: run, positions: 'all', seed: 1, shard: null });
  return { c, images, run, pairs: `${classes[0]}:${classes[1]},${classes[1]}:${classes[0]}`, classes };
}
