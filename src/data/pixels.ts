/**
 * Decoded images as plain bytes, and how they become model input. Pure: no file or codec access, so
 * the building blocks (evaluation, patch pasting) can use these types and functions.
 */

/**
 * How an image becomes model input. The default is the usual ImageNet evaluation transform:
 * resize the shorter side to 256, then centre-crop 224×224. `resizeShorter: null` resizes
 * straight to `size`, ignoring aspect ratio (for inputs that are already framed, e.g. patches).
 */
export interface Preprocess {
  size: [height: number, width: number];
  resizeShorter: number | null;
}

export const DEFAULT_PREPROCESS: Preprocess = { size: [224, 224], resizeShorter: 256 };

/** 8-bit sRGB, exactly 3 channels, row-major HWC. `source*` are the upright (EXIF-rotated) input dimensions. */
export interface DecodedImage {
  data: Uint8Array;
  height: number;
  width: number;
  sourceWidth: number;
  sourceHeight: number;
}

/**
 * Pack decoded images (all of one size) into one contiguous N×H×W×3 Float32Array in [0,1].
 * The model engine maps [0,1] to its own input range.
 */
export function toFloatBatch(images: readonly DecodedImage[], into?: Float32Array): Float32Array {
  if (images.length === 0) return new Float32Array(0);
  const { height, width } = images[0]!;
  const per = height * width * 3;
  // A caller's buffer (reused across batches, so large batches do not churn the heap), or a new one.
  const out = into && into.length >= images.length * per ? into.subarray(0, images.length * per) : new Float32Array(images.length * per);
  images.forEach((img, i) => {
    if (img.height !== height || img.width !== width || img.data.length !== per) {
      throw new Error(`toFloatBatch: image ${i} is ${img.width}×${img.height}, expected ${width}×${height}`);
    }
    const base = i * per;
    const src = img.data;
    for (let j = 0; j < per; j++) out[base + j] = UNIT[src[j]!]!;
  });
  return out;
}

// Lookup table: exact v/255 per byte, and faster than dividing 150k values per image.
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

