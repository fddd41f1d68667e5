/**
 * Approximate k-nearest neighbours by NN-descent (Dong, Moses & Li 2011) started from a
 * random-projection forest, the method of umap-learn's pynndescent (pynndescent_.py: nn_descent,
 * utils.py: new_build_candidates). "A neighbour of a neighbour is likely a neighbour": each round
 * samples up to `maxCandidates` current neighbours and reverse neighbours of every point and
 * compares them pairwise (the local join), skipping pairs of two entries that were both joined
 * before; it stops when a round changes fewer than delta·k·n heap entries.
 *
 * Work is about n · maxCandidates² distances a round instead of the exact search's n²/2, and the
 * memory is a few flat arrays of n × k (heaps.ts). Single-threaded and seeded: the same seed
 * gives the same graph.
 */
import { heapPush, makeHeaps, sortedRow, type RowHeaps } from './heaps.js';
import type { Knn, KnnMetric } from './knn.js';
import { rpForestInit, rpLeafOrder } from './rptree.js';
import { sqDistBounded } from './sqdist.js';

export interface NnDescentOptions {
  /** Seeded uniform [0, 1) generator; every random choice goes through it. */
  rand: () => number;
  /** RP trees for the initial graph (default: see defaultTrees). */
  nTrees?: number;
  /** Largest RP-tree leaf (default max(10, k), as pynndescent). */
  leafSize?: number;
  /** Neighbours (new, and separately old) sampled per point and round (default: see defaultCandidates). */
  maxCandidates?: number;
  /** Most rounds (default max(5, round(log2 n)), umap-learn's n_iters). */
  nIters?: number;
  /** Stop when a round changes ≤ delta·k·n entries (pynndescent default 0.001). */
  delta?: number;
  /**
   * Progress: each tree, then each round, as (step, total steps); a round ended early by the
   * delta rule jumps to the total.
   */
  onStep?: (step: number, total: number) => void;
}

/**
 * RP trees: fewer than umap-learn's min(64, 5 + round(√n / 20)), measured on clustered and random
 * 50-d rows: past ~8 trees, extra trees cost more time than the NN-descent rounds they save.
 */
export function defaultTrees(n: number): number {
  return Math.max(3, Math.min(8, Math.round(Math.log2(Math.max(2, n)) / 2.5)));
}

/**
 * Candidates per point and round: max(20, min(60, round(600 / k))), 40 at k = 15 and 20 at
 * k = 50. umap-learn passes 60; the join costs ~M² distances a point, and a denser graph
 * (larger k) needs fewer samples. Measured recall on 50,000 clustered 384-d points (PCA to 50):
 * k = 15: M 25 → 0.941, 40 → 0.962; k = 50: M 20 → 0.992, 30 → 0.996 at 1.4× the time.
 */
export function defaultCandidates(k: number): number {
  return Math.max(20, Math.min(60, Math.round(600 / k)));
}

/**
 * Approximate k nearest neighbours (self first, at distance 0) of the n rows of `rows`
 * ([n × dim] row-major), in the same conventions as knn(): cosine distance 1 − cos with all-zero
 * rows at 0 from each other and 1 from the rest, euclidean L2; each row by ascending distance,
 * ties by lower index. Output [n × k] Int32Array indices and Float32Array distances.
 */
export function nnDescent(rows: Float32Array, dim: number, n: number, k: number, metric: KnnMetric, opts: NnDescentOptions): Knn {
  if (rows.length !== n * dim) throw new Error(`nnDescent: ${rows.length} values is not ${n} × ${dim}`);
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) throw new Error(`nnDescent: k = ${k} must be in 1..${n}`);
  const rand = opts.rand;
  const leafSize = opts.leafSize ?? Math.max(10, k);
  const { data, width, order } = prepare(rows, dim, n, metric, leafSize, rand);
  const K = k - 1; // non-self slots
  const heaps = makeHeaps(n, Math.max(1, K));
  const nTrees = opts.nTrees ?? defaultTrees(n);
  const nIters = opts.nIters ?? Math.max(5, Math.round(Math.log2(n)));
  const total = nTrees + nIters;
  if (K > 0) {
    rpForestInit(data, width, n, heaps, {
      nTrees,
      leafSize,
      rand,
      ...(opts.onStep ? { onTree: (t: number) => opts.onStep!(t, total) } : {}),
    });
    fillEmpty(data, width, n, heaps, rand);
    const M = Math.min(opts.maxCandidates ?? defaultCandidates(k), n - 1);
    const cands = makeCandidates(n, heaps.size, M);
    const stopAt = (opts.delta ?? 0.001) * k * n;
    for (let it = 0; it < nIters; it++) {
      buildCandidates(heaps, cands, rand);
      const changed = localJoin(data, width, n, heaps, cands);
      opts.onStep?.(nTrees + it + 1, total);
      if (changed <= stopAt) {
        if (it + 1 < nIters) opts.onStep?.(total, total);
        break;
      }
    }
  } else {
    opts.onStep?.(total, total);
  }
  return finish(heaps, n, k, order, metric === 'cosine' ? { data, width } : undefined);
}

/**
 * The rows the search compares, in one squared-Euclidean geometry and a cache-friendly order.
 * Euclidean: the rows as they are. Cosine: unit rows plus a zero flag column, so
 * |u − v|² = 2(1 − cos) and an all-zero row [0…0, 1] is at 0 from another and at 2 (cos
 * distance 1) from every live row. Row r of `data` is input row order[r], order being the leaf
 * order of one RP tree (rptree.ts rpLeafOrder); the search runs on these positions throughout.
 */
function prepare(rows: Float32Array, dim: number, n: number, metric: KnnMetric, leafSize: number, rand: () => number): { data: Float32Array; width: number; order: Int32Array } {
  const cosine = metric === 'cosine';
  const w = cosine ? dim + 1 : dim;
  const geo = new Float32Array(n * w);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let ss = 0;
    if (cosine) for (let c = 0; c < dim; c++) ss += rows[o + c]! * rows[o + c]!;
    const inv = cosine ? (ss > 0 ? 1 / Math.sqrt(ss) : 0) : 1;
    for (let c = 0; c < dim; c++) geo[i * w + c] = rows[o + c]! * inv;
    if (cosine && ss === 0) geo[i * w + dim] = 1;
  }
  const order = rpLeafOrder(geo, w, n, leafSize, rand);
  const data = new Float32Array(n * w);
  for (let r = 0; r < n; r++) data.set(geo.subarray(order[r]! * w, (order[r]! + 1) * w), r * w);
  return { data, width: w, order };
}

/**
 * Rows the trees left short (tiny leaves) are topped up with a run of consecutive points from a
 * random start (pynndescent init_random draws them at random; a run always terminates).
 */
function fillEmpty(data: Float32Array, dim: number, n: number, h: RowHeaps, rand: () => number): void {
  const size = h.size;
  for (let i = 0; i < n; i++) {
    if (h.idx[i * size]! >= 0) continue; // the root is filled last, so a filled root means a full row
    let j = Math.floor(rand() * n);
    for (let tries = 0; tries < n && h.idx[i * size]! < 0; tries++, j = j + 1 === n ? 0 : j + 1) {
      if (j === i) continue;
      heapPush(h, i, sqDistBounded(data, i * dim, j * dim, dim, Infinity), j, 1);
    }
  }
}

/** Per-point candidate lists for one round: up to M entries a point, flat. */
interface Candidates {
  M: number;
  /** [n × M] new candidates (not joined yet), −1 past newCount. */
  fresh: Int32Array;
  freshCount: Int32Array;
  /** [n × M] old candidates (joined in an earlier round). */
  old: Int32Array;
  oldCount: Int32Array;
  /** Reverse graph in CSR form: revStart [n + 1], revIdx / revNew [n × size]. */
  revStart: Int32Array;
  revIdx: Int32Array;
  revNew: Uint8Array;
  /** Last point that listed each index as a candidate (de-duplicates a list). */
  stamp: Int32Array;
  /** Scratch for one point's pool of candidates and where each came from (slot, or −1 = reverse). */
  pool: Int32Array;
  poolSlot: Int32Array;
}

function makeCandidates(n: number, size: number, M: number): Candidates {
  return {
    M,
    fresh: new Int32Array(n * M),
    freshCount: new Int32Array(n),
    old: new Int32Array(n * M),
    oldCount: new Int32Array(n),
    revStart: new Int32Array(n + 1),
    revIdx: new Int32Array(n * size),
    revNew: new Uint8Array(n * size),
    stamp: new Int32Array(n),
    pool: new Int32Array(2 * size),
    poolSlot: new Int32Array(2 * size),
  };
}

/**
 * pynndescent utils.new_build_candidates, as a uniform sample: each point's new candidates are
 * up to M of its new neighbours and new reverse neighbours (points that list it), drawn at random
 * without repeats; likewise the old ones. A new neighbour drawn into the sample is flagged old,
 * so every edge takes part in one join as new. pynndescent draws the same sample with random-
 * priority heaps; a reverse graph in CSR form touches far less memory at random, which is what
 * this step costs.
 */
function buildCandidates(g: RowHeaps, c: Candidates, rand: () => number): void {
  const { n, size, idx, isNew } = g;
  const { revStart, revIdx, revNew, stamp } = c;
  revStart.fill(0);
  for (let t = 0; t < n * size; t++) {
    const j = idx[t]!;
    if (j >= 0) revStart[j + 1]!++;
  }
  for (let i = 0; i < n; i++) revStart[i + 1]! += revStart[i]!;
  const fill = stamp; // borrowed as the CSR write cursor, reset below
  fill.set(revStart.subarray(0, n));
  for (let i = 0; i < n; i++) {
    for (let t = i * size, e = t + size; t < e; t++) {
      const j = idx[t]!;
      if (j < 0) continue;
      const p = fill[j]!++;
      revIdx[p] = i;
      revNew[p] = isNew[t]!;
    }
  }
  stamp.fill(-1);
  for (let i = 0; i < n; i++) {
    sample(g, c, i, 0, rand); // old first: drawing the new ones flags some of i's entries old
    sample(g, c, i, 1, rand);
  }
}

/** Draws point i's new (which = 1) or old (0) candidates into c.fresh / c.old. */
function sample(g: RowHeaps, c: Candidates, i: number, which: number, rand: () => number): void {
  const { size, idx, isNew } = g;
  const { M, revStart, revIdx, revNew, stamp } = c;
  const need = size + revStart[i + 1]! - revStart[i]!;
  if (c.pool.length < need) {
    c.pool = new Int32Array(2 * need); // a hub: many points list i
    c.poolSlot = new Int32Array(2 * need);
  }
  const { pool, poolSlot } = c;
  // stamps: 2i marks point i's new pool, 2i + 1 its old pool (they may share an index)
  const mark = 2 * i + (1 - which);
  let m = 0;
  for (let t = i * size, e = t + size; t < e; t++) {
    const j = idx[t]!;
    if (j < 0 || isNew[t] !== which || stamp[j] === mark) continue;
    stamp[j] = mark;
    pool[m] = j;
    poolSlot[m++] = t;
  }
  for (let p = revStart[i]!, e = revStart[i + 1]!; p < e; p++) {
    const j = revIdx[p]!;
    if (revNew[p] !== which || stamp[j] === mark) continue;
    stamp[j] = mark;
    pool[m] = j;
    poolSlot[m++] = -1;
  }
  const take = m < M ? m : M;
  // partial Fisher–Yates: the first `take` pool entries become a uniform sample
  for (let a = 0; a < take && m > M; a++) {
    const b = a + Math.floor(rand() * (m - a));
    const tj = pool[a]!;
    pool[a] = pool[b]!;
    pool[b] = tj;
    const ts = poolSlot[a]!;
    poolSlot[a] = poolSlot[b]!;
    poolSlot[b] = ts;
  }
  const out = which ? c.fresh : c.old;
  const o = i * M;
  for (let a = 0; a < take; a++) {
    out[o + a] = pool[a]!;
    if (which && poolSlot[a]! >= 0) isNew[poolSlot[a]!] = 0;
  }
  (which ? c.freshCount : c.oldCount)[i] = take;
}

/**
 * The local join: for each point, every pair of its new candidates and every (new, old) pair is
 * compared and offered to both points' heaps. Returns the number of heap changes.
 */
function localJoin(data: Float32Array, dim: number, n: number, g: RowHeaps, c: Candidates): number {
  const { M, fresh, freshCount, old, oldCount } = c;
  const key = g.key;
  const size = g.size;
  let changed = 0;
  for (let i = 0; i < n; i++) {
    const base = i * M;
    const nf = freshCount[i]!;
    const no = oldCount[i]!;
    for (let a = 0; a < nf; a++) {
      const p = fresh[base + a]!;
      const op = p * dim;
      for (let b = a + 1; b < nf + no; b++) {
        const q = b < nf ? fresh[base + b]! : old[base + b - nf]!;
        if (q === p) continue;
        const rp = key[p * size]!;
        const rq = key[q * size]!;
        const d = sqDistBounded(data, op, q * dim, dim, rp > rq ? rp : rq);
        if (d < rp) changed += heapPush(g, p, d, q, 1);
        if (d < rq) changed += heapPush(g, q, d, p, 1);
      }
    }
  }
  return changed;
}

/**
 * Heaps (over positions in `order`) → sorted [n × k] rows of the input's points, self first;
 * squared distances → the metric's distances. For cosine (`flags` = the prepared rows), rows
 * that involve a dead row get the convention's exact 0 or 1 rather than float32 rounding of it.
 */
function finish(h: RowHeaps, n: number, k: number, order: Int32Array, flags?: { data: Float32Array; width: number }): Knn {
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  const pos = new Int32Array(flags ? n : 0); // input index → position, to read the flags
  if (flags) for (let r = 0; r < n; r++) pos[order[r]!] = r;
  const dead = (i: number): boolean => flags!.data[pos[i]! * flags!.width + flags!.width - 1] === 1;
  for (let r = 0; r < n; r++) {
    const i = order[r]!;
    const o = i * k;
    indices[o] = i;
    if (k === 1) continue;
    const m = sortedRow(h, r, indices, distances, o + 1, order);
    if (m !== k - 1) throw new Error(`nnDescent: row ${i} has ${m} of ${k - 1} neighbours`);
    const di = flags ? dead(i) : false;
    for (let t = o + 1; t < o + k; t++) {
      const d2 = distances[t]!;
      if (!flags) distances[t] = Math.sqrt(d2);
      else if (di || dead(indices[t]!)) distances[t] = di && dead(indices[t]!) ? 0 : 1;
      else distances[t] = d2 * 0.5;
    }
  }
  return { k, indices, distances };
}
