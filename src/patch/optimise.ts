import * as tf from '@tensorflow/tfjs';
import { PatchAtlasError } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import { withMaxPoolGrad } from '../engine/index.js';
import type { ClassRef } from '../model/labels.js';
import { keyedSeed, mulberry32, sampleIndices } from '../util/random.js';
import { nativeStepGrads } from '../featurevis/native-step.js';
import { fromReadout } from '../featurevis/objectives.js';
import { pasteTf } from './paste.js';
import { randomPlacements } from './placement.js';

/**
 * Adversarial patch optimisation (Brown et al. 2017, "Adversarial Patch"): find patch pixels that
 * maximise E[log p(target | image with the patch pasted)] over random images, locations, sizes and
 * rotations (expectation over transformation), with Adam. The patch is parameterised in logit space
 * (pixel = sigmoid(param)), so it stays in [0,1] without clipping and keeps a gradient at the bounds.
 *
 * Reproducible and resumable: every random draw of step k (its images and placements) is keyed by
 * (seed, k), so a run continued from a saved patch with `stepOffset = k` sees exactly the batches the
 * uninterrupted run would have. What does not carry over is Adam's moment estimates (they restart) and
 * the sub-byte precision of the parameters (a PNG holds 8-bit pixels).
 */

/** A batch of N×H×W×3 floats in [0,1] at the classifier's input size, for step `step`. */
export type BatchSource = (step: number, batchSize: number) => Float32Array | Promise<Float32Array>;

export interface OptimisePatchOptions {
  classifier: Classifier;
  /** Training images, N×H×W×3 floats in [0,1] at the classifier's input size (decoded once, kept in memory), or a batch source. */
  images: Float32Array | BatchSource;
  target: ClassRef;
  /** Starting patch: RGB bytes patchPx×patchPx×3 (e.g. a bridging icon, or a saved patch to continue), or 'noise' (default). */
  init?: Uint8Array | 'noise';
  /** Patch resolution in pixels (default 64); it is resampled to each placement's size. */
  patchPx?: number;
  /** Optimisation steps to run (default 200). */
  steps?: number;
  /** Images per step (default 8). */
  batchSize?: number;
  /**
   * Adam learning rate on the logit-space parameters (default 0.1: a logit moves about that much per step,
   * meant for long runs; for runs of tens of steps 0.5 did better on MobileNet than 0.05, 0.2 and 1.0).
   */
  lr?: number;
  /** Patch side as a fraction of the image side, drawn uniformly (default [0.2, 0.5]; IBM ART's is [0.1, 1]). */
  sizeRange?: readonly [number, number];
  /** Rotation drawn from ±maxRotation degrees (default 22.5, as IBM ART). */
  maxRotation?: number;
  seed?: number;
  /**
   * Weight of a second term that pushes down the strongest non-target class (default 0). With weight 1
   * the loss is the logit margin max_{j≠t} z_j − z_t (Carlini–Wagner style), which targets the argmax,
   * i.e. success itself, rather than the target's probability alone. Needs no labels.
   */
  untargetedWeight?: number;
  /** Number of the first step (default 0): set it to the steps already done when continuing from a saved patch. */
  stepOffset?: number;
  /**
   * Run the network's part of each step on onnxruntime (featurevis/native-step.ts), pasting and the patch's
   * parameters on the tape; same draws, same result up to rounding. Default: `classifier.nativeSteps('patches')`.
   */
  native?: boolean;
  /** After each step: its number, the loss and the mean target probability on that step's patched batch (before the update). */
  onStep?: (step: number, loss: number, meanTargetProb: number) => void | Promise<void>;
}

export interface PatchStep {
  step: number;
  loss: number;
  pTarget: number;
}

/** The settings a patch was made with (defaults filled in), for its sidecar. */
export interface PatchSettings {
  patchPx: number;
  steps: number;
  stepOffset: number;
  batchSize: number;
  lr: number;
  sizeRange: [number, number];
  maxRotation: number;
  untargetedWeight: number;
  seed: number;
  parameterisation: 'sigmoid-logits';
  optimiser: 'adam';
}

export interface OptimisedPatch {
  /** patchPx×patchPx×3 RGB bytes, row-major. */
  rgb: Uint8Array;
  patchPx: number;
  /** One entry per step run. */
  trace: PatchStep[];
  settings: PatchSettings;
}

/**
 * The project's EOT defaults (the `patch` command, audit and run use these). IBM ART's
 * AdversarialPatch defaults to 500 steps of 16 images over sizes [0.1, 1]; 200 steps of 8 images over
 * [0.2, 0.5] (the sizes evaluated) fit a CPU in minutes per patch.
 */
export const PATCH_DEFAULTS = {
  patchPx: 64,
  steps: 200,
  batchSize: 8,
  lr: 0.1,
  sizeRange: [0.2, 0.5] as [number, number],
  maxRotation: 22.5,
  seed: 0,
  untargetedWeight: 0,
  stepOffset: 0,
} as const;

/**
 * Pixel bytes → logits that map back to the same bytes: values are clamped to [¼, 254¾]/255 because
 * sigmoid never reaches 0 or 1, and ¼ rounds back to 0 (½ would round up to 1).
 */
export function bytesToLogits(rgb: Uint8Array): Float32Array {
  const lo = 0.25 / 255;
  return Float32Array.from(rgb, (b) => {
    const p = Math.min(1 - lo, Math.max(lo, b / 255));
    return Math.log(p / (1 - p));
  });
}

/** Uniform random bytes for a noise start, keyed so it differs from a noise control patch made with the same seed. */
export function noiseInit(side: number, seed: number): Uint8Array {
  const rnd = mulberry32(keyedSeed(seed, 'patch-init'));
  return Uint8Array.from({ length: side * side * 3 }, () => Math.floor(rnd() * 256));
}

export async function optimisePatch(opts: OptimisePatchOptions): Promise<OptimisedPatch> {
  const settings = resolveSettings(opts);
  const { classifier: c, target } = opts;
  const { patchPx: side, steps, stepOffset, batchSize, lr, sizeRange, maxRotation, untargetedWeight, seed } = settings;
  const [h, w] = c.inputSize;
  const per = h * w * 3;
  const source = opts.images;
  const initRgb = opts.init === undefined || opts.init === 'noise' ? noiseInit(side, seed) : opts.init;

  const batchFor = async (step: number): Promise<Float32Array> => {
    if (typeof source === 'function') {
      const x = await source(step, batchSize);
      if (!(x instanceof Float32Array) || x.length === 0 || x.length % per !== 0) {
        throw new PatchAtlasError('BAD_FLAG', `image batch for step ${step} has ${x?.length} values, not a whole number ≥ 1 of ${h}×${w}×3 images`);
      }
      return x;
    }
    const n = source.length / per;
    const idx = sampleIndices(n, batchSize, keyedSeed(seed, `images/${step}`));
    const out = new Float32Array(idx.length * per);
    idx.forEach((k, i) => out.set(source.subarray(k * per, (k + 1) * per), i * per));
    return out;
  };

  // Excluded from the untargeted term's max: the target itself and non-class outputs (a background slot).
  const others = new Float32Array(c.labels.outputs);
  for (let j = 0; j < others.length; j++) if (j === target.index || j < c.labels.offset) others[j] = -1e9;

  const start = tf.tensor3d(bytesToLogits(initRgb), [side, side, 3]);
  const param = tf.variable(start, true);
  start.dispose(); // the variable holds its own reference to the data
  const optimizer = tf.train.adam(lr);
  const trace: PatchStep[] = [];
  let native = opts.native ?? c.nativeSteps('patches', batchSize * h * w);
  try {
    for (let step = stepOffset; step < stepOffset + steps; step++) {
      const x = await batchFor(step);
      const n = x.length / per;
      const placements = randomPlacements([h, w], n, { sizeRange, maxRotation, seed: keyedSeed(seed, `placements/${step}`) });
      const images = tf.tensor4d(x, [n, h, w, 3]);
      let pTarget: tf.Scalar | undefined;
      try {
        // The loss per image, so that its mean is the EOT loss: −log p(target) + w·max over the other classes. As a
        // readout (engine/readout.ts) of −loss / n per image, so −Σ is the loss and a native step runs it natively.
        const logp = { logSoftmax: { read: 'logits' } } as const;
        const objective = fromReadout('EOT patch loss', ['logits'], {
          form: { sum: [[1 / n, { dot: logp, w: 0 }], ...(untargetedWeight > 0 ? [[-untargetedWeight / n, { maxPlus: logp, w: 1 }] as const] : [])] },
          weights: ([k]) => [{ data: Float32Array.from({ length: k! }, (_, j) => (j === target.index ? 1 : 0)), rows: 1, cols: k! }, ...(untargetedWeight > 0 ? [{ data: others, rows: 1, cols: k! }] : [])],
        });
        // Mean p(target) over the batch, for the trace.
        const keepPTarget = (logits: tf.Tensor) => {
          pTarget = tf.keep(tf.tidy(() => tf.mean(tf.exp(tf.slice(tf.logSoftmax(logits), [0, target.index], [-1, 1]))) as tf.Scalar));
        };
        const pasted = () => pasteTf(images, tf.sigmoid(param) as tf.Tensor3D, placements);
        const chained = native ? nativeStepGrads(c, objective, pasted, [param], { keep: true }) : undefined;
        if (native && !chained) native = false; // no backward graph: the tape from here on
        if (chained) {
          keepPTarget(chained.outputs[0]!);
          tf.dispose(chained.outputs);
        }
        const { value, grads } = chained
          ? { value: tf.scalar(-chained.per.reduce((a, v) => a + v, 0)), grads: chained.grads }
          : // 'exact' max-pool gradients: optimisation needs the true gradient, not attribution's relaxation.
            withMaxPoolGrad('exact', () =>
              tf.variableGrads(() => {
                const logits = c.logits(pasted());
                keepPTarget(logits);
                return tf.neg(tf.sum(objective.perItem(new Map([['logits', logits]])))) as tf.Scalar;
              }, [param]),
            );
        optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
        const entry = { step, loss: value.dataSync()[0]!, pTarget: pTarget!.dataSync()[0]! };
        tf.dispose([value, ...Object.values(grads)]);
        trace.push(entry);
        await opts.onStep?.(entry.step, entry.loss, entry.pTarget);
      } finally {
        tf.dispose([images, ...(pTarget ? [pTarget] : [])]);
      }
      // Let timers and I/O (progress output, cancellation) run between steps.
      await new Promise((r) => setImmediate(r));
    }
    const bytes = tf.tidy(() => tf.clipByValue(tf.round(tf.mul(tf.sigmoid(param), 255)), 0, 255).cast('int32'));
    const rgb = Uint8Array.from(bytes.dataSync());
    bytes.dispose();
    return { rgb, patchPx: side, trace, settings };
  } finally {
    optimizer.dispose();
    param.dispose();
  }
}

/**
 * Every option checked before any work, each bad value with its own one-line message (as IBM ART's
 * `_check_params`), defaults filled in.
 */
export function resolveSettings(opts: OptimisePatchOptions): PatchSettings {
  const bad = (msg: string, hint?: string) => new PatchAtlasError('BAD_FLAG', msg, hint);
  const wholeAtLeast = (name: string, v: unknown, min: number): number => {
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= min)) throw bad(`${name} must be a whole number ≥ ${min}, got ${String(v)}`);
    return v;
  };
  const d = PATCH_DEFAULTS;
  const side = wholeAtLeast('patch side', opts.patchPx ?? d.patchPx, 1);
  if (side > 1024) throw bad(`patch side ${side} px is over 1024`, 'the patch is resampled to each placement; 32–128 px is plenty');
  const steps = wholeAtLeast('steps', opts.steps ?? d.steps, 0);
  const stepOffset = wholeAtLeast('step offset', opts.stepOffset ?? d.stepOffset, 0);
  const batchSize = wholeAtLeast('batch size', opts.batchSize ?? d.batchSize, 1);
  const lr = opts.lr ?? d.lr;
  if (!(typeof lr === 'number' && Number.isFinite(lr) && lr > 0)) throw bad(`learning rate must be a positive number, got ${String(lr)}`, 'e.g. 0.1 (Adam, on logits)');
  const sizeRange = opts.sizeRange ?? d.sizeRange;
  if (!(Array.isArray(sizeRange) && sizeRange.length === 2 && sizeRange.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0 && s <= 1))) {
    throw bad(`patch size range ${JSON.stringify(sizeRange)} must be two fractions of the image side in (0, 1]`, 'e.g. [0.1, 1]');
  }
  if (sizeRange[0] > sizeRange[1]) throw bad(`patch size range ${sizeRange[0]}..${sizeRange[1]} is empty`, 'give the smaller size first');
  const maxRotation = opts.maxRotation ?? d.maxRotation;
  if (!(typeof maxRotation === 'number' && Number.isFinite(maxRotation) && maxRotation >= 0 && maxRotation <= 180)) {
    throw bad(`maximum rotation ${String(maxRotation)} must be between 0 and 180 degrees`);
  }
  const untargetedWeight = opts.untargetedWeight ?? d.untargetedWeight;
  if (!(typeof untargetedWeight === 'number' && Number.isFinite(untargetedWeight) && untargetedWeight >= 0)) {
    throw bad(`untargeted weight must be a number ≥ 0, got ${String(untargetedWeight)}`);
  }
  const seed = opts.seed ?? d.seed;
  if (!(typeof seed === 'number' && Number.isInteger(seed))) throw bad(`seed must be a whole number, got ${String(seed)}`);

  const c = opts.classifier;
  const t = opts.target;
  const known = t && Number.isInteger(t.index) ? c.labels.atOutput(t.index) : undefined;
  if (!known || known.wnid !== t.wnid) {
    throw new PatchAtlasError('UNKNOWN_CLASS', `target class ${t ? `${t.wnid} "${t.name}"` : String(t)} is not a class of model "${c.descriptor.name}"`, 'resolve it with the classifier\'s own labels');
  }
  if (opts.init !== undefined && opts.init !== 'noise') {
    if (!(opts.init instanceof Uint8Array)) throw bad(`initial patch must be RGB bytes or 'noise', got ${typeof opts.init}`);
    if (opts.init.length !== side * side * 3) {
      throw bad(`initial patch has ${opts.init.length} bytes, expected ${side}×${side}×3 = ${side * side * 3}`, 'resize it to the patch side, or set patchPx to its size');
    }
  }
  const [h, w] = c.inputSize;
  const per = h * w * 3;
  const imgs = opts.images;
  if (imgs instanceof Float32Array) {
    if (imgs.length === 0 || imgs.length % per !== 0) {
      throw bad(`training images hold ${imgs.length} values, not a whole number ≥ 1 of ${h}×${w}×3 images`, 'decode them at the classifier\'s input size');
    }
    const n = imgs.length / per;
    if (batchSize > n) throw bad(`batch size ${batchSize} is more than the ${n} training images`, `use a batch size ≤ ${n}, or more images`);
  } else if (typeof imgs !== 'function') {
    throw bad('training images must be a Float32Array (N×H×W×3) or a function giving batches');
  }
  return {
    patchPx: side,
    steps,
    stepOffset,
    batchSize,
    lr,
    sizeRange: [sizeRange[0], sizeRange[1]],
    maxRotation,
    untargetedWeight,
    seed,
    parameterisation: 'sigmoid-logits',
    optimiser: 'adam',
  };
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

