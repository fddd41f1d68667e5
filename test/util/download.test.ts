import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPatchAtlasError } from '../../src/errors.js';
import { downloadBounds, fetchBounded } from '../../src/util/download.js';

/** Downloads are untrusted: a server that hangs, stalls, lies about or exceeds its size never hangs or fools us. */
let server: Server;
let base = '';
/** A second server: another origin (another port). */
let other: Server;
let otherBase = '';
const otherHits: string[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url!;
    if (path === '/ok') return res.end(Buffer.alloc(1000, 7));
    if (path === '/moved') return res.writeHead(302, { location: '/ok' }).end();
    if (path === '/away') return res.writeHead(302, { location: `${otherBase}/ok` }).end();
    if (path === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (path === '/hang') return; // accepts the connection, never answers
    if (path === '/stall') {
      res.writeHead(200, { 'content-length': '2000' });
      res.write(Buffer.alloc(500)); // then nothing more
      return;
    }
    if (path === '/big-announced') {
      res.writeHead(200, { 'content-length': String(10_000) });
      return res.end(Buffer.alloc(10_000));
    }
    if (path === '/big-chunked') {
      res.writeHead(200); // no length: chunked
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1000));
      return res.end();
    }
    if (path === '/truncated') {
      res.writeHead(200, { 'content-length': '2000' });
      res.write(Buffer.alloc(500));
      return res.destroy(); // the connection drops early
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  other = createServer((req, res) => {
    otherHits.push(req.url!);
    res.end(Buffer.alloc(100, 1));
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});
afterAll(() => {
  for (const s of [server, other]) {
    s.closeAllConnections();
    s.close();
  }
});

const bounds = { stallMs: 300, maxBytes: 5000 };

/** The download's failure: a DOWNLOAD_FAILED PatchAtlasError (the code is asserted, not only the words). */
async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(isPatchAtlasError(e) && e.code).toBe('DOWNLOAD_FAILED');
  return (e as Error).message;
}

describe('fetchBounded', () => {
  it('returns the body of a good download', async () => {
    expect((await fetchBounded(`${base}/ok`, bounds)).byteLength).toBe(1000);
  });

  it('gives up on a server that never answers, and on one that stops sending, within the stall time', async () => {
    const t0 = Date.now();
    expect(await failure(fetchBounded(`${base}/hang`, bounds))).toMatch(/cannot download .*\/hang: no answer within 0\.3 s; .*PATCH_ATLAS_DOWNLOAD_TIMEOUT/);
    expect(await failure(fetchBounded(`${base}/stall`, bounds))).toMatch(/\/stall: no data for 0\.3 s/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('refuses a body over the cap, announced or not, and a truncated one', async () => {
    expect(await failure(fetchBounded(`${base}/big-announced`, bounds))).toMatch(/10000 bytes announced, more than the 5000-byte limit/);
    expect(await failure(fetchBounded(`${base}/big-chunked`, bounds))).toMatch(/more than the 5000-byte limit/);
    expect(await failure(fetchBounded(`${base}/truncated`, bounds))).toMatch(/truncated|connection broke/);
    expect(await failure(fetchBounded(`${base}/missing`, bounds))).toMatch(/HTTP 404/);
  });

  it('follows redirects within the origin, and to another origin only when it is a declared mirror (never contacting it otherwise)', async () => {
    expect((await fetchBounded(`${base}/moved`, bounds)).byteLength).toBe(1000);
    const err = await fetchBounded(`${base}/away`, bounds).catch((e: unknown) => e);
    expect(isPatchAtlasError(err) && err.code).toBe('DOWNLOAD_FAILED');
    expect((err as Error).message).toMatch(/redirected to http:\/\/127\.0\.0\.1:\d+, which is neither its own origin nor a declared mirror/);
    expect(otherHits).toEqual([]);
    expect((await fetchBounded(`${base}/away`, { ...bounds, mirrors: [otherBase] })).byteLength).toBe(100);
    expect(await failure(fetchBounded(`${base}/loop`, bounds))).toMatch(/more than 5 redirects/);
  });

  it('reads its stall time from PATCH_ATLAS_DOWNLOAD_TIMEOUT and refuses a bad value in one line', () => {
    expect(downloadBounds({ PATCH_ATLAS_DOWNLOAD_TIMEOUT: '2.5' }).stallMs).toBe(2500);
    expect(downloadBounds({}).stallMs).toBe(30_000);
    expect(() => downloadBounds({ PATCH_ATLAS_DOWNLOAD_TIMEOUT: 'soon' })).toThrow(/PATCH_ATLAS_DOWNLOAD_TIMEOUT must be a number of seconds > 0, got "soon"/);
  });
});
