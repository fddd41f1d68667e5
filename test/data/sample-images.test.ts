import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readEnv } from '../../src/config.js';
import { articlePhotoPatches } from '../../src/pipeline/demo.js';
import { downloadFiles, isComplete, SAMPLE_MARKER, SAMPLE_URL, sampleBaseUrl, sampleFileNames, sampleImages } from '../../src/data/sample-images.js';
import { runCli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'pa-demo-download-'));

/** A local stand-in for raw.githubusercontent.com: any requested name gets a small JPEG, except names told to fail. */
class SampleServer {
  readonly requests: string[] = [];
  /** name → HTTP status to answer instead of the image. */
  readonly fail = new Map<string, number>();
  private server!: Server;
  private jpeg!: Buffer;
  url = '';

  async start(): Promise<void> {
    this.jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 90, b: 40 } } }).jpeg().toBuffer();
    this.server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').slice(1));
      this.requests.push(name);
      const status = this.fail.get(name);
      if (status) {
        res.writeHead(status, { 'content-type': 'text/plain' }).end('nope');
        return;
      }
      if (name === 'cut-short.JPEG') {
        // A JPEG's first half, with a Content-Length that matches what is sent: only the missing EOI marker tells.
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end(this.jpeg.subarray(0, Math.floor(this.jpeg.length / 2)));
        return;
      }
      if (name === 'html-page.JPEG') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>rate limited</html>');
        return;
      }
      res.writeHead(200, { 'content-type': 'image/jpeg' }).end(this.jpeg);
    });
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  stop(): Promise<void> {
    return new Promise((ok) => this.server.close(() => ok()));
  }
}

const server = new SampleServer();
beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  server.requests.length = 0;
  server.fail.clear();
  vi.unstubAllEnvs();
});

const oneLine = (e: unknown) => {
  const m = (e as Error).message;
  expect(m).not.toContain('\n');
  return m;
};

describe('ImageNet sample names', () => {
  it('are <wnid>_<short name>.JPEG in class order, as in the public repository', () => {
    const names = sampleFileNames();
    expect(names).toHaveLength(1000);
    expect(new Set(names).size).toBe(1000);
    expect(names[0]).toBe('n01440764_tench.JPEG');
    expect(names).toContain('n01484850_great_white_shark.JPEG');
    expect(names).toContain('n02066245_grey_whale.JPEG');
    expect(names.filter((n) => /_jack-o'-lantern\.JPEG$/.test(n))).toHaveLength(1);
    const shared = join(readEnv().dataDir ?? join(process.cwd(), '..', 'shared', 'data'), 'imagenet-sample');
    if (existsSync(shared)) expect([...names].sort()).toEqual(readdirSync(shared).filter((f) => !f.startsWith('.')).sort());
  });

  it('come from PATCH_ATLAS_SAMPLE_URL when set, else the public repository; a bad value is one line', () => {
    expect(sampleBaseUrl({})).toBe(SAMPLE_URL);
    expect(sampleBaseUrl({ PATCH_ATLAS_SAMPLE_URL: 'http://127.0.0.1:9/mirror' })).toBe('http://127.0.0.1:9/mirror/');
    expect(() => sampleBaseUrl({ PATCH_ATLAS_SAMPLE_URL: 'not a url' })).toThrow(/PATCH_ATLAS_SAMPLE_URL "not a url" is not a URL/);
    expect(() => sampleBaseUrl({ PATCH_ATLAS_SAMPLE_URL: 'ftp://example.org/' })).toThrow(/not an http\(s\) URL/);
  });
});

describe('downloadFiles', () => {
  const files = ['n01_a.JPEG', 'n02_b.JPEG', "n03_c's.JPEG", 'n04_d.JPEG', 'n05_e.JPEG', 'n06_f.JPEG'];

  it('keeps what arrived when a file fails, writes no marker, and a re-run fetches only the rest', async () => {
    const dest = join(root, 'partial');
    server.fail.set("n03_c's.JPEG", 404).set('n05_e.JPEG', 503);
    const err = await downloadFiles({ dest, baseUrl: server.url, files, concurrency: 2, attempts: 2 }).catch((e: unknown) => e);
    expect(oneLine(err)).toMatch(/^2 of 6 sample images could not be downloaded from http:\/\/127\.0\.0\.1:\d+\/ \(.*HTTP (404|503)\); re-run to resume \(4 files are kept in /);
    expect(server.requests.filter((r) => r === 'n05_e.JPEG')).toHaveLength(2); // 503 is retried, 404 is not
    expect(server.requests.filter((r) => r === "n03_c's.JPEG")).toHaveLength(1);
    expect(readdirSync(dest).sort()).toEqual(['n01_a.JPEG', 'n02_b.JPEG', 'n04_d.JPEG', 'n06_f.JPEG']);
    expect(await isComplete(dest, files)).toBe(false);

    // A write killed half-way leaves only a temporary file, which the next run removes.
    writeFileSync(join(dest, 'n05_e.JPEG.123.abcd.tmp'), 'partial');
    server.requests.length = 0;
    server.fail.clear();
    const progress: number[] = [];
    const r = await downloadFiles({ dest, baseUrl: server.url, files, concurrency: 2, onProgress: (d) => progress.push(d) });
    expect(r).toMatchObject({ downloaded: 2, kept: 4 });
    expect(server.requests.sort()).toEqual(["n03_c's.JPEG", 'n05_e.JPEG']);
    expect(progress).toEqual([4, 5, 6]);
    expect(readdirSync(dest).sort()).toEqual([SAMPLE_MARKER, ...files].sort());
    expect(JSON.parse(readFileSync(join(dest, SAMPLE_MARKER), 'utf8'))).toMatchObject({ files: 6, url: server.url });
    expect(await isComplete(dest, files)).toBe(true);
    const decoded = await sharp(join(dest, "n03_c's.JPEG")).metadata();
    expect(decoded.format).toBe('jpeg');
  });

  it('refuses a 200 answer that is not a JPEG', async () => {
    const err = await downloadFiles({ dest: join(root, 'html'), baseUrl: server.url, files: ['html-page.JPEG'] }).catch((e: unknown) => e);
    expect(oneLine(err)).toMatch(/html-page\.JPEG: not a JPEG \(25 bytes of text\/html\)/);
    expect(existsSync(join(root, 'html', 'html-page.JPEG'))).toBe(false);
  });

  it('does not keep a truncated JPEG, and never marks the download complete with one', async () => {
    const dest = join(root, 'cut');
    const err = await downloadFiles({ dest, baseUrl: server.url, files: ['cut-short.JPEG', 'n01_a.JPEG'] }).catch((e: unknown) => e);
    expect(oneLine(err)).toMatch(/cut-short\.JPEG: truncated JPEG \(\d+ bytes, no end-of-image marker\)/);
    expect(existsSync(join(dest, 'cut-short.JPEG'))).toBe(false);
    expect(await isComplete(dest, ['cut-short.JPEG', 'n01_a.JPEG'])).toBe(false);
  });

  it('gives up early, in one line, when nothing can be reached', async () => {
    const dead = new SampleServer();
    await dead.start();
    const url = dead.url;
    await dead.stop();
    const t = Date.now();
    const err = await downloadFiles({ dest: join(root, 'dead'), baseUrl: url, files: Array.from({ length: 50 }, (_, i) => `n${i}_x.JPEG`), concurrency: 4, attempts: 1 }).catch((e: unknown) => e);
    expect(oneLine(err)).toMatch(new RegExp(`^cannot download the sample images from ${url.replace(/[.]/g, '\\.')} \\(n0_x\\.JPEG: ECONNREFUSED\\); re-run to resume`));
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(readdirSync(join(root, 'dead'))).toEqual([]);
  });
});

describe('sampleImages (what demo uses)', () => {
  it('downloads all 1000 into the cache, resumes after a failure, then reuses the cache', async () => {
    const env = { ...readEnv({}), dataDir: undefined, cacheDir: join(root, 'cache') };
    const names = sampleFileNames();
    server.fail.set(names[10]!, 404).set(names[999]!, 404);
    const processEnv = { PATCH_ATLAS_SAMPLE_URL: server.url };
    await expect(sampleImages(env, { processEnv })).rejects.toThrow(/^2 of 1000 sample images could not be downloaded/);
    const dest = join(env.cacheDir, 'data', 'imagenet-sample');
    expect(existsSync(join(dest, SAMPLE_MARKER))).toBe(false);
    expect(readdirSync(dest)).toHaveLength(998);
    expect(new Set(server.requests)).toEqual(new Set(names)); // every name, URL-encoded and decoded back exactly

    server.fail.clear();
    server.requests.length = 0;
    let missing = -1;
    const r = await sampleImages(env, { processEnv, onStart: (_u, _d, m) => (missing = m) });
    expect(r).toEqual({ dir: dest, source: 'download' });
    expect(missing).toBe(2);
    expect(server.requests.sort()).toEqual([names[10]!, names[999]!].sort());
    expect(existsSync(join(dest, SAMPLE_MARKER))).toBe(true);

    server.requests.length = 0;
    expect(await sampleImages(env, { processEnv })).toEqual({ dir: dest, source: 'cache' });
    expect(server.requests).toEqual([]);
  });

  it('prefers $PATCH_ATLAS_DATA/imagenet-sample, and offline without it is one line', async () => {
    const data = join(root, 'data');
    mkdirSync(join(data, 'imagenet-sample'), { recursive: true });
    mkdirSync(join(data, 'article-patches'));
    for (const f of ['baseball-02.png', 'baseball-01.png', 'noodles-01.png', 'random.png']) writeFileSync(join(data, 'article-patches', f), '');
    const env = { ...readEnv({}), dataDir: data, cacheDir: join(root, 'nocache') };
    expect(await sampleImages(env)).toEqual({ dir: join(data, 'imagenet-sample'), source: 'data' });
    expect(await articlePhotoPatches(env)).toEqual([join(data, 'article-patches', 'baseball-01.png'), join(data, 'article-patches', 'baseball-02.png')]);
    expect(await articlePhotoPatches({ ...env, dataDir: undefined })).toEqual([]);
    const err = await sampleImages({ ...env, dataDir: undefined }, { offline: true }).catch((e: unknown) => e);
    expect(oneLine(err)).toMatch(/^no ImageNet sample images \(looked in .*nocache.*\); set PATCH_ATLAS_DATA .* or drop --offline/);
  });

  it('demo with a bad PATCH_ATLAS_SAMPLE_URL fails in one line before anything runs', async () => {
    vi.stubEnv('PATCH_ATLAS_DATA', '');
    vi.stubEnv('PATCH_ATLAS_CACHE', join(root, 'cli-cache'));
    vi.stubEnv('PATCH_ATLAS_SAMPLE_URL', 'not a url');
    const r = await runCli(['demo', '--out', join(root, 'demo-out')]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(/^patch-atlas: PATCH_ATLAS_SAMPLE_URL "not a url" is not a URL; unset it to use https:\/\/raw\.githubusercontent\.com\//)]);
    expect(existsSync(join(root, 'demo-out'))).toBe(false);
  });
});
