import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, expect } from 'vitest';
import { mulberry32 } from '../../src/util/random.js';

/**
 * Shared by the gradient tests: seeded data, backend switching, leak-checked gradients, and the
 * relative-error check (rel err = max|a − b| / max(max|b|, tiny), b = reference). Timings never live here.
 */
export type Backend = 'cpu' | 'wasm';
export type Pad = 'same' | 'valid';
export const TOL = 1e-4;

/** Errors seen in this test file, printed once at the end (module state is per test file). */
const measured: Array<[string, number]> = [];
afterAll(() => {
  if (!measured.length) return;
  const width = Math.max(...measured.map(([n]) => n.length));
  console.log(['max relative errors:', ...measured.map(([n, e]) => `  ${n.padEnd(width)}  ${e.toExponential(2)}`)].join('\n'));
});

export function data(shape: number[], seed: number, lo = -1, hi = 1): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(shape.reduce((p, d) => p * d, 1));
  for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

/** A constant built inside the differentiated function (so it is disposed with the forward pass). */
export const param = (shape: number[], seed: number, lo = -1, hi = 1) => tf.tensor(data(shape, seed, lo, hi), shape);
export const weighted = (y: tf.Tensor, seed: number) => y.mul(param(y.shape, seed));

export async function use(backend: Backend): Promise<void> {
  await tf.setBackend(backend);
  await tf.ready();
  expect(tf.getBackend()).toBe(backend);
}

/** d f(x) / dx at a seeded x on the current backend; asserts that no tensor outlives the computation. */
export function inputGrad(xShape: number[], f: (x: tf.Tensor) => tf.Tensor, xData: Float32Array = data(xShape, 1)): Float32Array {
  const x = tf.tensor(xData, xShape);
  const before = tf.memory().numTensors;
  const g = tf.grad((v: tf.Tensor) => f(v).sum() as tf.Scalar)(x);
  const out = Float32Array.from(g.dataSync());
  g.dispose();
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
  return out;
}

/** Gradients with respect to several inputs at once (leak-checked). */
export function grads(shapes: number[][], f: (...xs: tf.Tensor[]) => tf.Tensor, seed = 1): Float32Array[] {
  const xs = shapes.map((s, i) => tf.tensor(data(s, seed + i), s));
  const before = tf.memory().numTensors;
  const gs = tf.grads((...v: tf.Tensor[]) => f(...v).sum() as tf.Scalar)(xs);
  const out = gs.map((g) => Float32Array.from(g.dataSync()));
  tf.dispose(gs);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose(xs);
  return out;
}

export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

export function expectClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL): void {
  const err = relErr(got, want);
  measured.push([name, err]);
  expect(Math.max(...Array.from(want, Math.abs)), `${name}: reference gradient is all zero`).toBeGreaterThan(0);
  expect(err, name).toBeLessThan(tol);
}
