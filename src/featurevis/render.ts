import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../model/classifier.js';
import { withMaxPoolGrad } from '../engine/index.js';
import { keyedSeed, mulberry32, replaying } from '../util/random.js';
import { nativeStepGrads } from './native-step.js';
import type { Activations, Objective } from './objectives.js';
import type { Param } from './param/param.js';
import { compose, type Transform } from './transforms.js';

/**
 * Feature-visualisation optimisation (article §4, lucid's render_icons): B images at once, each its
 * own objective item, Adam on the parameterisation's variables, maximising the objective through
 * random transforms; several tries, keeping per item the try with the highest final objective.
 */

export interface RenderStep {
  try: number;
  step: number;
  /** Per-item objective of this step (on the transformed images). */
  values: Float32Array;
}

export interface RenderOptions {
  classifier: Classifier;
  objective: Objective;
  /**
   * A fresh parameterisation per try, e.g. `(seed) => image(b, 128, 128, { seed })`; with `itemSeeds`
   * the seed is a list, one per item.
   */
  param: (seed: number | readonly number[]) => Param;
  /** One transform or a list applied in order (default none). */
  transforms?: Transform | readonly Transform[];
  /** Optimisation steps per try (default 512, the notebooks' count). */
  steps?: number;
  /** Adam learning rate (default 0.05). */
  lr?: number;
  /** Independent tries; the best per item is kept (default 1). */
  tries?: number;
  seed?: number;
  /**
   * One seed per item instead of `seed`: each item gets its own initialisation and its own random
   * transforms (applied item by item), so an item renders the same whatever it is batched with, and a
   * batch of icons from many cells (or pairs) can be cut, resumed or sharded without changing any image.
   */
  itemSeeds?: readonly number[];
  onStep?: (s: RenderStep) => void;
  /**
   * Run the network's part of each step on onnxruntime (featurevis/native-step.ts), the rest on the tape; same
   * random draws, same result up to rounding. Default: `classifier.nativeSteps('icons', pixels per step, whether
   * the objective is a readout)`. Falls back to the tape where the model has no backward graph.
   */
  native?: boolean;
}

export interface RenderResult {
  /** Batch size and image size. */
  batch: number;
  height: number;
  width: number;
  /** Per item, the kept image: RGB bytes, row-major [H, W, 3]. */
  images: Uint8Array[];
  /** Per item, the kept try's final objective. */
  values: number[];
  /** Per item, which try was kept. */
  bestTry: number[];
  /** [try] → per-item final objective, measured on the untransformed image. */
  tryValues: Float32Array[];
  /** [try][step] → per-item objective during optimisation. */
  trace: Float32Array[][];
}

/**
 * Objective values of `img` per item, no transforms (the criterion for keeping a try: lucid takes the
 * last step's value, which depends on that step's random jitter; the untransformed image is a fair
 * comparison between tries).
 */
export function evaluate(classifier: Classifier, objective: Objective, img: tf.Tensor4D): Float32Array {
  const v = tf.tidy(() => objective.perItem(runActs(classifier, objective, img)));
  const out = v.dataSync() as Float32Array;
  v.dispose();
  return Float32Array.from(out);
}

function runActs(classifier: Classifier, objective: Objective, x: tf.Tensor4D): Activations {
  const outs = classifier.run(x, objective.layers);
  return new Map(objective.layers.map((l, i) => [l, outs[i]!]));
}

/** [0,1] floats → RGB bytes per item. */
export function toBytes(img: tf.Tensor4D): Uint8Array[] {
  const [b, h, w] = img.shape;
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.mul(img, 255)), 0, 255).cast('int32'));
  const data = t.dataSync();
  t.dispose();
  const per = h * w * 3;
  return Array.from({ length: b }, (_, i) => Uint8Array.from(data.subarray(i * per, (i + 1) * per)));
}

export async function render(opts: RenderOptions): Promise<RenderResult> {
  const { classifier, objective } = opts;
  const steps = opts.steps ?? 512;
  const lr = opts.lr ?? 0.05;
  const tries = opts.tries ?? 1;
  if (!(steps >= 0) || !(tries >= 1)) throw new Error(`render: need steps ≥ 0 and tries ≥ 1 (got ${steps}, ${tries})`);
  const transform: Transform = typeof opts.transforms === 'function' ? opts.transforms : compose(opts.transforms ?? []);
  // One master stream: each try draws its own init seed and transform stream, so tries differ yet a seed reproduces all.
  const master = mulberry32(opts.seed ?? 0);
  // Decided at the first try, from the step's size (pixels per step) where `native` is not given.
  let native = opts.native;

  let images: Uint8Array[] = [];
  let values: number[] = [];
  let bestTry: number[] = [];
  const tryValues: Float32Array[] = [];
  const trace: Float32Array[][] = [];
  let shape: readonly [number, number, number] = [0, 0, 0];

  for (let t = 0; t < tries; t++) {
    const initSeed = Math.floor(master() * 2 ** 31);
    const rng = mulberry32(Math.floor(master() * 2 ** 32));
    const items = opts.itemSeeds;
    const param = opts.param(items ? items.map((s) => keyedSeed(s, `init/${t}`)) : initSeed);
    native ??= classifier.nativeSteps('icons', param.shape[0] * param.shape[1] * param.shape[2], objective.readout !== undefined);
    const itemRngs = items?.map((s) => mulberry32(keyedSeed(s, `transforms/${t}`)));
    const streams = itemRngs ?? [rng];
    // Per-item streams: each item through the transforms on its own (one draw per item, not per batch).
    const apply = (x: tf.Tensor4D, rngs: ReadonlyArray<() => number>): tf.Tensor4D => {
      if (!itemRngs) return transform(x, rngs[0]!);
      const each = rngs.map((r, i) => transform(tf.slice(x, [i, 0, 0, 0], [1, -1, -1, -1]), r));
      return each.length === 1 ? each[0]! : tf.concat(each, 0);
    };
    const optimizer = tf.train.adam(lr);
    const steps_: Float32Array[] = [];
    try {
      shape = param.shape;
      for (let s = 0; s < steps; s++) {
        // The step's image, the same each time it is made (a fallback to the tape reuses the native try's draws).
        const img = replaying(streams, (rngs) => apply(param.image(), rngs));
        const step = native ? nativeStepGrads(classifier, objective, img, param.variables) : undefined;
        if (native && !step) native = false; // no backward graph: the tape from here on
        let vals: Float32Array;
        if (step) {
          optimizer.applyGradients(Object.entries(step.grads).map(([name, tensor]) => ({ name, tensor })));
          tf.dispose(Object.values(step.grads));
          vals = step.per;
        } else {
          let per: tf.Tensor | undefined;
          // 'exact' max-pool gradients: the optimiser needs the true gradient, not attribution's relaxation.
          const { value, grads } = withMaxPoolGrad('exact', () =>
            tf.variableGrads(() => {
              const x = img();
              per = tf.keep(objective.perItem(runActs(classifier, objective, x)));
              return tf.neg(tf.sum(per)) as tf.Scalar;
            }, param.variables),
          );
          optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
          vals = Float32Array.from(per!.dataSync());
          tf.dispose([value, per!, ...Object.values(grads)]);
        }
        steps_.push(vals);
        opts.onStep?.({ try: t, step: s, values: vals });
        // Let timers and I/O (progress output, cancellation) run between steps.
        await new Promise((r) => setImmediate(r));
      }
      trace.push(steps_);
      const img = param.image();
      const final = evaluate(classifier, objective, img);
      tryValues.push(final);
      const bytes = toBytes(img);
      img.dispose();
      if (t === 0) {
        images = bytes;
        values = Array.from(final);
        bestTry = new Array(final.length).fill(0);
      } else {
        for (let i = 0; i < final.length; i++) {
          if (final[i]! > values[i]!) {
            values[i] = final[i]!;
            images[i] = bytes[i]!;
            bestTry[i] = t;
          }
        }
      }
    } finally {
      optimizer.dispose();
      param.dispose();
    }
  }
  const [batch, height, width] = shape;
  return { batch, height, width, images, values, bestTry, tryValues, trace };
}
