/**
 * IEEE-754 binary32 ⇄ binary16 conversion over typed arrays. Attributions are stored as float16
 * (1000 classes × 4 bytes per point would dominate a run's size); the conversion works on the raw
 * bits so NaN payloads and -0 survive and results do not depend on the host's float rounding.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the half nearest to float32 bits `x` (round to nearest, ties to even). */
function halfFromBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN keeps the top payload bits, forced non-zero so it stays a NaN.
    if (mant === 0) return sign | 0x7c00;
    return sign | 0x7c00 | (mant >>> 13 || 0x200);
  }
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal (or zero): value = m × 2^-24 with m = significand >> (14 - e).
    if (e < -10) return sign; // below 2^-25: rounds to ±0 (2^-25 itself ties to the even 0)
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++; // may carry into the smallest normal: correct
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // a carry into the exponent rounds up to Inf correctly
  return sign | r;
}

/** Float32 bits of half `h` (exact: every half is a float32). */
function bitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
  if (m === 0) return sign >>> 0;
  // Subnormal half → normal float: shift the leading 1 up to the implicit bit.
  const lz = Math.clz32(m) - 21; // leading zeros within the 11-bit field above bit 10
  const mm = (m << lz) & 0x3ff;
  return (sign | ((113 - lz) << 23) | (mm << 13)) >>> 0;
}

let decodeTable: Uint32Array | undefined;
/** All 65536 decodings (256 KiB), built on first use: decoding is a lookup. */
function table(): Uint32Array {
  if (!decodeTable) {
    decodeTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) decodeTable[h] = bitsFromHalf(h);
  }
  return decodeTable;
}

/** Half bits of one number. */
export function halfBits(x: number): number {
  f32[0] = x;
  return halfFromBits(u32[0]!);
}

/** The number that half bits `h` stand for. */
export function halfValue(h: number): number {
  u32[0] = table()[h & 0xffff]!;
  return f32[0]!;
}

/** Convert `src` into `dst` starting at `dstOffset`; returns `dst`. */
export function toHalfInto(src: Float32Array, dst: Uint16Array, dstOffset = 0): Uint16Array {
  if (dstOffset + src.length > dst.length) throw new RangeError(`toHalfInto: ${src.length} values do not fit at ${dstOffset} in ${dst.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[dstOffset + i] = halfFromBits(bits[i]!);
  return dst;
}

/** Decode `src` into `dst` starting at `dstOffset`; returns `dst`. */
export function fromHalfInto(src: Uint16Array, dst: Float32Array, dstOffset = 0): Float32Array {
  if (dstOffset + src.length > dst.length) throw new RangeError(`fromHalfInto: ${src.length} values do not fit at ${dstOffset} in ${dst.length}`);
  const t = table();
  // Write bits, not numbers: reading a NaN into a JS number may canonicalise its payload.
  const out = new Uint32Array(dst.buffer, dst.byteOffset + dstOffset * 4, src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return dst;
}

export function toHalf(src: Float32Array): Uint16Array {
  return toHalfInto(src, new Uint16Array(src.length));
}

export function fromHalf(src: Uint16Array): Float32Array {
  return fromHalfInto(src, new Float32Array(src.length));
}
