import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../model/classifier.js';

/**
 * Attribution of a hidden activation vector h (at one spatial position) to class c:
 * h · ∂logit_c/∂h (pre-softmax logits; Grad-CAM without spatial averaging), as in the article.
 */
export interface PointAttribution {
  /** [points × C] activation vectors, image-major then position order. */
  acts: Float32Array;
  /** [points × K] attribution to each class of the label set (background slot dropped). */
  attr: Float32Array;
  /** [images × outputs] class probabilities of the clean images. */
  probs: Float32Array;
  channels: number;
  classes: number;
  /** Which path computed attr: one forward-mode pass, or one backward pass per class. */
  method: 'jvp' | 'reverse';
}

export interface AttributeOptions {
  /** Upper bound on tangents per forward-mode pass (memory: tangents × layer size). */
  maxTangents?: number;
  /** Force the reverse-mode path (reference / models without forward-mode rules). */
  reverse?: boolean;
}

/**
 * Activations and attributions to all classes for the given positions of each image.
 * Fast path: one Jacobian-vector product of the logits along h placed at its position (all classes at
 * once). Fallback: one reverse pass per class.
 */
export function attributePoints(c: Classifier, x: tf.Tensor4D, layer: string, positions: Array<Array<[number, number]>>, opts: AttributeOptions = {}): PointAttribution {
  const [h, probsT] = c.run(x, [layer, 'probs']);
  try {
    const [, H, W, C] = h!.shape as [number, number, number, number];
    const hData = h!.dataSync();
    const probs = probsT!.dataSync() as Float32Array;
    const points = positions.reduce((a, p) => a + p.length, 0);
    const acts = new Float32Array(points * C);
    let row = 0;
    positions.forEach((ps, i) => {
      for (const [y, xx] of ps) acts.set(hData.subarray(((i * H + y) * W + xx) * C, ((i * H + y) * W + xx + 1) * C), row++ * C);
    });
    const K = c.labels.size;
    const offset = c.labels.offset;
    const attr = new Float32Array(points * K);
    const ok = !opts.reverse && jvpAttribution(c, x, layer, h!, positions, attr, K, offset, opts.maxTangents ?? 256);
    if (!ok) reverseAttribution(c, x, layer, h!, positions, attr, K);
    return { acts, attr, probs, channels: C, classes: K, method: ok ? 'jvp' : 'reverse' };
  } finally {
    tf.dispose([h!, probsT!]);
  }
}

/** Fills attr with forward-mode products; false when the model has no forward-mode rule on the path. */
function jvpAttribution(c: Classifier, x: tf.Tensor4D, layer: string, h: tf.Tensor, positions: Array<Array<[number, number]>>, attr: Float32Array, K: number, offset: number, maxTangents: number): boolean {
  const [, H, W, C] = h.shape as [number, number, number, number];
  let row = 0;
  // Process images one at a time when they carry many positions, else whole batches: both bound memory.
  const perImage = positions.some((p) => p.length !== positions[0]!.length) || positions.length * positions[0]!.length > maxTangents;
  const jobs: Array<{ images: number[]; ps: Array<[number, number]>[] }> = [];
  if (!perImage) jobs.push({ images: positions.map((_, i) => i), ps: positions });
  else positions.forEach((ps, i) => {
    for (let s = 0; s < ps.length; s += maxTangents) jobs.push({ images: [i], ps: [ps.slice(s, s + maxTangents)] });
  });
  for (const job of jobs) {
    const G = job.ps[0]!.length;
    if (G === 0) continue;
    const B = job.images.length;
    const out = tf.tidy(() => {
      const idx = tf.tensor1d(job.images, 'int32');
      const xs = tf.gather(x, idx) as tf.Tensor4D;
      const hs = tf.gather(h, idx);
      const mask = new Float32Array(B * G * H * W);
      job.ps.forEach((ps, i) => ps.forEach(([y, xx], g) => (mask[((i * G + g) * H + y) * W + xx] = 1)));
      // tangent[b*G+g] = h[b] at position g, zero elsewhere.
      const tangent = tf.reshape(tf.mul(tf.expandDims(hs, 1), tf.tensor(mask, [B, G, H, W, 1])), [B * G, H, W, C]);
      const r = c.jvp(xs, layer, hs, tangent, G, ['logits']);
      return r ? r.tangent[0]! : undefined;
    });
    if (!out) return false;
    const d = out.dataSync();
    const outputs = out.shape[1]!;
    for (let p = 0; p < B * G; p++) attr.set(d.subarray(p * outputs + offset, p * outputs + offset + K), (row + p) * K);
    row += B * G;
    out.dispose();
  }
  return true;
}

/** Classes per native reverse-mode run: the repeated activations (h's size each) stay near 16 MB. */
function classesPerRun(hSize: number, K: number): number {
  return Math.max(1, Math.min(K, Math.floor(4_000_000 / hSize)));
}

/**
 * d logit / d h natively for the `n` label columns from `first`, every image of x at once: h repeated once per class,
 * rows class-major ([n·B, ...h]). Undefined where the model has no native gradients (after one note).
 */
function nativeClassGradients(c: Classifier, x: tf.Tensor4D, layer: string, h: tf.Tensor, first: number, n: number): tf.Tensor | undefined {
  const B = h.shape[0]!;
  return tf.tidy(() => {
    const columns = Array.from({ length: n * B }, (_, r) => first + c.labels.offset + Math.floor(r / B));
    const seeds = tf.oneHot(tf.tensor1d(columns, 'int32'), c.labels.outputs).toFloat() as tf.Tensor2D;
    return c.nativeLayerGradient(x, layer, n === 1 ? h : tf.tile(h, [n, 1, 1, 1]), seeds, 'smooth');
  });
}

/** d logit / d h for label column k on the tape, max-pools through the article's relaxation (as the forward-mode rule). */
function tapeClassGradient(c: Classifier, x: tf.Tensor4D, layer: string, k: number): { activation: tf.Tensor; grad: tf.Tensor } {
  return c.layerGradient(x, layer, ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, k + c.labels.offset], [-1, 1])), { maxPool: 'smooth' });
}

/**
 * Seconds the reverse-mode fallback takes for one image (every class), measured on a blank image: natively (several
 * classes a run, the session made by a first run) where the model runs it so, else one backward pass on the tape
 * scaled by the number of classes.
 */
export function reverseAttributionSeconds(c: Classifier, layer: string): number {
  const probe = tf.zeros([1, ...c.inputSize, 3]) as tf.Tensor4D;
  const K = c.labels.size;
  try {
    if (c.nativeSteps('attribution', c.inputSize[0] * c.inputSize[1])) {
      const h = c.activation(probe, layer);
      try {
        const G = classesPerRun(h.size, K);
        const first = nativeClassGradients(c, probe, layer, h, 0, G);
        if (first) {
          first.dispose();
          const t0 = performance.now();
          nativeClassGradients(c, probe, layer, h, 0, G)?.dispose();
          return ((performance.now() - t0) / 1000) * Math.ceil(K / G);
        }
      } finally {
        h.dispose();
      }
    }
    const t0 = performance.now();
    const g = tapeClassGradient(c, probe, layer, 0);
    tf.dispose([g.activation, g.grad]);
    return ((performance.now() - t0) / 1000) * K;
  } finally {
    probe.dispose();
  }
}

/**
 * d logit_c / d h for every class c, dotted with h at each position: one backward pass per class on the tape, or,
 * where the model runs natively (Classifier.nativeSteps('attribution')), backward graphs from `layer` on onnxruntime
 * with several classes per run (the images repeated once per class).
 */
function reverseAttribution(c: Classifier, x: tf.Tensor4D, layer: string, h: tf.Tensor, positions: Array<Array<[number, number]>>, attr: Float32Array, K: number): void {
  const [B, H, W, C] = h.shape as [number, number, number, number];
  const hData = h.dataSync();
  const fill = (k: number, g: ArrayLike<number>, at: number) => {
    let row = 0;
    positions.forEach((ps, i) => {
      for (const [y, xx] of ps) {
        const base = ((i * H + y) * W + xx) * C;
        let s = 0;
        for (let ch = 0; ch < C; ch++) s += hData[base + ch]! * g[at + base + ch]!;
        attr[row++ * K + k] = s;
      }
    });
  };
  let k = 0;
  if (c.nativeSteps('attribution', B * x.shape[1] * x.shape[2])) {
    const G = classesPerRun(h.size, K);
    for (; k < K; k += G) {
      const n = Math.min(G, K - k);
      const g = nativeClassGradients(c, x, layer, h, k, n);
      if (!g) break; // the note has been given; the tape does the rest
      const d = g.dataSync();
      for (let j = 0; j < n; j++) fill(k + j, d, j * h.size);
      g.dispose();
    }
  }
  for (; k < K; k++) {
    const { activation, grad } = tapeClassGradient(c, x, layer, k);
    fill(k, grad.dataSync(), 0);
    tf.dispose([activation, grad]);
  }
}
