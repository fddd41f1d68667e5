/**
 * Random-projection trees as NN-descent's starting graph (pynndescent rp_trees.py:
 * make_euclidean_tree / euclidean_random_projection_split, and pynndescent_.py init_rp_tree):
 * each node is cut by the hyperplane halfway between two random points of the node, down to
 * leaves of at most `leafSize` points, and every pair inside a leaf is offered to both points'
 * neighbour heaps. Points close together tend to share leaves, so a few trees already give a
 * graph with decent recall, which NN-descent then refines.
 *
 * The trees themselves are never stored: one Int32Array permutation is partitioned in place,
 * depth first, and each leaf is joined as soon as it is reached. Memory is O(n) whatever the
 * number of trees.
 */
import { heapPush, type RowHeaps } from './heaps.js';
import { sqDistBounded } from './sqdist.js';

export interface RpForestOptions {
  /** Trees to build. */
  nTrees: number;
  /** Largest leaf; pynndescent's default is max(10, n_neighbors). */
  leafSize: number;
  /** Seeded uniform [0, 1) generator (picks the hyperplanes and breaks ties). */
  rand: () => number;
  /** Called after each tree (1-based). */
  onTree?: (tree: number, total: number) => void;
}

// pynndescent rp_trees.py caps tree depth at 200; past this depth a node is split in half
// without a hyperplane (only reachable with many duplicates or adversarial data).
const MAX_DEPTH = 200;

/**
 * Joins the leaves of `opts.nTrees` random-projection trees over the n rows of `data`
 * ([n × dim], squared-Euclidean geometry) into `heaps` (keys are squared distances, entries
 * flagged new). Returns the number of heap insertions.
 */
export function rpForestInit(data: Float32Array, dim: number, n: number, heaps: RowHeaps, opts: RpForestOptions): number {
  const { rand, leafSize } = opts;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const normal = new Float64Array(dim);
  const stack: number[] = []; // (lo, hi, depth) triples; depth-first keeps it O(depth)
  const key = heaps.key;
  const size = heaps.size;
  let pushes = 0;
  for (let tree = 0; tree < opts.nTrees; tree++) {
    stack.push(0, n, 0);
    while (stack.length > 0) {
      const depth = stack.pop()!;
      const hi = stack.pop()!;
      const lo = stack.pop()!;
      const m = hi - lo;
      if (m <= leafSize) {
        // every pair in the leaf, offered both ways; the bound lets a hopeless pair stop early
        for (let a = lo; a < hi; a++) {
          const p = perm[a]!;
          const op = p * dim;
          for (let b = a + 1; b < hi; b++) {
            const q = perm[b]!;
            const rp = key[p * size]!;
            const rq = key[q * size]!;
            const d = sqDistBounded(data, op, q * dim, dim, rp > rq ? rp : rq);
            if (d < rp) pushes += heapPush(heaps, p, d, q, 1);
            if (d < rq) pushes += heapPush(heaps, q, d, p, 1);
          }
        }
        continue;
      }
      let mid = depth < MAX_DEPTH ? split(data, dim, perm, lo, hi, normal, rand) : lo + (m >> 1);
      // a hyperplane that leaves one side empty (duplicates): halve the node instead
      if (mid === lo || mid === hi) mid = lo + (m >> 1);
      stack.push(lo, mid, depth + 1, mid, hi, depth + 1);
    }
    opts.onTree?.(tree + 1, opts.nTrees);
  }
  return pushes;
}

/**
 * The leaf order of one random-projection tree over the n rows of `data` ([n × dim]): a
 * permutation [n] in which points that share a leaf are adjacent. Renumbering the points in
 * this order puts most neighbours near each other in memory, so the joins hit the cache.
 */
export function rpLeafOrder(data: Float32Array, dim: number, n: number, leafSize: number, rand: () => number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const normal = new Float64Array(dim);
  const stack: number[] = [0, n, 0];
  while (stack.length > 0) {
    const depth = stack.pop()!;
    const hi = stack.pop()!;
    const lo = stack.pop()!;
    if (hi - lo <= leafSize) continue;
    let mid = depth < MAX_DEPTH ? split(data, dim, perm, lo, hi, normal, rand) : lo + ((hi - lo) >> 1);
    if (mid === lo || mid === hi) mid = lo + ((hi - lo) >> 1);
    stack.push(lo, mid, depth + 1, mid, hi, depth + 1);
  }
  return perm;
}

/**
 * Partitions perm[lo, hi) in place by the hyperplane between two distinct random members
 * (normal l − r through their midpoint); points on it go to a random side. Returns the first
 * index of the right side.
 */
function split(data: Float32Array, dim: number, perm: Int32Array, lo: number, hi: number, normal: Float64Array, rand: () => number): number {
  const m = hi - lo;
  const a = lo + Math.floor(rand() * m);
  let b = lo + Math.floor(rand() * (m - 1));
  if (b >= a) b++;
  const ol = perm[a]! * dim;
  const or = perm[b]! * dim;
  let offset = 0;
  for (let x = 0; x < dim; x++) {
    const l = data[ol + x]!;
    const r = data[or + x]!;
    normal[x] = l - r;
    offset -= (l - r) * (l + r) * 0.5;
  }
  let i = lo;
  let j = hi - 1;
  while (i <= j) {
    const o = perm[i]! * dim;
    let margin = offset;
    for (let x = 0; x < dim; x++) margin += normal[x]! * data[o + x]!;
    const left = margin === 0 ? rand() < 0.5 : margin > 0;
    if (left) i++;
    else {
      const t = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = t;
      j--;
    }
  }
  return i;
}
