/**
 * The layout SGD of umap-learn layouts.py: optimize_layout_euclidean (+ its single-epoch body):
 * each edge is sampled in proportion to its weight (every epochs_per_sample epochs), pulled
 * together with the attractive gradient, and its head pushed away from negative_sample_rate
 * random points per sample. Gradients are clipped to ±4; the learning rate falls linearly from
 * its start to 0. All state lives in typed arrays; nothing is allocated per edge.
 */
import type { Graph } from './fuzzy.js';
import { makePow } from './pow.js';

export interface OptimiseOptions {
  a: number;
  b: number;
  nEpochs: number;
  /** Uniform [0, 1) generator (the seeded one: it picks the negative samples). */
  rand: () => number;
  /** Negative samples per positive one (umap-learn default 5). */
  negativeSampleRate?: number;
  /** Repulsion weight gamma (umap-learn repulsion_strength, default 1). */
  repulsion?: number;
  /** Initial learning rate (umap-learn default 1). */
  learningRate?: number;
  onEpoch?: (epoch: number, total: number) => void;
}

/** umap-learn umap_.py: make_epochs_per_sample: an edge of weight w is sampled every max/w epochs. */
export function epochsPerSample(weight: Float32Array): Float64Array {
  let max = 0;
  for (const v of weight) if (v > max) max = v;
  const out = new Float64Array(weight.length);
  for (let e = 0; e < weight.length; e++) out[e] = weight[e]! > 0 ? max / weight[e]! : -1;
  return out;
}

/** Optimises `emb` ([n × dim], row-major) in place; move_other = true (head and tail embeddings are one). */
export function optimiseLayout(emb: Float64Array, dim: number, g: Graph, opts: OptimiseOptions): void {
  const { a, b, nEpochs } = opts;
  const alpha0 = opts.learningRate ?? 1;
  const nNeg = opts.negativeSampleRate ?? 5;
  const m = g.head.length;
  const eps = epochsPerSample(g.weight);
  const epsNeg = new Float64Array(m);
  for (let e = 0; e < m; e++) epsNeg[e] = eps[e]! / nNeg;
  const s: EdgeState = { eps, epsNeg, next: Float64Array.from(eps), nextNeg: Float64Array.from(epsNeg) };
  const run = dim === 2 ? epoch2 : epochN;
  const consts: Consts = { n: g.n, dim, a, twoAB: 2 * a * b, twoGB: 2 * (opts.repulsion ?? 1) * b, powB: makePow(b), rand: opts.rand };
  for (let epoch = 0; epoch < nEpochs; epoch++) {
    // umap-learn's schedule: alpha = 1 − epoch/n_epochs is set after each epoch, so epochs 0 and 1 both run at the start rate
    const alpha = alpha0 * (1 - Math.max(0, epoch - 1) / nEpochs);
    run(emb, g.head, g.tail, s, consts, epoch, alpha);
    opts.onEpoch?.(epoch + 1, nEpochs);
  }
}

interface EdgeState {
  eps: Float64Array;
  epsNeg: Float64Array;
  /** Epoch at which each edge is next sampled (umap-learn epoch_of_next_sample). */
  next: Float64Array;
  /** umap-learn epoch_of_next_negative_sample. */
  nextNeg: Float64Array;
}

interface Consts {
  n: number;
  dim: number;
  a: number;
  twoAB: number;
  twoGB: number;
  powB: (x: number) => number;
  rand: () => number;
}

/** One epoch for 2-D layouts: the common case, unrolled (umap-learn layouts.py: _optimize_layout_euclidean_single_epoch). */
function epoch2(emb: Float64Array, head: Int32Array, tail: Int32Array, s: EdgeState, c: Consts, epoch: number, alpha: number): void {
  const { eps, epsNeg, next, nextNeg } = s;
  const { n, a, twoAB, twoGB, powB, rand } = c;
  const m = head.length;
  for (let e = 0; e < m; e++) {
    if (next[e]! > epoch) continue;
    const cj = 2 * head[e]!;
    const ck = 2 * tail[e]!;
    let x = emb[cj]!;
    let y = emb[cj + 1]!;
    const dx = x - emb[ck]!;
    const dy = y - emb[ck + 1]!;
    const d2 = dx * dx + dy * dy;
    if (d2 > 0) {
      // attraction −2ab·d²^(b−1) / (1 + a·d²^b), with one pow
      const pb = powB(d2);
      const coeff = (-twoAB * pb) / (d2 * (a * pb + 1));
      let gx = coeff * dx;
      let gy = coeff * dy;
      gx = (gx > 4 ? 4 : gx < -4 ? -4 : gx) * alpha;
      gy = (gy > 4 ? 4 : gy < -4 ? -4 : gy) * alpha;
      x += gx;
      y += gy;
      emb[ck] = emb[ck]! - gx;
      emb[ck + 1] = emb[ck + 1]! - gy;
    }
    next[e] = next[e]! + eps[e]!;

    const negs = Math.floor((epoch - nextNeg[e]!) / epsNeg[e]!);
    // The negative samples of one edge all see the head where the attraction left it and their
    // (clipped) pushes are summed: independent samples overlap in the CPU instead of forming a
    // pow → divide → move dependency chain (2× faster; umap-learn's parallel mode is laxer still).
    let sx = 0;
    let sy = 0;
    for (let p = 0; p < negs; p++) {
      const cr = 2 * Math.floor(rand() * n);
      if (cr === cj) continue; // itself (umap-learn skips j == k)
      const rx = x - emb[cr]!;
      const ry = y - emb[cr + 1]!;
      const s2 = rx * rx + ry * ry;
      if (s2 > 0) {
        // repulsion 2γb / ((0.001 + d²)(1 + a·d²^b))
        const coeff = twoGB / ((0.001 + s2) * (a * powB(s2) + 1));
        const gx = coeff * rx;
        const gy = coeff * ry;
        sx += gx > 4 ? 4 : gx < -4 ? -4 : gx;
        sy += gy > 4 ? 4 : gy < -4 ? -4 : gy;
      } else {
        // on top of another point: umap-learn pushes by the clip value
        sx += 4;
        sy += 4;
      }
    }
    x += sx * alpha;
    y += sy * alpha;
    if (negs > 0) nextNeg[e] = nextNeg[e]! + negs * epsNeg[e]!;
    emb[cj] = x;
    emb[cj + 1] = y;
  }
}

const clip = (v: number): number => (v > 4 ? 4 : v < -4 ? -4 : v);

/** Any dimension (1-D comparison axes, or more): the same update with loops over coordinates. */
function epochN(emb: Float64Array, head: Int32Array, tail: Int32Array, s: EdgeState, c: Consts, epoch: number, alpha: number): void {
  const { eps, epsNeg, next, nextNeg } = s;
  const { n, dim, a, twoAB, twoGB, powB, rand } = c;
  const m = head.length;
  for (let e = 0; e < m; e++) {
    if (next[e]! > epoch) continue;
    const j = head[e]!;
    const cj = j * dim;
    const ck = tail[e]! * dim;
    let d2 = 0;
    for (let d = 0; d < dim; d++) {
      const t = emb[cj + d]! - emb[ck + d]!;
      d2 += t * t;
    }
    if (d2 > 0) {
      const pb = powB(d2);
      const coeff = (-twoAB * pb) / (d2 * (a * pb + 1));
      for (let d = 0; d < dim; d++) {
        const gd = clip(coeff * (emb[cj + d]! - emb[ck + d]!)) * alpha;
        emb[cj + d] = emb[cj + d]! + gd;
        emb[ck + d] = emb[ck + d]! - gd;
      }
    }
    next[e] = next[e]! + eps[e]!;

    const negs = Math.floor((epoch - nextNeg[e]!) / epsNeg[e]!);
    for (let p = 0; p < negs; p++) {
      const r = Math.floor(rand() * n);
      const cr = r * dim;
      let s2 = 0;
      for (let d = 0; d < dim; d++) {
        const t = emb[cj + d]! - emb[cr + d]!;
        s2 += t * t;
      }
      if (s2 > 0) {
        const coeff = twoGB / ((0.001 + s2) * (a * powB(s2) + 1));
        for (let d = 0; d < dim; d++) emb[cj + d] = emb[cj + d]! + clip(coeff * (emb[cj + d]! - emb[cr + d]!)) * alpha;
      } else if (r !== j) {
        for (let d = 0; d < dim; d++) emb[cj + d] = emb[cj + d]! + 4 * alpha;
      }
    }
    if (negs > 0) nextNeg[e] = nextNeg[e]! + negs * epsNeg[e]!;
  }
}
