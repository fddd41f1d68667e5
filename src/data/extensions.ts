import { extname } from 'node:path';

/**
 * File extensions listed as images: what the prebuilt sharp 0.35 decodes (jpeg, png, webp, gif,
 * tiff, and AVIF through its heif loader). Not listed: BMP (no loader in sharp's libvips), HEIC
 * (the prebuilt heif loader is AVIF-only), SVG (vector art, rendered not decoded) and .v (libvips'
 * own format). A file with another extension is reported as skipped, never guessed at.
 */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.jpe',
  '.jfif',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
]);

/** True for names with an image extension, case-insensitively (ImageNet ships `.JPEG`). */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}
