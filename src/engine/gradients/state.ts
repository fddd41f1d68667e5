import * as tf from '@tensorflow/tfjs';

/**
 * Switches read by the gradient overrides at *backprop* time (when tf.grad runs the tape backwards),
 * not when the forward op is recorded: a mode must be active while the gradient is computed.
 */

export type MaxPoolGradMode = 'exact' | 'smooth';

let maxPoolMode: MaxPoolGradMode = 'exact';
let forceRewrite = false;

export function getMaxPoolGradMode(): MaxPoolGradMode {
  return maxPoolMode;
}

/** Prefer `withMaxPoolGrad`; this exists for async code that cannot wrap its work in one sync call. */
export function setMaxPoolGradMode(mode: MaxPoolGradMode): void {
  if (mode !== 'exact' && mode !== 'smooth') throw new TypeError(`unknown max-pool gradient mode: ${String(mode)}`);
  maxPoolMode = mode;
}

/**
 * Run `fn` (synchronously) with max-pool gradients in `mode`; the previous mode is restored afterwards,
 * also when `fn` throws. `fn` must contain the backward pass (the tf.grad call), since that is when the
 * mode is read. A promise returned by `fn` is not awaited: its later work runs in the restored mode.
 */
export function withMaxPoolGrad<T>(mode: MaxPoolGradMode, fn: () => T): T {
  const previous = maxPoolMode;
  setMaxPoolGradMode(mode);
  try {
    return fn();
  } finally {
    maxPoolMode = previous;
  }
}

/** True while the op-based rewrites are forced on every backend (tests compare them with native kernels on cpu). */
export function isRewriteForced(): boolean {
  return forceRewrite;
}

export function setRewriteForced(on: boolean): void {
  forceRewrite = on;
}

/** Run `fn` (synchronously, backward pass included) with the rewrites forced; restored afterwards, also on throw. */
export function withForcedRewrite<T>(fn: () => T): T {
  const previous = forceRewrite;
  forceRewrite = true;
  try {
    return fn();
  } finally {
    forceRewrite = previous;
  }
}

/** Kernels this module registered itself (`backend/kernel`); they are not "native" for the override decisions. */
const shims = new Set<string>();

export function recordShim(backend: string, kernelName: string): void {
  shims.add(`${backend}/${kernelName}`);
}

export function installedKernelShims(): string[] {
  return [...shims].sort();
}

/** Whether the active backend has its own kernel `kernelName` (one we registered does not count). */
export function hasNativeKernel(kernelName: string, backend: string = tf.getBackend()): boolean {
  return tf.getKernel(kernelName, backend) != null && !shims.has(`${backend}/${kernelName}`);
}
