import * as tf from '@tensorflow/tfjs';
import { evaluateReadout, readoutWidths, shiftWeights, weightCount, type Readout, type ReadoutWeight } from '../engine/index.js';

/**
 * Objectives for feature visualisation: a value per batch item computed from named model outputs.
 * The optimiser maximises the sum over the batch; items never interact, so B images render at once,
 * each its own objective (`batch`, `directionCossimBatch`). Objectives are called inside the
 * optimiser's gradient scope (tf.tidy), so they create intermediates freely.
 *
 * The built-in ones are readouts (engine/readout.ts: the objective written as data, evaluated on the tape here),
 * so that a native step can run the network, the objective and its gradient in one onnxruntime run
 * (featurevis/native-step.ts).
 */

/** Model outputs by the names an objective asked for (layer names, aliases, 'logits', 'probs'). */
export type Activations = ReadonlyMap<string, tf.Tensor>;

export interface Objective {
  readonly name: string;
  /** Outputs the objective reads. */
  readonly layers: readonly string[];
  /** One value per batch item, [B]. */
  perItem(acts: Activations): tf.Tensor1D;
  /** The sum over the batch: what the optimiser maximises. */
  fn(acts: Activations): tf.Scalar;
  /** The objective as a readout, where it is one; `perItem` evaluates it. */
  readonly readout?: ObjectiveReadout;
  /** Set by `channel`: lets `batch` read B channels with one masked sum instead of B slices of the whole batch. */
  readonly channelOf?: { layer: string; c: number };
}

/** A readout and its weights, given the width (channels) of the rows each weight meets (engine/readout.ts `readoutWidths`). */
export interface ObjectiveReadout {
  readonly form: Readout;
  weights(widths: readonly number[]): ReadoutWeight[];
}

export type Vector = ArrayLike<number>;

/** Build an objective from its per-item function. */
export function objective(name: string, layers: readonly string[], perItem: (acts: Activations) => tf.Tensor1D): Objective {
  return { name, layers: [...new Set(layers)], perItem, fn: (acts) => tf.sum(perItem(acts)) };
}

/** Build an objective from a readout: `perItem` evaluates it on the tape, a native step runs it natively. */
export function fromReadout(name: string, layers: readonly string[], readout: ObjectiveReadout): Objective {
  const perItem = (acts: Activations) => {
    const widths = readoutWidths(readout.form, (l) => {
      const t = acts.get(l);
      if (!t) throw new Error(`objective needs output "${l}", which was not computed`);
      return t.shape[t.rank - 1]!;
    });
    return evaluateReadout(readout.form, readout.weights(widths), acts);
  };
  return { ...objective(name, layers, perItem), readout };
}

/** One row: `vec` checked against the width it meets. */
function row(vec: Vector, c: number, what: string): ReadoutWeight {
  if (vec.length !== c) throw new Error(`${what}: vector has ${vec.length} values, the layer has ${c} channels`);
  return { data: Float32Array.from(vec), rows: 1, cols: c };
}

/** One-hot rows: row i picks channel cs[i]. */
function oneHot(cs: readonly number[], c: number, layer: string): ReadoutWeight {
  const data = new Float32Array(cs.length * c);
  cs.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k >= c) throw new Error(`channel ${k} is outside the ${c} channels of ${layer}`);
    data[i * c + k] = 1;
  });
  return { data, rows: cs.length, cols: c };
}

/** Mean activation of channel c over all positions (lucid's `channel`). */
export function channel(layer: string, c: number): Objective {
  const o = fromReadout(`channel(${layer}:${c})`, [layer], { form: { dot: { read: layer, at: 'mean' }, w: 0 }, weights: ([w]) => [oneHot([c], w!, layer)] });
  return { ...o, channelOf: { layer, c } };
}

/** Channel c at one position, the centre by default (lucid's `neuron`). */
export function neuron(layer: string, c: number, y?: number, x?: number): Objective {
  const at = y === undefined && x === undefined ? ('centre' as const) : ([y ?? null, x ?? null] as const);
  return fromReadout(`neuron(${layer}:${c}@${y ?? 'c'},${x ?? 'c'})`, [layer], { form: { dot: { read: layer, at }, w: 0 }, weights: ([w]) => [oneHot([c], w!, layer)] });
}

/** Mean over positions of dot(h, v) (lucid's `direction` without the cosine term). */
export function direction(layer: string, vec: Vector): Objective {
  return fromReadout(`direction(${layer})`, [layer], { form: { dot: { read: layer, at: 'mean' }, w: 0 }, weights: ([w]) => [row(vec, w!, 'direction')] });
}

/** dot(h, v) · max(0.1, cossim(h, v))^p at the layer's centre position (article §4; p = 2–4). */
export function directionCossim(layer: string, vec: Vector, p = 2): Objective {
  return fromReadout(`directionCossim(${layer}, p=${p})`, [layer], { form: { dotCossim: { read: layer }, w: 0, p }, weights: ([w]) => [row(vec, w!, 'directionCossim')] });
}

/** Batched icons: item i maximises directionCossim towards vecs[i] (B must equal vecs.length). */
export function directionCossimBatch(layer: string, vecs: readonly Vector[], p = 2): Objective {
  const weights = ([c]: readonly number[]): ReadoutWeight[] => {
    const flat = new Float32Array(vecs.length * c!);
    vecs.forEach((v, i) => {
      if (v.length !== c) throw new Error(`directionCossimBatch: direction ${i} has ${v.length} values, the layer has ${c} channels`);
      flat.set(Array.from(v), i * c!);
    });
    return [{ data: flat, rows: vecs.length, cols: c! }];
  };
  const o = fromReadout(`directionCossimBatch(${layer}, ${vecs.length}, p=${p})`, [layer], { form: { dotCossim: { read: layer }, w: 0, p }, weights });
  return { ...o, perItem: (acts) => withBatch(acts, layer, vecs.length, 'directionCossimBatch', 'directions', () => o.perItem(acts)) };
}

/** Logit of output column `cls` (a ClassRef.index: the model's own output position). */
export function classLogit(cls: number): Objective {
  return fromReadout(`classLogit(${cls})`, ['logits'], { form: { dot: { read: 'logits' }, w: 0 }, weights: ([w]) => [oneHot([cls], w!, 'logits')] });
}

/** `f()` after checking that `layer` has a batch of `b` (one line naming the objective where it has not). */
function withBatch(acts: Activations, layer: string, b: number, what: string, items: string, f: () => tf.Tensor1D): tf.Tensor1D {
  const t = acts.get(layer);
  if (t && t.shape[0] !== b) throw new Error(`${what}: ${b} ${items} for a batch of ${t.shape[0]}`);
  return f();
}

/**
 * Σ k·objective per item. A readout again where every term is one (the terms' weights one after the other), so
 * sums stay native.
 */
function linear(name: string, terms: ReadonlyArray<readonly [number, Objective]>): Objective {
  const layers = terms.flatMap(([, o]) => o.layers);
  const perItem = (acts: Activations) => terms.map(([k, o]) => (k === 1 ? o.perItem(acts) : tf.mul(o.perItem(acts), k))).reduce((a, b) => tf.add(a, b)) as tf.Tensor1D;
  if (!terms.every(([, o]) => o.readout)) return objective(name, layers, perItem);
  const counts = terms.map(([, o]) => weightCount(o.readout!.form));
  const offsets = counts.map((_, i) => counts.slice(0, i).reduce((a, b) => a + b, 0));
  const form: Readout = { sum: terms.map(([k, o], i) => [k, shiftWeights(o.readout!.form, offsets[i]!)] as const) };
  const weights = (widths: readonly number[]) => terms.flatMap(([, o], i) => o.readout!.weights(widths.slice(offsets[i], offsets[i]! + counts[i]!)));
  return fromReadout(name, layers, { form, weights });
}

/** Sum of objectives (per item). */
export function sum(...objs: Objective[]): Objective {
  if (objs.length === 0) throw new Error('sum of no objectives');
  return linear(objs.map((o) => o.name).join(' + '), objs.map((o) => [1, o] as const));
}

/** k · objective. */
export function scale(obj: Objective, k: number): Objective {
  return linear(`${k}·${obj.name}`, [[k, obj]]);
}

/** a − b. */
export function sub(a: Objective, b: Objective): Objective {
  return linear(`${a.name} − ${b.name}`, [
    [1, a],
    [-1, b],
  ]);
}

/**
 * Item i of the batch gets objective list[i] (B must equal list.length). Each objective is evaluated
 * on the whole batch and item i's value picked; fine for the cheap reductions objectives are. Channels of one
 * layer are one readout (a one-hot row per item); other lists stay on the tape.
 */
export function batch(list: readonly Objective[]): Objective {
  const name = `batch[${list.map((o) => o.name).join(', ')}]`;
  const layer = list[0]?.channelOf?.layer;
  if (layer !== undefined && list.every((o) => o.channelOf?.layer === layer)) {
    const cs = list.map((o) => o.channelOf!.c);
    const o = fromReadout(name, [layer], { form: { dot: { read: layer, at: 'mean' }, w: 0 }, weights: ([w]) => [oneHot(cs, w!, layer)] });
    return { ...o, perItem: (acts) => withBatch(acts, layer, cs.length, 'batch', 'objectives', () => o.perItem(acts)) };
  }
  return objective(name, list.flatMap((o) => o.layers), (acts) => {
    const parts = list.map((o, i) => {
      const v = o.perItem(acts);
      if (v.shape[0] !== list.length) throw new Error(`batch: ${list.length} objectives for a batch of ${v.shape[0]}`);
      return tf.slice(v, [i], [1]);
    });
    return tf.concat(parts) as tf.Tensor1D;
  });
}
