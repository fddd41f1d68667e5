/**
 * Symmetric eigen-decomposition for the PCA step: Householder reduction to tridiagonal form, then
 * implicit QL with Wilkinson-style shifts (the classic dense symmetric method, O(d³)). For the
 * covariance of 512-dim activations this takes ~0.4 s in Float64 JS (1024: ~3 s), and unlike
 * power iteration it is exact and converges regardless of the spectrum's gaps.
 */

export interface Eigen {
  /** All d eigenvalues, descending. */
  values: Float64Array;
  /** The first `count` eigenvectors as rows ([count × d] row-major): row r belongs to values[r]; unit length. */
  vectors: Float64Array;
}

/**
 * Eigenpairs of the symmetric [d × d] row-major matrix `a` (not modified): every eigenvalue, and
 * the eigenvectors of the `count` largest (default all). Each vector's sign is fixed so that its
 * largest-magnitude entry is positive, so the result does not depend on rounding-level accident.
 */
export function symmetricEigen(a: Float64Array, d: number, count = d): Eigen {
  if (a.length !== d * d) throw new Error(`symmetricEigen: ${a.length} values is not ${d} × ${d}`);
  count = Math.max(0, Math.min(d, count));
  const m = Float64Array.from(a);
  const diag = new Float64Array(d);
  const off = new Float64Array(d); // off[i] couples diag[i] and diag[i + 1]; off[d − 1] = 0
  const reflectors = tridiagonalise(m, d, diag, off);
  // zt holds Zᵀ (row r = column r of Z, so each rotation touches two contiguous rows): the
  // eigenvectors of the tridiagonal T = QᵀAQ; those of A are Q·z, formed below only for the
  // `count` wanted, which saves accumulating Q (a third of the work) when count ≪ d.
  const zt = new Float64Array(d * d);
  for (let i = 0; i < d; i++) zt[i * d + i] = 1;
  implicitQL(diag, off, zt, d);

  const order = Array.from({ length: d }, (_, i) => i).sort((x, y) => diag[y]! - diag[x]! || x - y);
  const values = new Float64Array(d);
  order.forEach((src, r) => (values[r] = diag[src]!));
  const vectors = new Float64Array(count * d);
  for (let r = 0; r < count; r++) {
    const src = order[r]!;
    const row = vectors.subarray(r * d, (r + 1) * d);
    row.set(zt.subarray(src * d, (src + 1) * d));
    applyReflectors(reflectors, d, row);
    let big = 0;
    for (let k = 1; k < d; k++) if (Math.abs(row[k]!) > Math.abs(row[big]!)) big = k;
    if (row[big]! < 0) for (let k = 0; k < d; k++) row[k] = -row[k]!;
  }
  return { values, vectors };
}

/** Q·z with Q = H_0·H_1·…·H_{d−3}: the reflections applied last-first (H = I − 2vvᵀ, v stored per column). */
function applyReflectors(reflectors: Float64Array, d: number, z: Float64Array): void {
  for (let k = d - 3; k >= 0; k--) {
    const v = reflectors.subarray(k * d, (k + 1) * d);
    let dot = 0;
    for (let i = k + 1; i < d; i++) dot += v[i]! * z[i]!;
    if (dot === 0) continue;
    const f = 2 * dot;
    for (let i = k + 1; i < d; i++) z[i] = z[i]! - f * v[i]!;
  }
}

/**
 * In-place Householder reduction of the symmetric `m`: for each column k, a reflection
 * H_k = I − 2vvᵀ zeroes the entries below the subdiagonal; the trailing block becomes H·M·H,
 * computed as M − v·wᵀ − w·vᵀ with w = 2(Mv − (vᵀMv)·v). Returns the unit vectors v as rows
 * ([d × d], row k = v of column k, zero where the column needed no reflection).
 */
function tridiagonalise(m: Float64Array, d: number, diag: Float64Array, off: Float64Array): Float64Array {
  const reflectors = new Float64Array(d * d);
  const w = new Float64Array(d);
  for (let k = 0; k < d - 2; k++) {
    const v = reflectors.subarray(k * d, (k + 1) * d);
    const s = k + 1; // the reflection acts on indices s..d−1
    let norm2 = 0;
    for (let i = s; i < d; i++) norm2 += m[i * d + k]! ** 2;
    const x0 = m[s * d + k]!;
    const tail2 = norm2 - x0 * x0;
    if (tail2 <= 1e-300 * Math.max(1, norm2)) continue; // already tridiagonal in this column
    const alpha = x0 > 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    // v = x − alpha·e1, normalised; |v|² = tail2 + (x0 − alpha)²
    const v0 = x0 - alpha;
    const vn = Math.sqrt(tail2 + v0 * v0);
    v[s] = v0 / vn;
    for (let i = s + 1; i < d; i++) v[i] = m[i * d + k]! / vn;

    // p = M_sub · v (stored in w), then K = vᵀp, w = 2(p − K v)
    let K = 0;
    for (let i = s; i < d; i++) {
      let acc = 0;
      const row = i * d;
      for (let j = s; j < d; j++) acc += m[row + j]! * v[j]!;
      w[i] = acc;
      K += acc * v[i]!;
    }
    for (let i = s; i < d; i++) w[i] = 2 * (w[i]! - K * v[i]!);
    for (let i = s; i < d; i++) {
      const row = i * d;
      const vi = v[i]!;
      const wi = w[i]!;
      for (let j = s; j < d; j++) m[row + j] = m[row + j]! - vi * w[j]! - wi * v[j]!;
    }
    // column k (and row k) now hold alpha on the subdiagonal and zeros below
    m[s * d + k] = alpha;
    m[k * d + s] = alpha;
    for (let i = s + 1; i < d; i++) {
      m[i * d + k] = 0;
      m[k * d + i] = 0;
    }
  }
  for (let i = 0; i < d; i++) diag[i] = m[i * d + i]!;
  for (let i = 0; i < d - 1; i++) off[i] = m[(i + 1) * d + i]!;
  off[d - 1] = 0;
  return reflectors;
}

/**
 * Implicit QL on the tridiagonal (diag, off): repeatedly chase a shifted plane rotation down
 * the unreduced block [l, mEnd] until off[l] is negligible. Rotations are applied to the rows
 * of `zt` (starting from I, on return row i is the eigenvector of the tridiagonal for diag[i]).
 */
function implicitQL(diag: Float64Array, off: Float64Array, zt: Float64Array, d: number): void {
  const eps = Number.EPSILON;
  // An off-diagonal is negligible next to its two diagonal entries, or next to the whole matrix (d·eps·‖T‖, the size
  // of the reduction's own rounding): a rank-deficient covariance (an atlas of three points in 384 dimensions, 136
  // dead channels) leaves a block of roundoff-sized entries on which a purely relative test never converges.
  let norm = 0;
  for (let i = 0; i < d; i++) norm = Math.max(norm, Math.abs(diag[i]!) + Math.abs(off[i]!));
  const floor = d * eps * norm;
  for (let l = 0; l < d; l++) {
    for (let iter = 0; ; iter++) {
      let mEnd = l;
      while (mEnd < d - 1) {
        const dd = Math.abs(diag[mEnd]!) + Math.abs(diag[mEnd + 1]!);
        if (Math.abs(off[mEnd]!) <= eps * dd || Math.abs(off[mEnd]!) <= floor) break;
        mEnd++;
      }
      if (mEnd === l) break;
      if (iter === 60) throw new Error('symmetricEigen: QL iteration did not converge');
      // shift from the leading 2×2 block's eigenvalue closer to diag[l]
      let g = (diag[l + 1]! - diag[l]!) / (2 * off[l]!);
      let r = Math.hypot(g, 1);
      g = diag[mEnd]! - diag[l]! + off[l]! / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = mEnd - 1;
      let deflated = false;
      for (; i >= l; i--) {
        const f = s * off[i]!;
        const b = c * off[i]!;
        r = Math.hypot(f, g);
        off[i + 1] = r;
        if (r === 0) {
          // an off-diagonal underflowed: the block splits here; restart on the smaller block
          diag[i + 1] = diag[i + 1]! - p;
          off[mEnd] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = diag[i + 1]! - p;
        r = (diag[i]! - g) * s + 2 * c * b;
        p = s * r;
        diag[i + 1] = g + p;
        g = c * r - b;
        // rotate eigenvector rows i and i+1
        const ri = i * d;
        const rj = (i + 1) * d;
        for (let k = 0; k < d; k++) {
          const zj = zt[rj + k]!;
          const zi = zt[ri + k]!;
          zt[rj + k] = s * zi + c * zj;
          zt[ri + k] = c * zi - s * zj;
        }
      }
      if (deflated) continue;
      diag[l] = diag[l]! - p;
      off[l] = g;
      off[mEnd] = 0;
    }
  }
}
