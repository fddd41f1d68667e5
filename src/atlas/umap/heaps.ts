/**
 * Fixed-size max-heaps stored flat in typed arrays, one row of `size` slots per point: the
 * neighbour lists of NN-descent and its candidate lists. The root (slot 0 of a row) is the worst
 * entry kept, so "is d good enough?" is one comparison. No per-point objects: at 1,000,000 points
 * and 49 slots a row this is 441 MB (index + key + flag), and nothing else grows with the data.
 */

export interface RowHeaps {
  /** Points (rows). */
  n: number;
  /** Slots per row. */
  size: number;
  /** [n × size] entry indices, −1 where empty. */
  idx: Int32Array;
  /** [n × size] keys (a distance or a random priority), +∞ where empty. */
  key: Float32Array;
  /** [n × size] 1 = the entry has not yet taken part in a local join (NN-descent's "new" flag). */
  isNew: Uint8Array;
}

/** n empty rows of `size` slots. */
export function makeHeaps(n: number, size: number): RowHeaps {
  const idx = new Int32Array(n * size).fill(-1);
  const key = new Float32Array(n * size).fill(Infinity);
  return { n, size, idx, key, isNew: new Uint8Array(n * size) };
}

/**
 * Offers entry j with key d to row i: kept when d is below the row's worst key and j is not in
 * the row yet (pynndescent utils.checked_flagged_heap_push). Returns 1 if kept, else 0.
 */
export function heapPush(h: RowHeaps, i: number, d: number, j: number, flag: number): number {
  const { size, idx, key, isNew } = h;
  const base = i * size;
  if (!(d < key[base]!)) return 0;
  for (let t = base, e = base + size; t < e; t++) if (idx[t] === j) return 0;
  // replace the root and sift it down
  let p = 0;
  for (;;) {
    const c1 = 2 * p + 1;
    if (c1 >= size) break;
    const c2 = c1 + 1;
    let c = c1;
    if (c2 < size && key[base + c2]! > key[base + c1]!) c = c2;
    if (key[base + c]! <= d) break;
    key[base + p] = key[base + c]!;
    idx[base + p] = idx[base + c]!;
    isNew[base + p] = isNew[base + c]!;
    p = c;
  }
  key[base + p] = d;
  idx[base + p] = j;
  isNew[base + p] = flag;
  return 1;
}

/**
 * Row i's entries in ascending key order (ties: lower label first) written to outIdx/outKey
 * from offset `o`, each index j written as label[j] (default: j itself); empty slots are
 * skipped. Returns how many were written. The heap is left unchanged.
 */
export function sortedRow(h: RowHeaps, i: number, outIdx: Int32Array, outKey: Float32Array, o: number, label?: Int32Array): number {
  const { size, idx, key } = h;
  const base = i * size;
  let m = 0;
  // insertion sort: rows are short (k − 1 slots) and it gives the index tie-break directly
  for (let t = 0; t < size; t++) {
    const raw = idx[base + t]!;
    if (raw < 0) continue;
    const j = label ? label[raw]! : raw;
    const d = key[base + t]!;
    let p = m;
    while (p > 0 && (outKey[o + p - 1]! > d || (outKey[o + p - 1] === d && outIdx[o + p - 1]! > j))) {
      outKey[o + p] = outKey[o + p - 1]!;
      outIdx[o + p] = outIdx[o + p - 1]!;
      p--;
    }
    outKey[o + p] = d;
    outIdx[o + p] = j;
    m++;
  }
  return m;
}
