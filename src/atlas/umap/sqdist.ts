/**
 * Squared Euclidean distance between two rows of one flat array, the inner loop of the
 * approximate k-NN. Cosine is served by the same loop: on unit rows |u − v|² = 2(1 − cos).
 */

/**
 * |data[a..a+dim) − data[b..b+dim)|², accumulated in float64. Gives up early and returns a
 * partial sum > `bound` once the sum passes `bound` (checked every 8 dims), since such a pair
 * can no longer improve either heap; callers only compare the result against `bound` or less.
 */
export function sqDistBounded(data: Float32Array, a: number, b: number, dim: number, bound: number): number {
  let s = 0;
  let x = 0;
  for (; x + 8 <= dim; x += 8) {
    const t0 = data[a + x]! - data[b + x]!;
    const t1 = data[a + x + 1]! - data[b + x + 1]!;
    const t2 = data[a + x + 2]! - data[b + x + 2]!;
    const t3 = data[a + x + 3]! - data[b + x + 3]!;
    const t4 = data[a + x + 4]! - data[b + x + 4]!;
    const t5 = data[a + x + 5]! - data[b + x + 5]!;
    const t6 = data[a + x + 6]! - data[b + x + 6]!;
    const t7 = data[a + x + 7]! - data[b + x + 7]!;
    s += t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3 + t4 * t4 + t5 * t5 + t6 * t6 + t7 * t7;
    if (s > bound) return s;
  }
  for (; x < dim; x++) {
    const t = data[a + x]! - data[b + x]!;
    s += t * t;
  }
  return s;
}
