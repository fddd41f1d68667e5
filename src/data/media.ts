/**
 * Pictures for the report, as data: URIs, so report.html is one self-contained file. Every picture is
 * re-encoded by sharp (never copied through), so a URI only ever holds image/png or image/jpeg base64.
 * The report's building blocks get these through the `Media` interface, never from the disk themselves.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import sharp from 'sharp';
import { decodeImage } from './decode.js';
import type { DecodedImage, Preprocess } from './pixels.js';

/** A data: URI of a PNG/JPEG made here (never a user-supplied string). */
export type DataUri = string;

export interface Media {
  /** An image path as written in a file: itself when absolute and present, else the first of `bases` it is found under. */
  locate(path: string, bases: readonly string[]): string | null;
  /** A square, centre-cropped JPEG thumbnail of an image file; null when it cannot be read. */
  thumbnail(path: string, side: number): Promise<DataUri | null>;
  /** A PNG file (icons, atlas.png) shrunk to fit `max` px, never enlarged; null when absent or unreadable. */
  pngFile(path: string, max: number): Promise<DataUri | null>;
  /** Raw RGB bytes (patches, pasted examples) as PNG or JPEG, optionally shrunk to fit `max` px. */
  rgb(rgb: Uint8Array, width: number, height: number, opts: { format: 'png' | 'jpeg'; max?: number }): Promise<DataUri>;
  /** An image decoded as a model sees it; null when it cannot be read. */
  decode(path: string, pre: Preprocess): Promise<DecodedImage | null>;
  /** A file's own pixels, 8-bit RGB at its own size (a patch PNG); null when it cannot be read. */
  raw(path: string): Promise<{ data: Uint8Array; width: number; height: number } | null>;
}

const uri = (mime: 'image/png' | 'image/jpeg', buf: Buffer): DataUri => `data:${mime};base64,${buf.toString('base64')}`;

/** The media of files on this machine. */
export const diskMedia: Media = {
  locate(p, bases) {
    if (isAbsolute(p)) return existsSync(p) ? p : null;
    for (const b of bases) {
      const f = resolve(b, p);
      if (existsSync(f)) return f;
    }
    return null;
  },
  async thumbnail(path, side) {
    try {
      return uri('image/jpeg', await sharp(path, { failOn: 'error' }).autoOrient().resize(side, side, { fit: 'cover' }).flatten({ background: '#ffffff' }).jpeg({ quality: 75 }).toBuffer());
    } catch {
      return null;
    }
  },
  async pngFile(path, max) {
    if (!existsSync(path)) return null;
    try {
      return uri('image/png', await sharp(path, { failOn: 'error' }).resize(max, max, { fit: 'inside', withoutEnlargement: true }).png().toBuffer());
    } catch {
      return null;
    }
  },
  async rgb(rgb, width, height, opts) {
    let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
    if (opts.max) img = img.resize(opts.max, opts.max, { fit: 'inside', withoutEnlargement: true });
    return opts.format === 'png' ? uri('image/png', await img.png().toBuffer()) : uri('image/jpeg', await img.jpeg({ quality: 85 }).toBuffer());
  },
  decode: (path, pre) => decodeImage(path, pre).catch(() => null),
  async raw(path) {
    try {
      const { data, info } = await sharp(path, { failOn: 'error' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    } catch {
      return null;
    }
  },
};
