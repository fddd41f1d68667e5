import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../config.js';
import { PatchAtlasError } from '../errors.js';
import { readLabelFile } from '../formats/labels.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { packageRoot } from '../util/paths.js';
import { mapLimit } from '../util/concurrency.js';

/** The public ImageNet sample (one image per class): https://github.com/EliSchwartz/imagenet-sample-images */
export const SAMPLE_URL = 'https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master/';
/** Written last, when every file is there. Dot-named, so datasets never list it. */
export const SAMPLE_MARKER = '.complete';

/**
 * File names of the sample: `<wnid>_<short name>.JPEG` in class-index order, short names as in
 * models/labels/imagenet-1000.json (spaces as underscores), e.g. n01484850_great_white_shark.JPEG.
 */
export function sampleFileNames(): string[] {
  const file = join(packageRoot(), 'models', 'labels', 'imagenet-1000.json');
  return readLabelFile(file).classes.map(([wnid, name]) => `${wnid}_${name.replace(/ /g, '_')}.JPEG`);
}

/** PATCH_ATLAS_SAMPLE_URL (a mirror, or a local server in tests) or the public repository; always ends in '/'. */
export function sampleBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.PATCH_ATLAS_SAMPLE_URL?.trim() || SAMPLE_URL;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new PatchAtlasError('BAD_CONFIG', `PATCH_ATLAS_SAMPLE_URL "${v}" is not a URL`, `unset it to use ${SAMPLE_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PatchAtlasError('BAD_CONFIG', `PATCH_ATLAS_SAMPLE_URL "${v}" is not an http(s) URL`, `unset it to use ${SAMPLE_URL}`);
  return url.href.endsWith('/') ? url.href : `${url.href}/`;
}

export interface DownloadOptions {
  dest: string;
  baseUrl: string;
  files: readonly string[];
  /** Downloads in flight (default 8). */
  concurrency?: number;
  /** Tries per file for network errors and HTTP 5xx/429 (default 3). */
  attempts?: number;
  /** Per request (default 60 s). */
  timeoutMs?: number;
  /** Files present so far (kept, downloaded or failed) of the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface DownloadResult {
  dest: string;
  downloaded: number;
  /** Already there from an earlier (interrupted) download. */
  kept: number;
}

/**
 * Download `files` from `baseUrl` into `dest`: each file written atomically (a crash never leaves a
 * partial JPEG under its real name), files already there kept (so a re-run resumes), a bounded number
 * in flight, and the marker written only when all of them are present. Failures do not stop the
 * others (what arrived is kept); they end in one DOWNLOAD_FAILED line. If the first attempts all fail,
 * the server is taken to be unreachable and the rest are not tried.
 */
export async function downloadFiles(opts: DownloadOptions): Promise<DownloadResult> {
  const { dest, baseUrl, files } = opts;
  const total = files.length;
  await mkdir(dest, { recursive: true });
  await rm(join(dest, SAMPLE_MARKER), { force: true });
  const have = new Set<string>();
  for (const f of await readdir(dest)) {
    if (f.endsWith('.tmp')) await rm(join(dest, f), { force: true }); // left by a killed run
    else have.add(f);
  }
  const todo = files.filter((f) => !have.has(f));
  const kept = total - todo.length;
  let done = kept;
  let ok = 0;
  const failed: Array<{ file: string; reason: string }> = [];
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  opts.onProgress?.(done, total);
  let unreachable = false;
  await mapLimit(todo, concurrency, async (file) => {
    if (unreachable) return;
    const url = new URL(encodeURIComponent(file), baseUrl).href;
    try {
      await writeFileAtomic(join(dest, file), await fetchJpeg(url, opts.attempts ?? 3, opts.timeoutMs ?? 60_000));
      ok++;
    } catch (e) {
      failed.push({ file, reason: (e as Error).message.split('\n')[0]! });
      // Nothing has worked yet and a whole round of requests failed: stop rather than try them all.
      if (ok === 0 && failed.length >= Math.min(concurrency, todo.length)) unreachable = true;
    }
    opts.onProgress?.(++done, total);
  });
  if (failed.length || unreachable) {
    const first = failed[0]!;
    const what = unreachable && ok === 0 ? `cannot download the sample images from ${baseUrl}` : `${total - kept - ok} of ${total} sample images could not be downloaded from ${baseUrl}`;
    throw new PatchAtlasError('DOWNLOAD_FAILED', `${what} (${first.file}: ${first.reason})`, `re-run to resume (${kept + ok} files are kept in ${dest}), or set PATCH_ATLAS_DATA to a folder holding imagenet-sample/`);
  }
  await writeJsonAtomic(join(dest, SAMPLE_MARKER), { url: baseUrl, files: total, finished: new Date().toISOString() });
  return { dest, downloaded: ok, kept };
}

/** Whether `dest` holds a finished download of exactly `files`. */
export async function isComplete(dest: string, files: readonly string[]): Promise<boolean> {
  const marker = await readFile(join(dest, SAMPLE_MARKER), 'utf8').catch(() => null);
  if (marker === null) return false;
  const have = new Set(await readdir(dest));
  return files.every((f) => have.has(f));
}

const RETRY = new Set([429, 500, 502, 503, 504]);

async function fetchJpeg(url: string, attempts: number, timeoutMs: number): Promise<Uint8Array> {
  for (let a = 1; ; a++) {
    let retry: boolean;
    let reason: string;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.ok) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        // A proxy or a wrong base URL can answer 200 with an HTML page: only JPEG bytes are kept.
        if (bytes.length < 3 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) throw new Error(`not a JPEG (${bytes.length} bytes of ${res.headers.get('content-type') ?? 'unknown type'})`);
        // A JPEG ends with its EOI marker (FF D9), give or take a little padding: without it the file was cut
        // short, and keeping it would mark the download done with a broken image in it.
        if (!endsWithEoi(bytes)) throw new Error(`truncated JPEG (${bytes.length} bytes, no end-of-image marker)`);
        return bytes;
      }
      retry = RETRY.has(res.status);
      reason = `HTTP ${res.status}`;
    } catch (e) {
      if ((e as Error).message.startsWith('not a JPEG')) throw e;
      if ((e as Error).message.startsWith('truncated JPEG')) {
        retry = true;
        reason = (e as Error).message;
        if (a >= attempts) throw new Error(reason);
        await new Promise((r) => setTimeout(r, 250 * a));
        continue;
      }
      const err = e as Error & { cause?: { code?: string; message?: string } };
      retry = true;
      reason = err.name === 'TimeoutError' ? `no answer in ${timeoutMs / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
    }
    if (!retry || a >= attempts) throw new Error(reason);
    await new Promise((r) => setTimeout(r, 250 * a));
  }
}

function endsWithEoi(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 2; i >= Math.max(2, bytes.length - 64); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
  return false;
}

export interface SampleImages {
  dir: string;
  /** data: $PATCH_ATLAS_DATA/imagenet-sample; cache: an earlier download; download: fetched now. */
  source: 'data' | 'cache' | 'download';
}

/**
 * The ImageNet sample images: `$PATCH_ATLAS_DATA/imagenet-sample` when present (read only), else the
 * download cache (`$PATCH_ATLAS_CACHE/data/imagenet-sample`), downloading (or finishing) it first.
 */
export async function sampleImages(env: Env, opts: { offline?: boolean; processEnv?: NodeJS.ProcessEnv; onStart?: (url: string, dest: string, missing: number) => void; onProgress?: (done: number, total: number) => void } = {}): Promise<SampleImages> {
  if (env.dataDir && existsSync(join(env.dataDir, 'imagenet-sample'))) return { dir: join(env.dataDir, 'imagenet-sample'), source: 'data' };
  const dest = join(env.cacheDir, 'data', 'imagenet-sample');
  const files = sampleFileNames();
  if (existsSync(dest) && (await isComplete(dest, files))) return { dir: dest, source: 'cache' };
  if (opts.offline) {
    throw new PatchAtlasError('REAL_DATA_MISSING', `no ImageNet sample images (looked in ${env.dataDir ? `${join(env.dataDir, 'imagenet-sample')} and ` : ''}${dest})`, 'set PATCH_ATLAS_DATA to a folder holding imagenet-sample/, or drop --offline to download them (about 110 MB)');
  }
  const baseUrl = sampleBaseUrl(opts.processEnv);
  const present = existsSync(dest) ? new Set(await readdir(dest)) : new Set<string>();
  opts.onStart?.(baseUrl, dest, files.filter((f) => !present.has(f)).length);
  await downloadFiles({ dest, baseUrl, files, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  return { dir: dest, source: 'download' };
}
