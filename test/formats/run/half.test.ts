import { describe, expect, it } from 'vitest';
import { fromHalf, fromHalfInto, halfBits, halfValue, toHalf, toHalfInto } from '../../../src/formats/run/half.js';

const f32bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const fromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0]!;

describe('float16 known bit patterns', () => {
  const cases: Array<[number, number, string]> = [
    [0, 0x0000, 'zero'],
    [-0, 0x8000, 'negative zero'],
    [1, 0x3c00, 'one'],
    [-2, 0xc000, 'minus two'],
    [0.5, 0x3800, 'half'],
    [65504, 0x7bff, 'largest finite'],
    [65519.99, 0x7bff, 'just below the overflow threshold'],
    [65520, 0x7c00, 'overflow threshold rounds to inf (tie to even)'],
    [1e6, 0x7c00, 'overflow'],
    [-1e6, 0xfc00, 'negative overflow'],
    [Infinity, 0x7c00, 'inf'],
    [-Infinity, 0xfc00, '-inf'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [1023 * 2 ** -24, 0x03ff, 'largest subnormal'],
    [1023.5 * 2 ** -24, 0x0400, 'subnormal rounding carries into the smallest normal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal ties to even zero'],
    [1.5 * 2 ** -25, 0x0001, 'just above the tie rounds up'],
    [-(2 ** -26), 0x8000, 'underflow keeps the sign'],
    [2.5 * 2 ** -24, 0x0002, 'subnormal tie to even (down)'],
    [3.5 * 2 ** -24, 0x0004, 'subnormal tie to even (up)'],
    [1 + 2 ** -11, 0x3c00, 'normal tie to even (down)'],
    [1 + 3 * 2 ** -11, 0x3c02, 'normal tie to even (up)'],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above a tie'],
    [2049, 0x6800, '2049 → 2048'],
    [2051, 0x6802, '2051 → 2052'],
    [0.1, 0x2e66, '0.1'],
    [1 / 3, 0x3555, '1/3'],
    [-3.140625, 0xc248, 'exact -3.140625'],
  ];
  for (const [x, bits, what] of cases) {
    it(`${what}: ${x} → 0x${bits.toString(16).padStart(4, '0')}`, () => {
      expect(halfBits(x)).toBe(bits);
      expect(toHalf(new Float32Array([x]))[0]).toBe(bits);
    });
  }

  it('decodes special values', () => {
    expect(halfValue(0x3c00)).toBe(1);
    expect(Object.is(halfValue(0x8000), -0)).toBe(true);
    expect(halfValue(0x7c00)).toBe(Infinity);
    expect(halfValue(0xfc00)).toBe(-Infinity);
    expect(halfValue(0x0001)).toBe(2 ** -24);
    expect(halfValue(0x7bff)).toBe(65504);
    expect(Number.isNaN(halfValue(0x7e00))).toBe(true);
  });

  it('keeps NaN a NaN, with its sign and top payload bits', () => {
    expect(halfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(halfBits(NaN) & 0x3ff).not.toBe(0);
    // A float NaN whose payload lies only in the low 13 bits must not turn into Inf.
    const lowPayload = new Float32Array(new Uint32Array([0xff800001]).buffer);
    expect(toHalf(lowPayload)[0]).toBe(0xfe00);
    const payload = new Float32Array(new Uint32Array([0x7f802000]).buffer);
    expect(toHalf(payload)[0]).toBe(0x7c01);
  });
});

describe('float16 exhaustive', () => {
  it('all 65536 halves decode to the right value and round-trip bit-exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = fromHalf(all);
    for (let h = 0; h < 65536; h++) {
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const sign = h & 0x8000 ? -1 : 1;
      const v = f[h]!;
      if (e === 31) {
        if (m === 0) expect(v).toBe(sign * Infinity);
        else expect(Number.isNaN(v)).toBe(true);
      } else {
        const want = e === 0 ? sign * m * 2 ** -24 : sign * 2 ** (e - 15) * (1 + m / 1024);
        if (v !== want || Object.is(v, -0) !== Object.is(want, -0)) throw new Error(`half 0x${h.toString(16)} decoded to ${v}, want ${want}`);
      }
    }
    const back = toHalf(f);
    for (let h = 0; h < 65536; h++) if (back[h] !== h) throw new Error(`half 0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  });

  it('matches a brute-force nearest-even rounding on 200k random floats', () => {
    // Positive finite halves 0x0000..0x7bff increase in value, so the nearest one is a binary search away.
    const vals = fromHalf(new Uint16Array(0x7c00).map((_, i) => i));
    const reference = (x: number): number => {
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      const a = Math.abs(x);
      if (a >= 65520) return sign | 0x7c00;
      let lo = 0;
      let hi = 0x7bff;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (vals[mid]! <= a) lo = mid;
        else hi = mid;
      }
      if (a >= vals[hi]!) return sign | hi;
      const dl = a - vals[lo]!;
      const dh = vals[hi]! - a;
      return sign | (dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi);
    };
    const n = 200_000;
    const bits = new Uint32Array(n);
    let seed = 12345;
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      // Exponents concentrated around the half range so rounding, subnormals and overflow all get hit.
      const exp = 97 + (seed % 48);
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      bits[i] = ((seed & 0x80000000) | (exp << 23) | (seed & 0x7fffff)) >>> 0;
    }
    const xs = new Float32Array(bits.buffer);
    const got = toHalf(xs);
    for (let i = 0; i < n; i++) {
      const want = reference(xs[i]!);
      if (got[i] !== want) throw new Error(`${xs[i]} (0x${f32bits(xs[i]!).toString(16)}) → 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
    }
  });
});

describe('in-place variants', () => {
  it('write at an offset into a provided buffer and leave the rest alone', () => {
    const dst = new Uint16Array(6).fill(0xabcd);
    toHalfInto(new Float32Array([1, -2, 0.5]), dst, 2);
    expect([...dst]).toEqual([0xabcd, 0xabcd, 0x3c00, 0xc000, 0x3800, 0xabcd]);
    const out = new Float32Array(5).fill(9);
    fromHalfInto(new Uint16Array([0x3c00, 0xc000]), out, 3);
    expect([...out]).toEqual([9, 9, 9, 1, -2]);
    expect(() => toHalfInto(new Float32Array(3), new Uint16Array(3), 1)).toThrow(RangeError);
  });

  it('works on subarray views (non-zero byteOffset)', () => {
    const base = new Float32Array([7, 1, 2, 3]);
    expect([...toHalf(base.subarray(1))]).toEqual([0x3c00, 0x4000, 0x4200]);
    const h = new Uint16Array([0, 0x3c00, 0x4000]);
    expect([...fromHalf(h.subarray(1))]).toEqual([1, 2]);
    expect(fromBits(f32bits(1))).toBe(1);
  });
});
