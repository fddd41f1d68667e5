import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { EngineError } from './errors.js';
import { setEngineInfo } from './info.js';
import { installGradientFixes } from './gradients/index.js';
import { defaultThreads, disableWasmThreads, prepareWasmThreads, releaseWasmThreadsOnExit, wasmThreads } from './wasm-threads.js';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow';
export const BACKENDS: readonly BackendName[] = ['wasm', 'cpu', 'tensorflow'];

/**
 * What `--backend` chooses: a tfjs backend for all work; `onnxruntime` for forward-only work (gradients stay on
 * wasm); `auto`: onnxruntime where the model is ONNX and onnxruntime-node is installed, else wasm.
 */
export type EngineChoice = BackendName | 'onnxruntime' | 'auto';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'wasm', 'onnxruntime', 'cpu', 'tensorflow'];

/** The tfjs backend behind a choice (onnxruntime has no gradients: those run on wasm). */
export function tfjsBackendOf(choice: EngineChoice): BackendName {
  return (BACKENDS as readonly string[]).includes(choice) ? (choice as BackendName) : 'wasm';
}

let active: BackendName | undefined;

/**
 * Initialise (or switch) the tensor backend; cheap when it is already active. wasm is the default (installs offline, SIMD);
 * `tensorflow` uses @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when the user installed one.
 */
export async function initBackend(name: BackendName = 'wasm'): Promise<BackendName> {
  if (active === name && tf.getBackend() === tfName(name)) return name;
  return (async () => {
    installGradientFixes();
    // Prod mode silences tfjs's console banners (e.g. "install tfjs-node"), which would break one-line output.
    tf.enableProdMode();
    if (name === 'tensorflow') await importNodeBinding();
    const ok = name === 'wasm' ? await startWasm() : await tf.setBackend(tfName(name));
    if (!ok) throw new EngineError('BACKEND_MISSING', `backend "${name}" failed to initialise`);
    await tf.ready();
    active = name;
    setEngineInfo({ backend: name, threads: name === 'wasm' ? wasmThreads() : 1 });
    return name;
  })();
}

let wasmStarted = false;

/** wasm, multi-threaded where possible (PATCH_ATLAS_THREADS, default: all cores); single-threaded if that fails. */
async function startWasm(): Promise<boolean> {
  if (wasmStarted) return tf.setBackend('wasm');
  let threads: number;
  try {
    threads = defaultThreads();
  } catch (e) {
    throw new EngineError('BAD_THREADS', (e as Error).message, 'set PATCH_ATLAS_THREADS to e.g. 2, or unset it to use every core');
  }
  const restore = prepareWasmThreads(threads);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm').catch(() => false);
  } finally {
    restore();
  }
  if (!ok && threads > 1) {
    disableWasmThreads();
    ok = await tf.setBackend('wasm');
  }
  wasmStarted = ok;
  if (ok) releaseWasmThreadsOnExit();
  return ok;
}

export function activeBackend(): BackendName | undefined {
  return active;
}


function tfName(name: BackendName): string {
  return name === 'tensorflow' ? 'tensorflow' : name;
}

async function importNodeBinding(): Promise<void> {
  // Optional dependencies: never in package.json, because their install step downloads libtensorflow.
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') {
        throw new EngineError('BACKEND_MISSING', `${pkg} is installed but failed to load: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
  throw new EngineError(
    'BACKEND_MISSING',
    '--backend tensorflow needs @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA), which are not installed',
    'run `npm install @tensorflow/tfjs-node@4.22.0` in the patch-atlas folder, or use --backend wasm',
  );
}

export { tf };
