import * as tf from '@tensorflow/tfjs';

/**
 * Readouts: a per-item scalar of a network's named outputs, written as data, so that one description runs on the
 * tfjs tape (`evaluateReadout`, here) and inside an onnxruntime backward graph (onnx/readout.ts), where the network,
 * the readout and its derivative then take one native run. Feature-vis objectives and the EOT patch loss are
 * readouts. Items never interact: value b reads only item b of each output.
 *
 * Rows ([B, C]) come from an output: a [B, H, W, C] activation at its centre (lucid's `shape // 2`), at a position,
 * or averaged over positions; a [B, C] output (logits) as it is. Weights are [1, C] (one row for every item) or
 * [B, C] (a row per item), given with the readout and fed, not built in, so one native session serves every value.
 */
export type Rows =
  | { read: string; at?: 'centre' | 'mean' | Position }
  | { logSoftmax: Rows };

/** [y, x] in an activation; null: that axis's centre (h // 2 or w // 2). */
export type Position = readonly [number | null, number | null];

export type Readout =
  /** Σ_c rows·w. */
  | { dot: Rows; w: number }
  /** max_c (rows + w). */
  | { maxPlus: Rows; w: number }
  /** dot(rows, w) · max(0.1, cossim(rows, w))^p (the article's icon objective). */
  | { dotCossim: Rows; w: number; p: number }
  /** Σ k·readout. */
  | { sum: ReadonlyArray<readonly [number, Readout]> };

/** A readout's weight: `rows` (1, or the batch) × `cols` values, row-major. */
export interface ReadoutWeight {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** Smooths |h| near 0 so the cosine's gradient stays finite when the centre activation is all zero (ReLU). */
export const NORM_EPS = 1e-12;
/** The cosine's floor in dotCossim: a gradient remains when h starts orthogonal to the direction. */
export const COS_FLOOR = 0.1;

/** A readout that is not a sum: the rows it reads. */
type Term = Exclude<Readout, { sum: unknown }>;
const termRows = (x: Term): Rows => ('dot' in x ? x.dot : 'maxPlus' in x ? x.maxPlus : x.dotCossim);

/** The output rows read, whatever log-softmaxes them. */
const readOf = (x: Rows): Extract<Rows, { read: string }> => ('read' in x ? x : readOf(x.logSoftmax));

/** The outputs a readout reads, once each, in first-read order. */
export function readoutReads(r: Readout): string[] {
  const all = (x: Readout): string[] => ('sum' in x ? x.sum.flatMap(([, t]) => all(t)) : [readOf(termRows(x)).read]);
  return [...new Set(all(r))];
}

/** The same readout reading `rename(output)` instead of each output. */
export function renameReads(r: Readout, rename: (output: string) => string): Readout {
  const rows = (x: Rows): Rows => ('read' in x ? { ...x, read: rename(x.read) } : { logSoftmax: rows(x.logSoftmax) });
  if ('sum' in r) return { sum: r.sum.map(([k, t]) => [k, renameReads(t, rename)] as const) };
  if ('dot' in r) return { ...r, dot: rows(r.dot) };
  if ('maxPlus' in r) return { ...r, maxPlus: rows(r.maxPlus) };
  return { ...r, dotCossim: rows(r.dotCossim) };
}

/** How many weights a readout uses (its largest weight index + 1). */
export function weightCount(r: Readout): number {
  return 'sum' in r ? Math.max(0, ...r.sum.map(([, t]) => weightCount(t))) : r.w + 1;
}

/** The same readout with every weight index moved by `by` (to put readouts' weights one after another). */
export function shiftWeights(r: Readout, by: number): Readout {
  return 'sum' in r ? { sum: r.sum.map(([k, t]) => [k, shiftWeights(t, by)] as const) } : { ...r, w: r.w + by };
}

/**
 * The columns of each weight: the width of the rows it meets (`widthOf(output)`: its channels). Throws where one
 * weight meets rows of two widths, or a weight index is skipped.
 */
export function readoutWidths(r: Readout, widthOf: (output: string) => number): number[] {
  const widths: number[] = [];
  const visit = (x: Readout): void => {
    if ('sum' in x) return x.sum.forEach(([, t]) => visit(t));
    const { w } = x;
    const c = widthOf(readOf(termRows(x)).read);
    if (widths[w] !== undefined && widths[w] !== c) throw new Error(`readout: weight ${w} meets rows of ${widths[w]} and of ${c} values`);
    widths[w] = c;
  };
  visit(r);
  for (let k = 0; k < widths.length; k++) if (widths[k] === undefined) throw new Error(`readout: weight ${k} is never used`);
  return widths;
}

/**
 * Weight k of `weights`, checked against the `cols` values a row it meets and a batch of `batch` (1 row, or one per
 * item). Throws one line naming what is wrong.
 */
export function checkedWeight(weights: readonly ReadoutWeight[], k: number, cols: number, batch: number): ReadoutWeight {
  const w = weights[k];
  if (!w) throw new Error(`readout: no weight ${k}`);
  if (w.cols !== cols) throw new Error(`readout: weight ${k} has ${w.cols} values a row, the rows have ${cols}`);
  if (w.rows !== 1 && w.rows !== batch) throw new Error(`readout: weight ${k} has ${w.rows} rows for a batch of ${batch}`);
  if (w.data.length !== w.rows * w.cols) throw new Error(`readout: weight ${k} holds ${w.data.length} values, not ${w.rows} × ${w.cols}`);
  return w;
}

/**
 * The readout's values on the tape, [B]: `outputs` by name (NHWC activations, [B, C] logits). Call inside a tidy.
 * Throws (one line) where a weight does not match its rows, or a position lies outside the activation.
 */
export function evaluateReadout(r: Readout, weights: readonly ReadoutWeight[], outputs: ReadonlyMap<string, tf.Tensor>): tf.Tensor1D {
  const weight = (k: number, c: number, b: number): tf.Tensor2D => {
    const w = checkedWeight(weights, k, c, b);
    return tf.tensor2d(w.data, [w.rows, w.cols]);
  };
  const rows = (x: Rows): tf.Tensor2D => {
    if ('logSoftmax' in x) return tf.logSoftmax(rows(x.logSoftmax));
    const t = outputs.get(x.read);
    if (!t) throw new Error(`readout needs output "${x.read}", which was not computed`);
    if (t.rank === 2) return t as tf.Tensor2D;
    if (t.rank !== 4) throw new Error(`readout: expected a [B,H,W,C] or [B,C] output, got rank ${t.rank} for ${x.read}`);
    const [b, h, w, c] = t.shape as [number, number, number, number];
    if (x.at === 'mean') return tf.mean(t, [1, 2]) as tf.Tensor2D;
    const [yy, xx] = positionOf(x.at, h, w);
    return tf.reshape(tf.slice(t, [0, yy, xx, 0], [b, 1, 1, c]), [b, c]);
  };
  const value = (x: Readout): tf.Tensor1D => {
    if ('sum' in x) {
      if (!x.sum.length) throw new Error('readout: a sum of nothing');
      return x.sum.map(([k, t]) => (k === 1 ? value(t) : tf.mul(value(t), k))).reduce((a, v) => tf.add(a, v)) as tf.Tensor1D;
    }
    const h = rows(termRows(x));
    const [b, c] = h.shape;
    if ('dot' in x) return tf.sum(tf.mul(h, weight(x.w, c, b)), 1);
    if ('maxPlus' in x) return tf.max(tf.add(h, weight(x.w, c, b)), 1);
    const v = weight(x.w, c, b);
    const dot = tf.sum(tf.mul(h, v), 1);
    const hn = tf.sqrt(tf.add(tf.sum(tf.square(h), 1), NORM_EPS));
    const vn = tf.sqrt(tf.add(tf.sum(tf.square(v), 1), NORM_EPS));
    const cos = tf.div(dot, tf.mul(hn, vn));
    return tf.mul(dot, tf.pow(tf.maximum(cos, COS_FLOOR), x.p)) as tf.Tensor1D;
  };
  return value(r);
}

/** [y, x] of a read in an h × w activation (the centre: h // 2, w // 2). Throws where it lies outside. */
export function positionOf(at: 'centre' | Position | undefined, h: number, w: number): [number, number] {
  const given = at === undefined || at === 'centre' ? [null, null] : at;
  const y = given[0] ?? Math.floor(h / 2);
  const x = given[1] ?? Math.floor(w / 2);
  if (y < 0 || y >= h || x < 0 || x >= w) throw new Error(`position (${y}, ${x}) is outside the ${h}×${w} activation`);
  return [y, x];
}
