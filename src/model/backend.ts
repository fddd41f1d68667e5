import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { PatchAtlasError } from '../errors.js';
import { installGradientFixes } from './gradients/index.js';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow';
export const BACKENDS: readonly BackendName[] = ['wasm', 'cpu', 'tensorflow'];

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
    const ok = await tf.setBackend(tfName(name));
    if (!ok) throw new PatchAtlasError('BACKEND_MISSING', `backend "${name}" failed to initialise`);
    await tf.ready();
    active = name;
    return name;
  })();
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
        throw new PatchAtlasError('BACKEND_MISSING', `${pkg} is installed but failed to load: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
  throw new PatchAtlasError(
    'BACKEND_MISSING',
    '--backend tensorflow needs @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA), which are not installed',
    'run `npm install @tensorflow/tfjs-node@4.22.0` in the patch-atlas folder, or use --backend wasm',
  );
}

export { tf };
