import { PatchAtlasError } from '../errors.js';

/** Bounds on one download: nothing arrives for `stallMs` → give up; more than `maxBytes` → give up. */
export interface DownloadBounds {
  stallMs: number;
  maxBytes: number;
  /** Origins a redirect may lead to besides the URL's own (a descriptor's mirrors); none by default. */
  mirrors?: readonly string[];
}

const MAX_REDIRECTS = 5;

/** PATCH_ATLAS_DOWNLOAD_TIMEOUT (seconds without data, default 30) and a 2 GiB cap unless the caller sets one. */
export function downloadBounds(env: NodeJS.ProcessEnv = process.env, maxBytes = 2 ** 31): DownloadBounds {
  const raw = env.PATCH_ATLAS_DOWNLOAD_TIMEOUT;
  const seconds = raw === undefined || raw === '' ? 30 : Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new PatchAtlasError('BAD_FLAG', `PATCH_ATLAS_DOWNLOAD_TIMEOUT must be a number of seconds > 0, got "${raw}"`, 'e.g. PATCH_ATLAS_DOWNLOAD_TIMEOUT=60, or unset it (30 s)');
  return { stallMs: seconds * 1000, maxBytes };
}

/**
 * GET `url` into memory within `bounds`: a server that never answers or stops sending times out, a body larger
 * than the cap (announced or actual) is refused, and a body shorter than its Content-Length is an error (a
 * truncated download is never taken for complete). Every failure is one DOWNLOAD_FAILED line naming the URL.
 */
export async function fetchBounded(url: string, bounds: DownloadBounds): Promise<Uint8Array> {
  const ctrl = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      ctrl.abort();
    }, bounds.stallMs);
  };
  const fail = (why: string, hint?: string) => new PatchAtlasError('DOWNLOAD_FAILED', `cannot download ${url}: ${why}`, hint);
  arm();
  try {
    // Redirects are followed by hand, each checked before it is contacted: only to the URL's own origin or a mirror.
    const allowed = new Set([new URL(url).origin, ...(bounds.mirrors ?? []).map((m) => new URL(m).origin)]);
    let res: Response | undefined;
    let at = url;
    for (let hop = 0; ; hop++) {
      try {
        res = await fetch(at, { signal: ctrl.signal, redirect: 'manual' });
      } catch (e) {
        if (stalled) throw fail(`no answer within ${bounds.stallMs / 1000} s`, 'check the network, or raise PATCH_ATLAS_DOWNLOAD_TIMEOUT (seconds)');
        const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
        throw fail(cause, 'check the network, or set PATCH_ATLAS_MODELS to a folder that holds the weights');
      }
      if (res.status < 300 || res.status >= 400 || !res.headers.get('location')) break;
      const next = new URL(res.headers.get('location')!, at);
      await res.body?.cancel();
      if (!allowed.has(next.origin)) throw fail(`redirected to ${next.origin}, which is neither its own origin nor a declared mirror`, 'add the origin to "weights.mirrors" in the descriptor if you trust it');
      if (hop >= MAX_REDIRECTS) throw fail(`more than ${MAX_REDIRECTS} redirects`);
      at = next.href;
    }
    if (!res.ok) throw fail(`HTTP ${res.status}`);
    const announced = Number(res.headers.get('content-length') ?? NaN);
    if (announced > bounds.maxBytes) throw fail(`${announced} bytes announced, more than the ${bounds.maxBytes}-byte limit`);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = res.body?.getReader();
    if (reader) {
      for (;;) {
        arm();
        let r: { done: boolean; value?: Uint8Array };
        try {
          r = await reader.read();
        } catch {
          throw fail(stalled ? `no data for ${bounds.stallMs / 1000} s` : 'the connection broke', 'try again; raise PATCH_ATLAS_DOWNLOAD_TIMEOUT (seconds) on a slow link');
        }
        if (r.done) break;
        const chunk = r.value!;
        total += chunk.byteLength;
        if (total > bounds.maxBytes) {
          ctrl.abort();
          throw fail(`more than the ${bounds.maxBytes}-byte limit`);
        }
        chunks.push(chunk);
      }
    }
    if (Number.isFinite(announced) && total !== announced) throw fail(`got ${total} of ${announced} bytes (truncated)`, 'try again');
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}
