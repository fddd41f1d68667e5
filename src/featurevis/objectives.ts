import * as tf from '@tensorflow/tfjs';

/**
 * Objectives for feature visualisation: a value per batch item computed from named model outputs.
 * The optimiser maximises the sum over the batch; items never interact, so B images render at once,
 * each its own objective (`batch`, `directionCossimBatch`). Objectives are called inside the
 * optimiser's gradient scope (tf.tidy), so they create intermediates freely.
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
  /** Set by `channel`: lets `batch` read B channels with one masked sum instead of B slices of the whole batch. */
  readonly channelOf?: { layer: string; c: number };
}

export type Vector = ArrayLike<number>;

/** Build an objective from its per-item function. */
export function objective(name: string, layers: readonly string[], perItem: (acts: Activations) => tf.Tensor1D): Objective {
  return { name, layers: [...new Set(layers)], perItem, fn: (acts) => tf.sum(perItem(acts)) };
}

function get(acts: Activations, layer: string): tf.Tensor {
  const t = acts.get(layer);
  if (!t) throw new Error(`objective needs output "${layer}", which was not computed`);
  return t;
}

/** [B, C] at spatial position (y, x) of a [B,H,W,C] activation (centre by default); [B, C] passes through. */
function at(t: tf.Tensor, y?: number, x?: number): tf.Tensor2D {
  if (t.rank === 2) return t as tf.Tensor2D;
  if (t.rank !== 4) throw new Error(`expected a [B,H,W,C] or [B,C] activation, got rank ${t.rank}`);
  const [b, h, w, c] = t.shape as [number, number, number, number];
  // Lucid's centre: shape // 2.
  const yy = y ?? Math.floor(h / 2);
  const xx = x ?? Math.floor(w / 2);
  if (yy < 0 || yy >= h || xx < 0 || xx >= w) throw new Error(`position (${yy}, ${xx}) is outside the ${h}×${w} activation`);
  return tf.slice(t, [0, yy, xx, 0], [b, 1, 1, c]).reshape([b, c]);
}

function vector(vec: Vector, c: number, what: string): tf.Tensor1D {
  if (vec.length !== c) throw new Error(`${what}: vector has ${vec.length} values, the layer has ${c} channels`);
  return tf.tensor1d(Array.from(vec));
}

/** Mean activation of channel c over all positions (lucid's `channel`). */
export function channel(layer: string, c: number): Objective {
  const o = objective(`channel(${layer}:${c})`, [layer], (acts) => {
    const t = get(acts, layer);
    const ch = tf.slice(t, [...new Array(t.rank - 1).fill(0), c], [...t.shape.slice(0, -1), 1]);
    return (t.rank === 2 ? ch.reshape([t.shape[0]!]) : tf.mean(ch, [1, 2, 3])) as tf.Tensor1D;
  });
  return { ...o, channelOf: { layer, c } };
}

/** Item i's value is channel cs[i] of `layer`: a one-hot mask per item, one multiply and one sum. */
function channelPerItem(acts: Activations, layer: string, cs: readonly number[]): tf.Tensor1D {
  const t = get(acts, layer);
  const C = t.shape[t.rank - 1]!;
  if (t.shape[0] !== cs.length) throw new Error(`batch: ${cs.length} objectives for a batch of ${t.shape[0]}`);
  for (const c of cs) if (c < 0 || c >= C) throw new Error(`channel ${c} is outside the ${C} channels of ${layer}`);
  const mask = tf.oneHot(tf.tensor1d(cs as number[], 'int32'), C).reshape([cs.length, ...new Array(t.rank - 2).fill(1), C]);
  const picked = tf.sum(tf.mul(t, mask), -1);
  return (t.rank === 2 ? picked : tf.mean(picked, [1, 2])) as tf.Tensor1D;
}

/** Channel c at one position, the centre by default (lucid's `neuron`). */
export function neuron(layer: string, c: number, y?: number, x?: number): Objective {
  return objective(`neuron(${layer}:${c}@${y ?? 'c'},${x ?? 'c'})`, [layer], (acts) => {
    const h = at(get(acts, layer), y, x);
    return tf.slice(h, [0, c], [-1, 1]).reshape([h.shape[0]]) as tf.Tensor1D;
  });
}

/** Mean over positions of dot(h, v) (lucid's `direction` without the cosine term). */
export function direction(layer: string, vec: Vector): Objective {
  return objective(`direction(${layer})`, [layer], (acts) => {
    const t = get(acts, layer);
    const dots = tf.sum(tf.mul(t, vector(vec, t.shape[t.rank - 1]!, 'direction')), -1);
    return (t.rank === 2 ? dots : tf.mean(dots, [1, 2])) as tf.Tensor1D;
  });
}

/** Smooths |h| near 0 so the cosine's gradient stays finite when the centre activation is all zero (ReLU). */
const NORM_EPS = 1e-12;

/**
 * The article's icon objective for rows h [B,C] and directions v [B,C] (or [1,C]):
 * dot(h, v) · max(0.1, cossim(h, v))^p. The floor keeps a gradient when h starts orthogonal to v.
 */
export function dotCossim(h: tf.Tensor2D, v: tf.Tensor2D, p: number): tf.Tensor1D {
  const dot = tf.sum(tf.mul(h, v), 1);
  const hn = tf.sqrt(tf.add(tf.sum(tf.square(h), 1), NORM_EPS));
  const vn = tf.sqrt(tf.add(tf.sum(tf.square(v), 1), NORM_EPS));
  const cos = tf.div(dot, tf.mul(hn, vn));
  return tf.mul(dot, tf.pow(tf.maximum(cos, 0.1), p)) as tf.Tensor1D;
}

/** dot(h, v) · max(0.1, cossim(h, v))^p at the layer's centre position (article §4; p = 2–4). */
export function directionCossim(layer: string, vec: Vector, p = 2): Objective {
  return objective(`directionCossim(${layer}, p=${p})`, [layer], (acts) => {
    const h = at(get(acts, layer));
    return dotCossim(h, vector(vec, h.shape[1], 'directionCossim').reshape([1, -1]) as tf.Tensor2D, p);
  });
}

/** Batched icons: item i maximises directionCossim towards vecs[i] (B must equal vecs.length). */
export function directionCossimBatch(layer: string, vecs: readonly Vector[], p = 2): Objective {
  return objective(`directionCossimBatch(${layer}, ${vecs.length}, p=${p})`, [layer], (acts) => {
    const h = at(get(acts, layer));
    const [b, c] = h.shape;
    if (b !== vecs.length) throw new Error(`directionCossimBatch: batch of ${b} images for ${vecs.length} directions`);
    const flat = new Float32Array(b * c);
    vecs.forEach((v, i) => {
      if (v.length !== c) throw new Error(`directionCossimBatch: direction ${i} has ${v.length} values, the layer has ${c} channels`);
      flat.set(Array.from(v), i * c);
    });
    return dotCossim(h, tf.tensor2d(flat, [b, c]), p);
  });
}

/** Logit of output column `cls` (a ClassRef.index: the model's own output position). */
export function classLogit(cls: number): Objective {
  return objective(`classLogit(${cls})`, ['logits'], (acts) => {
    const l = get(acts, 'logits');
    return tf.slice(l, [0, cls], [-1, 1]).reshape([l.shape[0]!]) as tf.Tensor1D;
  });
}

/** Sum of objectives (per item). */
export function sum(...objs: Objective[]): Objective {
  if (objs.length === 0) throw new Error('sum of no objectives');
  return objective(objs.map((o) => o.name).join(' + '), objs.flatMap((o) => o.layers), (acts) =>
    objs.map((o) => o.perItem(acts)).reduce((a, b) => tf.add(a, b)),
  );
}

/** k · objective. */
export function scale(obj: Objective, k: number): Objective {
  return objective(`${k}·${obj.name}`, obj.layers, (acts) => tf.mul(obj.perItem(acts), k));
}

/** a − b. */
export function sub(a: Objective, b: Objective): Objective {
  return objective(`${a.name} − ${b.name}`, [...a.layers, ...b.layers], (acts) => tf.sub(a.perItem(acts), b.perItem(acts)));
}

/**
 * Item i of the batch gets objective list[i] (B must equal list.length). Each objective is evaluated
 * on the whole batch and item i's value picked; fine for the cheap reductions objectives are.
 */
export function batch(list: readonly Objective[]): Objective {
  const layer = list[0]?.channelOf?.layer;
  if (layer !== undefined && list.every((o) => o.channelOf?.layer === layer)) {
    const cs = list.map((o) => o.channelOf!.c);
    return objective(`batch[${list.map((o) => o.name).join(', ')}]`, [layer], (acts) => channelPerItem(acts, layer, cs));
  }
  return objective(`batch[${list.map((o) => o.name).join(', ')}]`, list.flatMap((o) => o.layers), (acts) => {
    const parts = list.map((o, i) => {
      const v = o.perItem(acts);
      if (v.shape[0] !== list.length) throw new Error(`batch: ${list.length} objectives for a batch of ${v.shape[0]}`);
      return tf.slice(v, [i], [1]);
    });
    return tf.concat(parts) as tf.Tensor1D;
  });
}
