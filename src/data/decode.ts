import { constants as fsConstants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { PatchAtlasError } from '../errors.js';
import type { DecodedImage, Preprocess } from './pixels.js';

export { DEFAULT_PREPROCESS, toFloatBatch, type DecodedImage, type Preprocess } from './pixels.js';

/** Largest side we accept, squared: 20k×20k = 400 Mpx. Beyond that libvips may need GBs for non-JPEG formats. */
export const MAX_SIDE = 20_000;
export const MAX_INPUT_PIXELS = MAX_SIDE * MAX_SIDE;
/** The largest raster decoding resizes to before its centre crop (16 Mpx = 48 MB of RGB), whatever the image's shape. */
export const MAX_RESIZED_PIXELS = 16 * 1024 * 1024;

/**
 * Background for transparent pixels. We flatten onto white rather than dropping alpha: the RGB
 * under fully transparent pixels is arbitrary (often black, sometimes leftover paint), so dropping
 * alpha would feed the model invisible content; white is what a viewer shows for a cut-out photo.
 * (This differs from PIL's `convert('RGB')`, which drops alpha.)
 */
export const ALPHA_BACKGROUND = { r: 255, g: 255, b: 255 } as const;

/**
 * Decode one image file to 8-bit sRGB RGB at the size `pre` asks for.
 * - EXIF orientation is applied first, so `sourceWidth/Height` and the crop are of the upright image.
 * - CMYK (with or without an embedded profile), greyscale (± alpha) and 16-bit inputs all come out
 *   as 3-channel 8-bit sRGB; alpha is flattened onto white.
 * - Large JPEG/WebP inputs are shrunk while decoding (libjpeg/libwebp shrink-on-load) and read
 *   sequentially, so a 10k×10k photo costs tens of MB, not the 300 MB of its full raster.
 * Every failure is PatchAtlasError BAD_IMAGE "cannot read image <path>: <reason>".
 */
export async function decodeImage(path: string, pre: Preprocess): Promise<DecodedImage> {
  checkPreprocess(pre);
  const [outH, outW] = pre.size;
  const fail = (reason: string) => new PatchAtlasError('BAD_IMAGE', `cannot read image ${path}: ${reason}`);

  // failOn 'error' (both calls) rejects truncated and corrupt data but tolerates libjpeg warnings
  // such as "extraneous bytes before marker", common in scraped photos that still decode fine.
  let meta: Metadata;
  try {
    // Header only: cheap, and lets us give a precise message for oversize images before decoding.
    meta = await sharp(path, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (e) {
    throw fail((await fileProblem(path)) ?? sharpReason(e));
  }
  const srcW = meta.autoOrient?.width ?? meta.width;
  const srcH = meta.autoOrient?.height ?? meta.height;
  if (!srcW || !srcH) throw fail('image has no dimensions');
  if (srcW * srcH > MAX_INPUT_PIXELS) {
    throw fail(`${srcW}×${srcH} pixels is over the limit of ${MAX_SIDE}×${MAX_SIDE} (${MAX_INPUT_PIXELS / 1e6} Mpx); downscale it first`);
  }

  // Resize to (rw, rh), then centre-crop in JS. We do not use sharp's post-resize extract():
  // combined with an EXIF 90° rotation it makes sharp rotate the full-size raster before
  // shrinking (measured: +350 MB and 5× slower on a 10k×10k JPEG), while the crop itself is a
  // cheap row copy.
  let rw = outW;
  let rh = outH;
  let region: { left: number; top: number; width: number; height: number } | undefined;
  if (pre.resizeShorter !== null) {
    // Shorter side to resizeShorter, but never below what the crop needs (a crop larger than the
    // resized image would otherwise fail for very wide/tall inputs or a small resizeShorter).
    const scale = Math.max(pre.resizeShorter / Math.min(srcW, srcH), outW / srcW, outH / srcH);
    rw = Math.max(outW, Math.round(srcW * scale));
    rh = Math.max(outH, Math.round(srcH * scale));
    if (rw * rh > MAX_RESIZED_PIXELS) {
      // An extreme aspect ratio (1×100000: a 275-byte PNG) would resize into gigabytes only to be cropped:
      // take the source region the crop covers instead, and resize that straight to the output.
      const width = Math.min(srcW, Math.max(1, Math.round(outW / scale)));
      const height = Math.min(srcH, Math.max(1, Math.round(outH / scale)));
      region = { left: Math.floor((srcW - width) / 2), top: Math.floor((srcH - height) / 2), width, height };
      rw = outW;
      rh = outH;
    }
  }
  let pipeline = sharp(path, { autoOrient: true, sequentialRead: true, failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS });
  if (region) pipeline = pipeline.extract(region);
  pipeline = pipeline
    .resize(rw, rh, { fit: 'fill' })
    .flatten({ background: ALPHA_BACKGROUND })
    .toColourspace('srgb')
    .raw({ depth: 'uchar' });

  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw fail((await fileProblem(path)) ?? sharpReason(e));
  }
  const { data, info } = out;
  // Guard the invariants downstream code relies on rather than trusting every libvips path.
  if (info.channels !== 3 || info.width !== rw || info.height !== rh || data.length !== rw * rh * 3) {
    throw fail(`decoder produced ${info.width}×${info.height}×${info.channels}, expected ${rw}×${rh}×3`);
  }
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    data: rw === outW && rh === outH ? pixels : centreCrop(pixels, rw, rh, outW, outH),
    height: outH,
    width: outW,
    sourceWidth: srcW,
    sourceHeight: srcH,
  };
}

/** The centred outW×outH window of an RGB HWC image (offsets rounded down, as sharp's 'centre'). */
function centreCrop(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const left = Math.floor((w - outW) / 2);
  const top = Math.floor((h - outH) / 2);
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    const from = ((top + y) * w + left) * 3;
    out.set(src.subarray(from, from + outW * 3), y * outW * 3);
  }
  return out;
}

function checkPreprocess(pre: Preprocess): void {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 16_384;
  const [h, w] = pre.size;
  if (!ok(h) || !ok(w) || (pre.resizeShorter !== null && !ok(pre.resizeShorter))) {
    throw new PatchAtlasError(
      'BAD_FLAG',
      `bad preprocessing: size ${h}×${w}, resize-shorter ${pre.resizeShorter}`,
      'sizes must be whole numbers of pixels between 1 and 16384',
    );
  }
}

/** Plainer reasons than libvips gives for an empty file or a folder. */
async function fileProblem(path: string): Promise<string | undefined> {
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory()) return 'is a folder, not an image file';
  if (st?.isFile() && st.size === 0) return 'file is empty (0 bytes)';
  // Unreadable (permissions) is not "not an image": say so. (Root, as in CI, reads everything.)
  if (st?.isFile() && !(await access(path, fsConstants.R_OK).then(() => true, () => false))) return 'permission denied: the file cannot be read';
  if (st?.isFile()) return jpegCutShort(path, st.size);
  return undefined;
}

/** A JPEG (FF D8 FF …) that does not end with its end-of-image marker (FF D9, give or take padding) was cut short. */
async function jpegCutShort(path: string, size: number): Promise<string | undefined> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const head = Buffer.alloc(3);
    await fh.read(head, 0, 3, 0);
    if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) return undefined;
    const n = Math.min(size, 64);
    const tail = Buffer.alloc(n);
    await fh.read(tail, 0, n, size - n);
    for (let i = n - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return undefined;
    return `file is truncated (a JPEG of ${size} bytes without its end-of-image marker)`;
  } finally {
    await fh.close();
  }
}

/** libvips messages are multi-line and name internal loaders; keep the first informative line. */
function sharpReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/Input file is missing/i.test(msg)) return 'file not found';
  if (/unsupported image format/i.test(msg)) return 'not an image, or a format sharp cannot read';
  if (/exceeds pixel limit/i.test(msg)) return `over the limit of ${MAX_SIDE}×${MAX_SIDE} pixels`;
  // libvips messages repeat, split a cause over lines ("Input file has corrupt header:" + the decoder's words on the
  // next), and sometimes carry only "Unknown error": say what is known, once.
  const lines = [...new Set(msg.split('\n').flatMap((l) => l.split(/:\s+(?=Vips)/)).map((l) => l.replace(/^Vips\w*:\s*/, '').replace(/:\s*$/, '').trim()).filter(Boolean))];
  const truncated = lines.find((l) => /premature end|truncated|not enough data|unexpected end/i.test(l));
  if (truncated) return `file is truncated (${truncated})`;
  const informative = lines.filter((l) => !/^unknown error$/i.test(l));
  if (informative.length === 0) return 'the decoder gave no reason: the file is probably truncated or corrupt';
  return firstLine(informative.slice(0, 2).join('; '));
}

function firstLine(msg: string): string {
  const line = msg.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown error';
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
