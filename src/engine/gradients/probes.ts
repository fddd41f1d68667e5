import * as tf from '@tensorflow/tfjs';

/**
 * Tiny checks of a backend's pooling-gradient kernels against hand-computed answers, run once per backend
 * (lazily, on the first gradient that needs them). A kernel that fixes itself in a later tfjs release is then
 * used again automatically; a missing or throwing kernel counts as unsound.
 */

const verdicts = new Map<string, unknown>();

function once<T>(key: string, probe: () => T): T {
  const fullKey = `${tf.getBackend()}/${key}`;
  if (!verdicts.has(fullKey)) verdicts.set(fullKey, probe());
  return verdicts.get(fullKey) as T;
}

function run(kernel: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): number[] | undefined {
  if (tf.getKernel(kernel, tf.getBackend()) == null) return undefined;
  try {
    return tf.tidy(() => {
      const out = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      return Array.from(out.dataSync());
    });
  } catch {
    return undefined;
  }
}

function equal(a: number[] | undefined, b: number[]): boolean {
  return a != null && a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
}

/**
 * A 2×2 window of negatives whose max is the last element: the gradient belongs there. tfjs-backend-wasm 4.22
 * starts its running max at the smallest positive float, so no element beats it and the gradient lands on
 * the first element instead.
 */
const NEG_WINDOW = [-4, -3, -2, -1];
const NEG_WINDOW_GRAD = [0, 0, 0, 1];

export function probeMaxPoolGrad(): number[] | undefined {
  return tf.tidy(() => {
    const input = tf.tensor4d(NEG_WINDOW, [1, 2, 2, 1]);
    const output = tf.tensor4d([-1], [1, 1, 1, 1]);
    const dy = tf.ones([1, 1, 1, 1]);
    return run(tf.MaxPoolGrad, { dy, input, output }, { filterSize: 2, strides: 2, pad: 'valid' });
  });
}

export function maxPoolGradKernelIsSound(): boolean {
  return once('MaxPoolGrad', () => equal(probeMaxPoolGrad(), NEG_WINDOW_GRAD));
}

export function maxPool3DGradKernelIsSound(): boolean {
  return once('MaxPool3DGrad', () =>
    equal(
      tf.tidy(() => {
        const input = tf.tensor5d([...NEG_WINDOW, -8, -7, -6, -5], [1, 2, 2, 2, 1]);
        const output = tf.tensor5d([-1], [1, 1, 1, 1, 1]);
        const dy = tf.ones([1, 1, 1, 1, 1]);
        return run(tf.MaxPool3DGrad, { dy, input, output }, { filterSize: 2, strides: 2, pad: 'valid' });
      }),
      [...NEG_WINDOW_GRAD, 0, 0, 0, 0],
    ),
  );
}

/**
 * AvgPoolGrad for a 3×3 input, 2×2 windows, stride 2, 'same' (windows overhang bottom and right). tf.avgPool
 * divides each window by its in-bounds count (4, 2, 2, 1), so dx must be dy / that count. tfjs 4.22 (cpu and
 * wasm) divides by the full window (4) everywhere.
 */
export type AvgPoolGradKernel = 'sound' | 'full-window-divisor' | 'unsound';

export function probeAvgPoolGrad(): number[] | undefined {
  return tf.tidy(() => {
    const input = tf.zeros([1, 3, 3, 1]);
    const dy = tf.ones([1, 2, 2, 1]);
    return run(tf.AvgPoolGrad, { dy, input }, { filterSize: 2, strides: 2, pad: 'same' });
  });
}

export function avgPoolGradKernel(): AvgPoolGradKernel {
  return once('AvgPoolGrad', () => {
    const got = probeAvgPoolGrad();
    if (equal(got, [0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1])) return 'sound';
    if (equal(got, [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25])) return 'full-window-divisor';
    return 'unsound';
  });
}
