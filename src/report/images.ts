/**
 * Pictures for the report as data: URIs, so report.html is one self-contained file. Every picture is
 * re-encoded by sharp (never copied through), so a URI only ever holds image/png or image/jpeg base64.
 */
import sharp from 'sharp';
import type { DataUri } from './data.js';

const uri = (mime: 'image/png' | 'image/jpeg', buf: Buffer): DataUri => `data:${mime};base64,${buf.toString('base64')}`;

/** A square, centre-cropped JPEG thumbnail (source images); null when the file cannot be read. */
export async function thumbnail(path: string, side = 64): Promise<DataUri | null> {
  try {
    return uri('image/jpeg', await sharp(path, { failOn: 'error' }).autoOrient().resize(side, side, { fit: 'cover' }).flatten({ background: '#ffffff' }).jpeg({ quality: 75 }).toBuffer());
  } catch {
    return null;
  }
}

/** A PNG (icons, atlas.png) shrunk to fit `max` px, never enlarged; null when unreadable. */
export async function pngFile(path: string, max: number): Promise<DataUri | null> {
  try {
    return uri('image/png', await sharp(path, { failOn: 'error' }).resize(max, max, { fit: 'inside', withoutEnlargement: true }).png().toBuffer());
  } catch {
    return null;
  }
}

/** Raw RGB bytes (patches, pasted examples) as PNG or JPEG, optionally shrunk to fit `max` px. */
export async function rgbUri(rgb: Uint8Array, width: number, height: number, opts: { format: 'png' | 'jpeg'; max?: number }): Promise<DataUri> {
  let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
  if (opts.max) img = img.resize(opts.max, opts.max, { fit: 'inside', withoutEnlargement: true });
  return opts.format === 'png' ? uri('image/png', await img.png().toBuffer()) : uri('image/jpeg', await img.jpeg({ quality: 85 }).toBuffer());
}

