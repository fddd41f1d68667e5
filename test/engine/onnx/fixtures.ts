import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** The PyTorch-made ONNX fixtures (test/fixtures/onnx/README.md) and their reference values. */
export const FIXTURE_DIR = join(import.meta.dirname, '..', '..', 'fixtures', 'onnx');
export const FIXTURES = ['ops', 'inception_tiny', 'mobilenet_v3_tiny'] as const;
export type FixtureName = (typeof FIXTURES)[number];

interface Stored {
  shape: number[];
  data: number[] | string;
}

export interface Reference {
  encoding: 'json' | 'base64-f32le';
  input: { name: string; shape: number[] };
  outputs: Record<string, Stored>;
  hidden: Array<Stored & { name: string }>;
  gradients: { input_grad: Stored; hidden_grad: Stored & { name: string } };
}

export function fixtureBytes(name: FixtureName): Uint8Array {
  return readFileSync(join(FIXTURE_DIR, `${name}.onnx`));
}

export function reference(name: FixtureName): Reference {
  return JSON.parse(readFileSync(join(FIXTURE_DIR, `${name}.ref.json`), 'utf8')) as Reference;
}

export function values(_ref: Reference, s: Stored): Float32Array {
  if (typeof s.data !== 'string') return Float32Array.from(s.data);
  const b = Buffer.from(s.data, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The README's input formula, x[i] = sin(0.37 i)·0.5 + 0.25·cos(0.011 i · i), as an NCHW tensor of `shape`. */
export function fixtureInput(shape: number[]): tf.Tensor4D {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i) * 0.5 + 0.25 * Math.cos(0.011 * i * i));
  return tf.tensor4d(v, shape as [number, number, number, number]);
}

/** The fixtures' objective weights w_k = cos(1.3 k). */
export function objectiveWeights(k: number): tf.Tensor1D {
  return tf.tensor1d(Array.from({ length: k }, (_, i) => Math.cos(1.3 * i)));
}

/** max |a − b| / max |b|: the relative error the tests bound. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  if (a.length !== b.length) return Infinity;
  return num / (den || 1);
}

export const nchwToNhwc = (t: tf.Tensor) => (t.rank === 4 ? tf.transpose(t, [0, 2, 3, 1]) : t);
export const nhwcToNchw = (t: tf.Tensor) => (t.rank === 4 ? tf.transpose(t, [0, 3, 1, 2]) : t);
