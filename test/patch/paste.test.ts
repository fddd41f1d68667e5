import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { footprint, pasteRgb, pasteTf, resampleWeights, resizePatchRgb, type RgbImage } from '../../src/patch/paste.js';
import { gridPlacements, type Placement } from '../../src/patch/placement.js';
import { mulberry32 } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const H = 23;
const W = 31; // odd and non-square, so centre offsets and shorter-side sizing are exercised

function bytes(n: number, seed: number, min = 0): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => min + Math.floor(r() * (256 - min)));
}
const image = (seed: number): RgbImage => ({ data: bytes(H * W * 3, seed), height: H, width: W });
const px = (d: Uint8Array, w: number, x: number, y: number) => Array.from(d.subarray((y * w + x) * 3, (y * w + x) * 3 + 3));
const unit = (b: Uint8Array) => Float32Array.from(b, (v) => v / 255);
const place = (over: Partial<Placement>): Placement => ({ id: 'p', kind: 'random', size: 0, x: 0, y: 0, side: 1, rotation: 0, circular: false, ...over });

/** Odd sizes on purpose: sides 5, 7, 12 and the full 23 rows. */
const SIZES = [0.2, 0.3, 0.5, 1];
const grid = (circular: boolean) => gridPlacements([H, W], SIZES, undefined, { circular });

describe('pasteRgb', () => {
  it('puts each patch pixel exactly where asked and leaves every other pixel alone (corners, centre, odd sizes)', () => {
    const img = image(1);
    for (const p of grid(false)) {
      const patch = { data: bytes(p.side * p.side * 3, p.side), size: p.side };
      const out = pasteRgb(img, patch, p);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const inside = x >= p.x && x < p.x + p.side && y >= p.y && y < p.y + p.side;
          const want = inside ? px(patch.data, p.side, x - p.x, y - p.y) : px(img.data, W, x, y);
          if (px(out, W, x, y).join() !== want.join()) throw new Error(`${p.id}: pixel ${x},${y} is ${px(out, W, x, y)}, want ${want}`);
        }
      }
    }
    expect(img.data).toEqual(image(1).data); // the input is not modified
  });

  it('with a circular mask, covers exactly the pixels whose centres are within side/2 of the patch centre', () => {
    const img = image(2);
    for (const p of grid(true)) {
      const patch = { data: bytes(p.side * p.side * 3, 100 + p.side), size: p.side };
      const out = pasteRgb(img, patch, p);
      const r = p.side / 2;
      let covered = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const inside = (x + 0.5 - (p.x + r)) ** 2 + (y + 0.5 - (p.y + r)) ** 2 <= r * r;
          covered += inside ? 1 : 0;
          const want = inside ? px(patch.data, p.side, x - p.x, y - p.y) : px(img.data, W, x, y);
          if (px(out, W, x, y).join() !== want.join()) throw new Error(`${p.id}: pixel ${x},${y}`);
        }
      }
      expect(footprint(p, H, W).count).toBe(covered);
      expect(covered).toBeLessThan(p.side * p.side + 1);
    }
  });

  it('resizes the patch to the placement side (once, cached) and pastes those pixels', () => {
    const img = image(3);
    const patch = { data: bytes(10 * 10 * 3, 9), size: 10 };
    const p = place({ x: 4, y: 3, side: 7 });
    const small = resizePatchRgb(patch, 7);
    expect(resizePatchRgb(patch, 7)).toBe(small);
    expect(small.length).toBe(7 * 7 * 3);
    const out = pasteRgb(img, patch, p);
    for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) expect(px(out, W, x + 4, y + 3)).toEqual(px(small, 7, x, y));
    // A float patch gives the same bytes as its 8-bit original when no resampling is needed.
    expect(resizePatchRgb({ data: unit(patch.data), size: 10 }, 10)).toEqual(patch.data);
  });

  it('resamples with non-negative weights that sum to 1: identity at equal sizes, constants stay constant', () => {
    for (const [a, b] of [[10, 7], [7, 10], [224, 45], [3, 3]] as const) {
      const m = resampleWeights(a, b);
      for (let i = 0; i < b; i++) {
        let sum = 0;
        for (let j = 0; j < a; j++) {
          expect(m[i * a + j]).toBeGreaterThanOrEqual(0);
          sum += m[i * a + j]!;
        }
        expect(sum).toBeCloseTo(1, 12);
      }
    }
    expect(Array.from(resampleWeights(3, 3))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const flat = { data: new Uint8Array(9 * 9 * 3).fill(137), size: 9 };
    expect(resizePatchRgb(flat, 20).every((v) => v === 137)).toBe(true);
    expect(resizePatchRgb(flat, 4).every((v) => v === 137)).toBe(true);
  });

  it('pastes in place when out is the image, and clips a hand-made placement that hangs off the edge', () => {
    const img = image(4);
    const copy = img.data.slice();
    const patch = { data: new Uint8Array(6 * 6 * 3).fill(9), size: 6 };
    pasteRgb(img, patch, place({ x: W - 3, y: -2, side: 6 }), img.data);
    let changed = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inside = x >= W - 3 && y < 4;
        if (inside) expect(px(img.data, W, x, y)).toEqual([9, 9, 9]);
        else expect(px(img.data, W, x, y)).toEqual(px(copy, W, x, y));
        changed += inside ? 1 : 0;
      }
    }
    expect(changed).toBe(12);
  });

  it('keeps a rotated patch within its rotated footprint, clockwise as displayed', () => {
    const blank: RgbImage = { data: new Uint8Array(64 * 64 * 3), height: 64, width: 64 };
    const side = 21;
    const patch = { data: bytes(side * side * 3, 5, 1), size: side }; // never 0, so "changed" = "covered"
    for (const rotation of [0, 17, 30, 45, -60, 90]) {
      const p = place({ x: 20, y: 18, side, rotation });
      const out = pasteRgb(blank, patch, p);
      const t = (rotation * Math.PI) / 180;
      const [cx, cy, r] = [20 + side / 2, 18 + side / 2, side / 2];
      let changed = 0;
      for (let y = 0; y < 64; y++) {
        for (let x = 0; x < 64; x++) {
          const dx = x + 0.5 - cx;
          const dy = y + 0.5 - cy;
          // Offsets along the rotated patch's own axes.
          const a = Math.abs(Math.cos(t) * dx + Math.sin(t) * dy);
          const b = Math.abs(-Math.sin(t) * dx + Math.cos(t) * dy);
          const isChanged = px(out, 64, x, y).some((v) => v !== 0);
          changed += isChanged ? 1 : 0;
          if (isChanged) expect(Math.max(a, b)).toBeLessThanOrEqual(r + 1e-9);
          else expect(Math.max(a, b)).toBeGreaterThan(r - 1e-9);
        }
      }
      // Nearest-neighbour rotation keeps about side² pixels (exactly, unrotated).
      if (rotation === 0) expect(changed).toBe(side * side);
      else expect(Math.abs(changed - side * side)).toBeLessThan(2 * side);
      if (rotation === 90) {
        // Patch row i, column j lands at column x + side-1-i, row y + j.
        for (const [i, j] of [[0, 0], [0, 20], [20, 0], [7, 13]] as const) expect(px(out, 64, 20 + side - 1 - i, 18 + j)).toEqual(px(patch.data, side, j, i));
      }
    }
  });
});

describe('pasteTf', () => {
  /** Batch of the test images as [0,1] floats, one image per placement. */
  const batch = (n: number, seed: number) => Array.from({ length: n }, (_, i) => image(seed + i));
  const toTensor = (imgs: RgbImage[]) => tf.tensor4d(unit(Uint8Array.from(imgs.flatMap((m) => Array.from(m.data)))), [imgs.length, H, W, 3]);

  it('equals pasteRgb / 255 bit for bit at rotation 0, with and without a circular mask, one placement per image', () => {
    for (const circular of [false, true]) {
      const ps = grid(circular);
      for (const size of SIZES) {
        const group = ps.filter((p) => p.size === size); // one side per group, so one patch tensor
        const side = group[0]!.side;
        const patch = { data: bytes(15 * 15 * 3, 11), size: 15 };
        const imgs = batch(group.length, 20);
        const x = toTensor(imgs);
        // The tf path gets the patch already at `side` (the cached 8-bit resize), so only geometry is compared.
        const pt = tf.tensor3d(unit(resizePatchRgb(patch, side)), [side, side, 3]);
        const got = pasteTf(x, pt, group);
        const want = unit(Uint8Array.from(group.flatMap((p, i) => Array.from(pasteRgb(imgs[i]!, patch, p)))));
        const data = got.dataSync();
        let mismatches = 0;
        for (let k = 0; k < want.length; k++) if (data[k] !== want[k]) mismatches++;
        expect(mismatches, `circular=${circular} size=${size}`).toBe(0);
        tf.dispose([x, pt, got]);
      }
    }
  });

  it('matches pasteRgb to 8-bit rounding when it resizes the patch itself, and is exact outside the patch', () => {
    const patch = { data: bytes(10 * 10 * 3, 12), size: 10 };
    const ps = [place({ id: 'a', x: 0, y: 0, side: 7 }), place({ id: 'b', x: 17, y: 9, side: 13, circular: true }), place({ id: 'c', x: 5, y: 2, side: 10, rotation: 25 })];
    const imgs = batch(3, 30);
    const x = toTensor(imgs);
    const pt = tf.tensor3d(unit(patch.data), [10, 10, 3]);
    const got = pasteTf(x, pt, ps).dataSync();
    ps.forEach((p, i) => {
      const want = unit(pasteRgb(imgs[i]!, patch, p));
      const fp = footprint(p, H, W);
      const inPatch = new Uint8Array(H * W);
      fp.src.forEach((k, j) => {
        if (k >= 0) inPatch[(fp.y0 + Math.floor(j / fp.width)) * W + fp.x0 + (j % fp.width)] = 1;
      });
      for (let k = 0; k < H * W * 3; k++) {
        const g = got[i * H * W * 3 + k]!;
        if (inPatch[Math.floor(k / 3)]) expect(Math.abs(g - want[k]!)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
        else expect(g).toBe(want[k]);
      }
    });
    tf.dispose([x, pt]);
  });

  it('broadcasts one placement over the batch and leaks no tensors', () => {
    const imgs = batch(3, 40);
    const x = toTensor(imgs);
    const pt = tf.tensor3d(unit(bytes(8 * 8 * 3, 13)), [8, 8, 3]);
    const p = place({ x: 3, y: 4, side: 8, circular: true });
    const before = tf.memory().numTensors;
    const got = pasteTf(x, pt, [p]);
    expect(tf.memory().numTensors).toBe(before + 1);
    const want = unit(Uint8Array.from(imgs.flatMap((m) => Array.from(pasteRgb(m, { data: bytes(8 * 8 * 3, 13), size: 8 }, p)))));
    expect(Array.from(got.dataSync())).toEqual(Array.from(want));
    expect(() => pasteTf(x, pt, [p, p])).toThrow(/2 placements for 3 images/);
    tf.dispose([x, pt, got]);
  });

  it('is differentiable w.r.t. the patch: the gradient is the scatter-add of dy over the footprint (rotated, resized)', () => {
    const imgs = batch(2, 50);
    const x = toTensor(imgs);
    const weights = tf.randomNormal([2, H, W, 3], 0, 1, 'float32', 3);
    const ps = [place({ id: 'r', x: 6, y: 4, side: 12, rotation: 33 }), place({ id: 'c', x: 15, y: 8, side: 12, circular: true })];
    const loss = (pt: tf.Tensor) => tf.sum(tf.mul(pasteTf(x, pt as tf.Tensor3D, ps), weights));

    // Patch at the placement side: the gradient is exactly Σ over covered pixels of the weight there.
    const p12 = tf.tensor3d(unit(bytes(12 * 12 * 3, 14)), [12, 12, 3]);
    const g = tf.grad(loss)(p12).dataSync();
    const wd = weights.dataSync();
    const want = new Float64Array(12 * 12 * 3);
    ps.forEach((p, i) => {
      const fp = footprint(p, H, W);
      fp.src.forEach((k, j) => {
        if (k < 0) return;
        const pix = (fp.y0 + Math.floor(j / fp.width)) * W + fp.x0 + (j % fp.width);
        for (let c = 0; c < 3; c++) want[k * 3 + c]! += wd[(i * H * W + pix) * 3 + c]!;
      });
    });
    // Rotation maps some patch pixels to two image pixels: the scatter must add them up.
    const footprintSrc = footprint(ps[0]!, H, W).src.filter((k) => k >= 0);
    expect(new Set(footprintSrc).size).toBeLessThan(footprintSrc.length);
    for (let k = 0; k < want.length; k++) expect(g[k]).toBeCloseTo(want[k]!, 4);

    // Patch resized inside: the loss is linear in the patch, so loss(P + D) − loss(P) = ⟨grad, D⟩.
    const p9 = tf.tensor3d(unit(bytes(9 * 9 * 3, 15)), [9, 9, 3]);
    const d = tf.randomUniform([9, 9, 3], -1, 1, 'float32', 4);
    const g9 = tf.grad(loss)(p9);
    const lhs = tf.tidy(() => loss(tf.add(p9, d)).dataSync()[0]! - loss(p9).dataSync()[0]!);
    const rhs = tf.tidy(() => tf.sum(tf.mul(g9, d)).dataSync()[0]!);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-3 * Math.max(1, Math.abs(rhs)));
    expect(Math.abs(rhs)).toBeGreaterThan(1e-2);
    tf.dispose([x, weights, p12, p9, d, g9]);
  });
});
