/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm ships a threaded SIMD build (XNNPACK + pthreadpool), but its
 * loader turns threads off in Node (tfjs issue #3830) for three browser-only assumptions, which we bridge here:
 * 1. the pthread worker script is handed over as a `blob:` URL, which Node's Worker cannot load: we start it
 *    from the same source with `eval: true`;
 * 2. the main script is posted to each worker as a Blob: we post the path of the package's own threaded script;
 * 3. the C++ side sizes its pool as logical cores / 2 (assuming hyper-threads), capped by the requested count,
 *    so on a 2-core machine it would still use one thread: we report 2 × the wanted threads while it initialises.
 * Every kernel computes each output element on one thread in the same order, so results are bit-identical to
 * the single-threaded build (tested in test/engine/wasm-threads.test.ts).
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { Worker as NodeWorker, type WorkerOptions } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);
/** emscripten preallocates this many pthread workers in the tfjs build; more would be spawned lazily. */
export const MAX_WASM_THREADS = 8;

/** Threads wanted: PATCH_ATLAS_THREADS, else every core the process may use (at most MAX_WASM_THREADS). */
export function defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.PATCH_ATLAS_THREADS?.trim();
  const n = v ? Number(v) : os.availableParallelism();
  if (!Number.isInteger(n) || n < 1) throw new Error(`PATCH_ATLAS_THREADS must be a whole number ≥ 1, got "${v}"`);
  return Math.min(n, MAX_WASM_THREADS);
}

/**
 * Arrange for the next wasm initialisation to use `threads` threads. Returns a function to call once the
 * backend is ready (it undoes the temporary core count). A no-op for one thread.
 */
export function prepareWasmThreads(threads: number): () => void {
  if (threads <= 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    return () => {};
  }
  installWorkerShim();
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  const cpus = os.cpus;
  const twice = () => {
    const c = cpus();
    return Array.from({ length: 2 * threads }, (_, i) => c[i % Math.max(1, c.length)]!);
  };
  os.cpus = twice;
  return () => {
    os.cpus = cpus;
  };
}

/** Undo prepareWasmThreads after a failed start, so a retry loads the single-threaded build. */
export function disableWasmThreads(): void {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setThreadsCount(1);
}

let shimmed = false;

function installWorkerShim(): void {
  if (shimmed) return;
  shimmed = true;
  const pkg = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd';
  // The worker source ships as a JS string whose "\n" escapes were turned into newlines; re-escape as tfjs does.
  const workerSource = (require(`${pkg}.worker.js`) as { wasmWorkerContents: string }).wasmWorkerContents.replace(/\n/g, '\\n');
  const mainScript = require.resolve(`${pkg}.js`);
  class PthreadWorker extends NodeWorker {
    constructor(url: string | URL, opts?: WorkerOptions) {
      if (typeof url === 'string' && url.startsWith('blob:')) super(workerSource, { ...opts, eval: true });
      else super(url, opts);
    }
    override postMessage(msg: unknown, transfer?: readonly (ArrayBuffer | import('node:worker_threads').MessagePort)[]): void {
      const m = msg as { cmd?: string; urlOrBlob?: unknown } | null;
      if (m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') msg = { ...m, urlOrBlob: mainScript };
      super.postMessage(msg, transfer as never);
    }
  }
  // emscripten assigns `global.Worker = worker_threads.Worker` when it loads; keep ours in its place.
  Object.defineProperty(globalThis, 'Worker', { get: () => PthreadWorker, set: () => {}, configurable: true });
}

/**
 * pthreadpool's threads live for the whole process and emscripten keeps their workers referenced, which
 * would stop Node from exiting when the work is done. They hold no state worth waiting for: unreference them.
 */
export function releaseWasmThreadsOnExit(): void {
  const b = tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers?: Array<{ unref?: () => void }> } } };
  for (const w of b.wasm?.PThread?.runningWorkers ?? []) w.unref?.();
}

/** Threads the active wasm backend runs XNNPACK with (1 for other backends). */
export function wasmThreads(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  const b = tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  return b.wasm?.tfjs?.getThreadsCount?.() ?? 1;
}
