import * as tf from '@tensorflow/tfjs';
import type { Placement } from './placement.js';

/**
 * Pasting a square patch onto images, pixel-exactly and opaquely, in two implementations that share
 * their geometry (`footprint`) and resampler (`resampleWeights`):
 * - `pasteRgb`: typed arrays on 8-bit RGB images, for evaluating patches (PNG files);
 * - `pasteTf`: tensors on float batches, differentiable with respect to the patch, for optimising one.
 * Placements and patch arrays are treated as immutable: footprints and resized patches are cached on
 * their identity.
 */

/** A square patch, row-major HWC RGB: bytes, or floats in [0,1]. `size` is its side in pixels. */
export interface PatchPixels {
  data: Uint8Array | Float32Array;
  size: number;
}

/** An 8-bit RGB image, row-major HWC (a DecodedImage fits). */
export interface RgbImage {
  data: Uint8Array;
  height: number;
  width: number;
}

/**
 * The pixels a placement covers on an image of height×width: the bounding box (clipped to the image)
 * and, per box pixel in row-major order, the index (row·side + column) of the resized-patch pixel
 * shown there, or -1 where the image shows through.
 */
export interface Footprint {
  x0: number;
  y0: number;
  width: number;
  height: number;
  side: number;
  src: Int32Array;
  /** Box pixels that show the patch. */
  count: number;
}

const footprints = new WeakMap<Placement, Map<string, Footprint>>();

/**
 * Which image pixels show which patch pixel. A pixel belongs to the patch iff its centre, turned back
 * by the rotation about the patch centre, falls inside the side×side square (and, when circular, within
 * side/2 of the centre); it then shows the patch pixel under that point (nearest neighbour). With no
 * rotation this is exactly the square x..x+side-1 × y..y+side-1, since every coordinate involved is a
 * whole or half number and so exact in floating point.
 */
export function footprint(p: Placement, height: number, width: number): Footprint {
  const key = `${height}x${width}`;
  const cached = footprints.get(p)?.get(key);
  if (cached) return cached;
  checkPlacement(p);
  const { x, y, side } = p;
  const r = side / 2;
  const cx = x + r;
  const cy = y + r;
  const t = (p.rotation * Math.PI) / 180;
  const cos = p.rotation === 0 ? 1 : Math.cos(t);
  const sin = p.rotation === 0 ? 0 : Math.sin(t);
  // Half-extent of the rotated square; box = pixels whose centres can fall inside, clipped to the image.
  const e = r * (Math.abs(cos) + Math.abs(sin));
  const left = Math.max(0, p.rotation === 0 ? x : Math.floor(cx - e - 0.5));
  const top = Math.max(0, p.rotation === 0 ? y : Math.floor(cy - e - 0.5));
  const right = Math.min(width, p.rotation === 0 ? x + side : Math.ceil(cx + e + 0.5));
  const bottom = Math.min(height, p.rotation === 0 ? y + side : Math.ceil(cy + e + 0.5));
  const bw = Math.max(0, right - left);
  const bh = Math.max(0, bottom - top);
  const src = new Int32Array(bw * bh).fill(-1);
  let count = 0;
  for (let row = 0; row < bh; row++) {
    const dy = top + row + 0.5 - cy;
    for (let col = 0; col < bw; col++) {
      const dx = left + col + 0.5 - cx;
      // Inverse rotation: image offset -> patch coordinates (clockwise-as-displayed forward rotation, y down).
      const u = cos * dx + sin * dy + r;
      const v = -sin * dx + cos * dy + r;
      if (!(u >= 0 && u < side && v >= 0 && v < side)) continue;
      if (p.circular && (u - r) * (u - r) + (v - r) * (v - r) > r * r) continue;
      src[row * bw + col] = Math.floor(v) * side + Math.floor(u);
      count++;
    }
  }
  const fp: Footprint = { x0: left, y0: top, width: bw, height: bh, side, src, count };
  let byImage = footprints.get(p);
  if (!byImage) footprints.set(p, (byImage = new Map()));
  byImage.set(key, fp);
  return fp;
}

/**
 * Separable resampling weights from `inSize` to `outSize` samples: a triangle (bilinear) filter with
 * half-pixel centres, widened by the scale when shrinking so every input pixel contributes (antialiased,
 * as PIL's BILINEAR). Weights are ≥ 0 and sum to 1 per output, so results stay in the input's range and
 * never ring; equal sizes give the identity. Row-major [outSize × inSize].
 */
export function resampleWeights(inSize: number, outSize: number): Float64Array {
  const key = `${inSize}>${outSize}`;
  const hit = weightCache.get(key);
  if (hit) return hit;
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support));
    const hi = Math.min(inSize, Math.ceil(centre + support));
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const wgt = Math.max(0, 1 - Math.abs(j + 0.5 - centre) / support);
      m[i * inSize + j] = wgt;
      sum += wgt;
    }
    for (let j = lo; j < hi; j++) m[i * inSize + j]! /= sum;
  }
  weightCache.set(key, m);
  return m;
}
const weightCache = new Map<string, Float64Array>();

const resized = new WeakMap<Uint8Array | Float32Array, Map<number, Uint8Array>>();

/**
 * The patch at `side`×`side` as bytes, computed once per (patch array, side). Rows first, then
 * columns, in float64; floats are scaled by 255; rounded half up.
 */
export function resizePatchRgb(patch: PatchPixels, side: number): Uint8Array {
  checkPatch(patch);
  let bySide = resized.get(patch.data);
  const hit = bySide?.get(side);
  if (hit) return hit;
  const s = patch.size;
  const scale = patch.data instanceof Uint8Array ? 1 : 255;
  let out: Uint8Array;
  if (s === side && scale === 1) {
    out = patch.data as Uint8Array;
  } else {
    const f = s === side ? Float64Array.from(patch.data) : resampleFloat(patch.data, s, side);
    out = new Uint8Array(f.length);
    for (let i = 0; i < f.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(f[i]! * scale)));
  }
  if (!bySide) resized.set(patch.data, (bySide = new Map()));
  bySide.set(side, out);
  return out;
}

/** Separable resample of an s×s×3 array to side×side×3 (float64, same weights and order as the tf path). */
function resampleFloat(data: ArrayLike<number>, s: number, side: number): Float64Array {
  const wts = resampleWeights(s, side);
  const rowPass = new Float64Array(side * s * 3);
  for (let oy = 0; oy < side; oy++) {
    for (let j = 0; j < s; j++) {
      const wgt = wts[oy * s + j]!;
      if (wgt === 0) continue;
      for (let k = 0; k < s * 3; k++) rowPass[oy * s * 3 + k]! += wgt * data[j * s * 3 + k]!;
    }
  }
  const out = new Float64Array(side * side * 3);
  for (let oy = 0; oy < side; oy++) {
    for (let ox = 0; ox < side; ox++) {
      for (let j = 0; j < s; j++) {
        const wgt = wts[ox * s + j]!;
        if (wgt === 0) continue;
        const a = (oy * s + j) * 3;
        const b = (oy * side + ox) * 3;
        out[b]! += wgt * rowPass[a]!;
        out[b + 1]! += wgt * rowPass[a + 1]!;
        out[b + 2]! += wgt * rowPass[a + 2]!;
      }
    }
  }
  return out;
}

/**
 * `image` with the patch pasted at `placement`, opaquely: footprint pixels become patch pixels, all
 * others keep their bytes. Writes into `out` when given (which may be `image.data` itself for an in-place
 * paste), else into a new array.
 */
export function pasteRgb(image: RgbImage, patch: PatchPixels, placement: Placement, out?: Uint8Array): Uint8Array {
  const { height, width } = image;
  if (image.data.length !== height * width * 3) throw new Error(`pasteRgb: image data has ${image.data.length} bytes, expected ${height}×${width}×3`);
  const dst = out ?? new Uint8Array(image.data.length);
  if (dst.length !== image.data.length) throw new Error(`pasteRgb: output has ${dst.length} bytes, expected ${image.data.length}`);
  if (dst !== image.data) dst.set(image.data);
  const fp = footprint(placement, height, width);
  const pix = resizePatchRgb(patch, placement.side);
  for (let row = 0; row < fp.height; row++) {
    const line = ((fp.y0 + row) * width + fp.x0) * 3;
    for (let col = 0; col < fp.width; col++) {
      const k = fp.src[row * fp.width + col]!;
      if (k < 0) continue;
      const d = line + col * 3;
      dst[d] = pix[k * 3]!;
      dst[d + 1] = pix[k * 3 + 1]!;
      dst[d + 2] = pix[k * 3 + 2]!;
    }
  }
  return dst;
}

/** The patch tensor [s,s,3] resampled to [side,side,3] with the same weights as `resizePatchRgb` (two matMuls, differentiable). */
export function resizePatchTf(patch: tf.Tensor3D, side: number): tf.Tensor3D {
  const [s, s2, c] = patch.shape;
  if (s !== s2 || c !== 3) throw new Error(`resizePatchTf: patch must be [s, s, 3], got [${patch.shape.join(', ')}]`);
  if (s === side) return patch;
  return tf.tidy(() => {
    const w = tf.tensor2d(Float32Array.from(resampleWeights(s, side)), [side, s]);
    // Rows: [side, s·3]; then swap axes so the same product resamples columns.
    const rows = tf.matMul(w, tf.reshape(patch, [s, s * 3])).reshape([side, s, 3]).transpose([1, 0, 2]);
    const cols = tf.matMul(w, tf.reshape(rows, [s, side * 3])).reshape([side, side, 3]);
    return cols.transpose([1, 0, 2]) as tf.Tensor3D;
  });
}

/**
 * `images` [N,H,W,3] with the patch [s,s,3] (floats in [0,1]) pasted at one placement per image
 * (or one placement for all). Opaque: each output pixel is exactly the image pixel or the resized patch
 * pixel (mask + where), so with rotation 0 and a patch already at `side` px it equals `pasteRgb` / 255
 * bit for bit. Differentiable with respect to the patch; the patch is resized once per distinct side.
 */
export function pasteTf(images: tf.Tensor4D, patch: tf.Tensor3D, placements: readonly Placement[]): tf.Tensor4D {
  const [n, height, width, ch] = images.shape;
  if (ch !== 3) throw new Error(`pasteTf: images must be [N, H, W, 3], got [${images.shape.join(', ')}]`);
  if (placements.length !== n && placements.length !== 1) {
    throw new Error(`pasteTf: ${placements.length} placements for ${n} images (give one per image, or one for all)`);
  }
  return tf.tidy(() => {
    const bySide = new Map<number, tf.Tensor2D>();
    const byPlacement = new Map<Placement, tf.Tensor3D>();
    // The mask and the canvases at the images' full shape: a broadcast in where costs a Tile per call, and on wasm
    // that Tile was 60 % of a pasting step's time (8 images at 224 px).
    const mask = new Uint8Array(n * height * width * 3);
    const each = placements.length === n ? placements : Array<Placement>(n).fill(placements[0]!);
    const canvases = each.map((p, i) => {
      const fp = footprint(p, height, width);
      for (let row = 0; row < fp.height; row++) {
        const at = ((i * height + fp.y0 + row) * width + fp.x0) * 3;
        for (let col = 0; col < fp.width; col++) {
          if (fp.src[row * fp.width + col]! >= 0) mask.fill(1, at + col * 3, at + col * 3 + 3);
        }
      }
      const seen = byPlacement.get(p);
      if (seen) return seen;
      let flat = bySide.get(p.side);
      if (!flat) bySide.set(p.side, (flat = tf.reshape(resizePatchTf(patch, p.side), [p.side * p.side, 3]) as tf.Tensor2D));
      const canvas =
        fp.count === 0
          ? (tf.zeros([height, width, 3]) as tf.Tensor3D)
          : tf.pad(sample(flat, fp), [
              [fp.y0, height - fp.y0 - fp.height],
              [fp.x0, width - fp.x0 - fp.width],
              [0, 0],
            ]);
      byPlacement.set(p, canvas);
      return canvas;
    });
    return tf.where(tf.tensor4d(mask, [n, height, width, 3], 'bool'), tf.stack(canvases), images) as tf.Tensor4D;
  });
}

/**
 * The footprint's box filled from the flattened patch [side², 3] (a gather). Its gradient is the
 * scatter-add of dy into the patch pixels, written with scatterND because tfjs differentiates gather
 * with unsortedSegmentSum, which wasm lacks, and the project's one-hot fallback would need
 * (box pixels × side²) floats: gigabytes for a rotated half-image patch.
 */
function sample(flat: tf.Tensor2D, fp: Footprint): tf.Tensor3D {
  const idx = Int32Array.from(fp.src, (k) => Math.max(k, 0));
  const dst = new Int32Array(fp.count);
  const src = new Int32Array(fp.count);
  let m = 0;
  fp.src.forEach((k, i) => {
    if (k >= 0) {
      dst[m] = i;
      src[m++] = k;
    }
  });
  // customGrad's callback type takes (Tensor | save)[]; this op has exactly one tensor input.
  const op = tf.customGrad(((x: tf.Tensor) => ({
    value: tf.gather(x, tf.tensor1d(idx, 'int32')).reshape([fp.height, fp.width, 3]) as tf.Tensor3D,
    gradFunc: (dy: tf.Tensor3D) =>
      tf.scatterND(tf.tensor2d(src, [fp.count, 1], 'int32'), tf.gather(dy.reshape([fp.width * fp.height, 3]), tf.tensor1d(dst, 'int32')), x.shape),
  })) as unknown as Parameters<typeof tf.customGrad<tf.Tensor3D>>[0]);
  return op(flat);
}

function checkPatch(patch: PatchPixels): void {
  const s = patch.size;
  if (!Number.isInteger(s) || s < 1 || patch.data.length !== s * s * 3) {
    throw new Error(`patch data has ${patch.data.length} values, expected ${s}×${s}×3 for a ${s}-px square patch`);
  }
}

function checkPlacement(p: Placement): void {
  if (!(Number.isInteger(p.x) && Number.isInteger(p.y) && Number.isInteger(p.side) && p.side >= 1 && Number.isFinite(p.rotation))) {
    throw new Error(`placement ${p.id}: x, y and side must be whole pixels (side ≥ 1) and rotation finite, got x=${p.x} y=${p.y} side=${p.side} rotation=${p.rotation}`);
  }
}
