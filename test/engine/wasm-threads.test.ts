import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { defaultThreads } from '../../src/engine/wasm-threads.js';

/**
 * Multi-threaded wasm (src/engine/wasm-threads.ts) must give bit-identical results to one thread. The thread
 * count is fixed when a process first starts wasm, so each count runs in its own process (the compiled dist/,
 * which `npm test` builds first).
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dist = (p: string) => pathToFileURL(join(root, 'dist/src', p)).href;

const script = `
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
const { initBackend } = await import(${JSON.stringify(dist('engine/backend.js'))});
const { wasmThreads } = await import(${JSON.stringify(dist('engine/wasm-threads.js'))});
await initBackend('wasm');
const r = (shape, seed) => tf.randomUniform(shape, -1, 1, 'float32', seed);
const x = r([4, 40, 40, 16], 1);
const outs = tf.tidy(() => {
  const w = r([3, 3, 16, 32], 2), dw = r([3, 3, 32, 1], 3), pw = r([1, 1, 32, 24], 4), b = r([24], 5);
  const f = (v) => {
    const a = tf.fused.conv2d({ x: v, filter: w, strides: 2, pad: 'same', activation: 'relu6' });
    const c = tf.depthwiseConv2d(a, dw, 1, 'same');
    return tf.fused.conv2d({ x: c, filter: pw, strides: 1, pad: 'valid', bias: b, activation: 'relu' });
  };
  const y = f(x);
  const g = tf.grad((v) => tf.sum(tf.mul(f(v), r(y.shape, 6))))(x);
  const m = tf.matMul(r([300, 200], 7), r([200, 250], 8));
  return [y, g, m].map((t) => Buffer.from(t.dataSync().buffer));
});
console.log(JSON.stringify({ threads: wasmThreads(), hash: createHash('sha256').update(Buffer.concat(outs)).digest('hex') }));
`;

function runWith(threads: number): { threads: number; hash: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pa-threads-'));
  // Inside the repo's module resolution, so '@tensorflow/tfjs' resolves from node_modules.
  const file = join(root, 'dist', `threads-check-${process.pid}-${threads}.mjs`);
  writeFileSync(file, script);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', env: { ...process.env, PATCH_ATLAS_THREADS: String(threads) }, cwd: dir, timeout: 60_000 });
  rmSync(file, { force: true });
  rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`threads=${threads} child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { threads: number; hash: string };
}

describe('multi-threaded wasm', () => {
  it('gives bit-identical convolutions, gradients and matrix products with 1 and 2 threads', () => {
    const one = runWith(1);
    const two = runWith(2);
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(two.hash).toBe(one.hash);
  });

  it('a bad PATCH_ATLAS_THREADS is one line naming the variable and the fix, exit 1', () => {
    // The variable is read when the engine starts, before any image is read.
    const c = spawnSync(process.execPath, [join(root, 'bin', 'patch-atlas'), 'classify', join(root, 'package.json')], { encoding: 'utf8', env: { ...process.env, PATCH_ATLAS_THREADS: 'two' } });
    expect(c.status).toBe(1);
    expect(c.stderr.trim().split('\n')).toHaveLength(1);
    expect(c.stderr).toMatch(/PATCH_ATLAS_THREADS must be a whole number ≥ 1, got "two"; set PATCH_ATLAS_THREADS to e\.g\. 2/);
  });

  it('reads PATCH_ATLAS_THREADS, defaulting to the cores available, at most 8', () => {
    expect(defaultThreads({ PATCH_ATLAS_THREADS: '3' })).toBe(3);
    expect(defaultThreads({ PATCH_ATLAS_THREADS: '64' })).toBe(8);
    expect(defaultThreads({})).toBeGreaterThanOrEqual(1);
    expect(() => defaultThreads({ PATCH_ATLAS_THREADS: 'two' })).toThrow(/PATCH_ATLAS_THREADS/);
    expect(() => defaultThreads({ PATCH_ATLAS_THREADS: '0' })).toThrow(/PATCH_ATLAS_THREADS/);
  });
});

describe('wasm Slice and PadV2 by contiguous runs', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  const cases: Array<{ shape: number[]; begin: number[]; size: number[]; dtype: 'float32' | 'int32' | 'bool' }> = [
    { shape: [2, 9, 7, 3], begin: [0, 2, 1, 0], size: [-1, 5, 4, -1], dtype: 'float32' }, // jitter crop
    { shape: [2, 9, 7, 3], begin: [1, 0, 0, 1], size: [1, -1, -1, 1], dtype: 'float32' }, // one channel
    { shape: [4, 6, 6, 5], begin: [0, 0, 0, 0], size: [-1, -1, -1, -1], dtype: 'float32' }, // whole
    { shape: [4, 6, 6, 5], begin: [2, 0, 0, 0], size: [2, -1, -1, -1], dtype: 'int32' }, // contiguous tail
    { shape: [5, 8], begin: [1, 3], size: [3, 4], dtype: 'bool' },
    { shape: [3, 4, 5, 6, 2], begin: [1, 1, 2, 0, 1], size: [2, 2, 3, 6, 1], dtype: 'float32' }, // rank 5
    { shape: [6], begin: [2], size: [3], dtype: 'int32' },
    { shape: [3, 4], begin: [1, 1], size: [0, 2], dtype: 'float32' }, // empty
  ];

  it.each(cases)('matches the cpu backend for $shape from $begin size $size ($dtype)', async ({ shape, begin, size, dtype }) => {
    const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (dtype === 'bool' ? i % 3 === 0 : dtype === 'int32' ? i - 7 : i * 0.5 - 3));
    const sliceOn = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      const t = tf.tensor(values as number[], shape, dtype);
      const s = tf.slice(t, begin, size);
      const out = { shape: s.shape, data: Array.from(s.dataSync()) };
      t.dispose();
      s.dispose();
      return out;
    };
    const cpu = await sliceOn('cpu');
    const before = (await tf.setBackend('wasm'), tf.memory().numTensors);
    const wasm = await sliceOn('wasm');
    expect(tf.memory().numTensors).toBe(before);
    expect(wasm).toEqual(cpu);
  });

  // Runs of ≥ 64 values take the override; shorter ones (marked native) keep wasm's kernel. Both must match cpu.
  const pads: Array<{ shape: number[]; paddings: Array<[number, number]>; value: number; dtype: 'float32' | 'int32' | 'bool' }> = [
    { shape: [2, 5, 30, 3], paddings: [[0, 0], [2, 2], [1, 3], [0, 0]], value: 0.5, dtype: 'float32' }, // transform pad
    { shape: [3, 70], paddings: [[1, 0], [0, 2]], value: -2, dtype: 'int32' },
    { shape: [2, 3, 4, 40, 2], paddings: [[0, 1], [0, 0], [2, 0], [0, 0], [0, 0]], value: 7, dtype: 'float32' },
    { shape: [4, 80], paddings: [[0, 0], [0, 0]], value: 1, dtype: 'bool' },
    { shape: [2, 4, 4, 1], paddings: [[0, 0], [0, 0], [0, 0], [3, 4]], value: 0, dtype: 'float32' }, // native
    { shape: [0, 3], paddings: [[1, 1], [0, 0]], value: 3, dtype: 'float32' }, // native, empty input
  ];

  it.each(pads)('pads like the cpu backend: $shape by $paddings with $value ($dtype)', async ({ shape, paddings, value, dtype }) => {
    const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (dtype === 'bool' ? i % 2 === 0 : i - 5));
    const padOn = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      const t = tf.tensor(values as number[], shape, dtype);
      const p = tf.pad(t, paddings, value);
      const out = { shape: p.shape, data: Array.from(p.dataSync()) };
      tf.dispose([t, p]);
      return out;
    };
    const cpu = await padOn('cpu');
    const before = (await tf.setBackend('wasm'), tf.memory().numTensors);
    expect(await padOn('wasm')).toEqual(cpu);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('differentiates (its gradient is a pad) on wasm', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomUniform([2, 6, 6, 3], 0, 1, 'float32', 1);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.slice(v, [0, 1, 2, 0], [-1, 3, 3, -1]), 2)))(x);
    const want = tf.pad(tf.fill([2, 3, 3, 3], 2), [[0, 0], [1, 2], [2, 1], [0, 0]]);
    expect(Array.from(g.dataSync())).toEqual(Array.from(want.dataSync()));
  });
});

describe('wasm BatchMatMul with transposed operands (explicit transposes, then a plain product)', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  // [a shape, b shape, transposeA, transposeB]: 2-D, batched, and a broadcast batch (forward only: tfjs's own
  // MatMul gradient does not reduce a broadcast batch, on cpu either).
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [4, 7], false, true],
    [[7, 5], [7, 4], true, false],
    [[7, 5], [4, 7], true, true],
    [[5, 7], [7, 4], false, false],
    [[3, 5, 7], [3, 4, 7], false, true],
    [[2, 3, 7, 5], [1, 3, 7, 4], true, false],
  ];
  const broadcast = (sa: number[], sb: number[]) => sa.length > 2 && sa.slice(0, -2).join() !== sb.slice(0, -2).join();
  const values = (shape: number[], k: number) => Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.7 + k));

  it.each(cases)('%j · %j (transposeA %s, transposeB %s) and its gradients match the cpu backend', async (sa, sb, ta, tb) => {
    const on = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      const a = tf.tensor(values(sa, 1), sa);
      const b = tf.tensor(values(sb, 2), sb);
      const y = tf.matMul(a, b, ta, tb);
      const dy = tf.tensor(values(y.shape, 3), y.shape);
      const [da, db] = broadcast(sa, sb) ? [tf.zeros([1]), tf.zeros([1])] : tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.matMul(p, q, ta, tb), dy)))([a, b]);
      const out = { shape: y.shape, y: Array.from(y.dataSync()), da: Array.from(da!.dataSync()), db: Array.from(db!.dataSync()) };
      tf.dispose([a, b, y, dy, da!, db!]);
      return out;
    };
    const cpu = await on('cpu');
    const before = (await tf.setBackend('wasm'), tf.memory().numTensors);
    const wasm = await on('wasm');
    expect(tf.memory().numTensors).toBe(before);
    expect(wasm.shape).toEqual(cpu.shape);
    for (const k of ['y', 'da', 'db'] as const) wasm[k].forEach((v, i) => expect(v).toBeCloseTo(cpu[k][i]!, 5));
  });

  it('runs as Transpose + plain BatchMatMul on wasm, and untouched on cpu', async () => {
    const kernels = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      const a = tf.ones([4, 6]);
      const b = tf.ones([5, 6]);
      const names = (await tf.profile(() => tf.matMul(a, b, false, true))).kernels.map((k) => k.name);
      tf.dispose([a, b]);
      return names;
    };
    expect(await kernels('wasm')).toContain('Transpose');
    expect(await kernels('cpu')).not.toContain('Transpose');
  });
});
