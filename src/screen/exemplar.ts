import type { DecodedImage } from '../data/pixels.js';

/**
 * Real-photo patches (the article chose photos that look like the bridge icon: the baseball): the crop
 * of an image at a sampled position of the atlas layer, a window centred on where that position sits in
 * the model's input, as large as the patch will be when pasted (not the position's receptive field,
 * which at MobileNet's conv_pw_11 covers almost the whole image).
 */

/** A square window of the model's input, whole pixels: rows top..top+side−1, columns left..left+side−1. */
export interface Window {
  top: number;
  left: number;
  side: number;
}

/**
 * The window of `side` px centred on layer position (y, x) of an H×W activation map, in an input of
 * h×w px: the position covers input rows [y·h/H, (y+1)·h/H), so its centre is at (y + ½)·h/H (pixel
 * edges at whole numbers); the window is shifted inside the image where it would cross an edge.
 */
export function windowAt(y: number, x: number, layer: readonly [number, number], input: readonly [number, number], side: number): Window {
  const [H, W] = layer;
  const [h, w] = input;
  if (!(Number.isInteger(side) && side >= 1 && side <= Math.min(h, w))) throw new Error(`windowAt: side ${side} does not fit a ${h}×${w} input`);
  const cy = ((y + 0.5) * h) / H;
  const cx = ((x + 0.5) * w) / W;
  const clamp = (v: number, max: number) => Math.min(max, Math.max(0, v));
  return { top: clamp(Math.round(cy - side / 2), h - side), left: clamp(Math.round(cx - side / 2), w - side), side };
}

/** The window's pixels, side×side×3 RGB bytes. */
export function cropRgb(img: Pick<DecodedImage, 'data' | 'width' | 'height'>, win: Window): Uint8Array {
  const { top, left, side } = win;
  if (top < 0 || left < 0 || top + side > img.height || left + side > img.width) throw new Error(`cropRgb: window ${side} px at ${left},${top} is outside the ${img.width}×${img.height} image`);
  const out = new Uint8Array(side * side * 3);
  for (let r = 0; r < side; r++) out.set(img.data.subarray(((top + r) * img.width + left) * 3, ((top + r) * img.width + left + side) * 3), r * side * 3);
  return out;
}

/**
 * Of the rows `candidates` of [N × C] activations, the one nearest `v` by cosine (ties: the lower row);
 * -1 when there is none (or every candidate is zero).
 */
export function nearestRow(acts: Float32Array, C: number, candidates: ArrayLike<number>, v: ArrayLike<number>): number {
  let nv = 0;
  for (let c = 0; c < C; c++) nv += v[c]! * v[c]!;
  nv = Math.sqrt(nv);
  let best = -1;
  let bestCos = -Infinity;
  for (let k = 0; k < candidates.length; k++) {
    const r = candidates[k]!;
    const off = r * C;
    let dot = 0;
    let nr = 0;
    for (let c = 0; c < C; c++) {
      dot += acts[off + c]! * v[c]!;
      nr += acts[off + c]! * acts[off + c]!;
    }
    if (!(nr > 0)) continue;
    const cos = dot / (Math.sqrt(nr) * nv || 1);
    if (cos > bestCos || (cos === bestCos && r < best)) {
      bestCos = cos;
      best = r;
    }
  }
  return best;
}

/** Mean colour of an image, as a flat side×side patch (the occlusion-only control). */
export function flatPatch(img: Pick<DecodedImage, 'data'>, side: number): Uint8Array {
  const sum = [0, 0, 0];
  const n = img.data.length / 3;
  for (let i = 0; i < img.data.length; i++) sum[i % 3]! += img.data[i]!;
  const mean = sum.map((s) => Math.round(s / n));
  const out = new Uint8Array(side * side * 3);
  for (let i = 0; i < out.length; i++) out[i] = mean[i % 3]!;
  return out;
}
