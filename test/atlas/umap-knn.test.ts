import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { umap } from '../../src/atlas/umap/index.js';
import { knn, type KnnMetric } from '../../src/atlas/umap/knn.js';
import { nnDescent } from '../../src/atlas/umap/nndescent.js';
import { approximateFrom, chooseKnnMethod, neighbours } from '../../src/atlas/umap/neighbours.js';
import { reduceRows } from '../../src/atlas/umap/reduce.js';
import { mulberry32 } from '../../src/util/random.js';
import { refDist } from '../helpers/distance.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** n points around `k` Gaussian centres (N(0, sep²) per dim), unit noise; ReLU'd if asked (non-negative, some zeros). */
function gaussianClusters(n: number, dims: number, k: number, sep: number, seed: number, relu = false): Float32Array {
  const g = gaussian(mulberry32(seed));
  const centres = Float32Array.from({ length: k * dims }, () => sep * g());
  const x = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    const c = i % k;
    for (let d = 0; d < dims; d++) {
      const v = centres[c * dims + d]! + g();
      x[i * dims + d] = relu ? Math.max(0, v) : v;
    }
  }
  return x;
}

/** Like a collected layer (bench/workload.ts syntheticRun): 30 centres in [0, 2)^dims, uniform noise ±0.5, ReLU. */
function activationClusters(n: number, dims: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const centres = Float32Array.from({ length: 30 * dims }, () => rand() * 2);
  const x = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rand() * 30);
    for (let d = 0; d < dims; d++) x[i * dims + d] = Math.max(0, centres[c * dims + d]! + (rand() - 0.5));
  }
  return x;
}

/** Fraction of the exact non-self neighbours that the approximate rows also list. */
function recall(exact: Int32Array, approx: Int32Array, n: number, k: number): number {
  let hit = 0;
  for (let i = 0; i < n; i++) {
    const want = new Set(exact.subarray(i * k + 1, (i + 1) * k));
    for (let t = 1; t < k; t++) if (want.has(approx[i * k + t]!)) hit++;
  }
  return hit / (n * (k - 1));
}


/**
 * Trustworthiness (Venna & Kaski) at k, estimated on `samples` random points instead of all n
 * (the full measure is O(n²)): 1 − 2/(m·k·(2n − 3k − 1)) · Σ over sampled i and its k layout
 * neighbours j that are not input neighbours of (input rank of j − k). Same sample → paired.
 */
function sampledTrust(x: Float32Array, dims: number, n: number, xy: Float32Array, metric: KnnMetric, samples: Int32Array, k = 10): number {
  let penalty = 0;
  const din = new Float64Array(n);
  const dxy = new Float64Array(n);
  const sorted = new Float64Array(n);
  for (const i of samples) {
    for (let j = 0; j < n; j++) {
      din[j] = j === i ? Infinity : refDist(x, dims, i, j, metric);
      dxy[j] = j === i ? Infinity : (xy[2 * i]! - xy[2 * j]!) ** 2 + (xy[2 * i + 1]! - xy[2 * j + 1]!) ** 2;
    }
    sorted.set(din);
    sorted.sort();
    const kthIn = sorted[k - 1]!;
    sorted.set(dxy);
    sorted.sort();
    const kthXy = sorted[k - 1]!;
    for (let j = 0; j < n; j++) {
      if (!(dxy[j]! <= kthXy) || din[j]! <= kthIn) continue;
      let rank = 1;
      for (let l = 0; l < n; l++) if (din[l]! < din[j]!) rank++;
      penalty += rank - k;
    }
  }
  return 1 - (2 / (samples.length * k * (2 * n - 3 * k - 1))) * penalty;
}

describe('NN-descent k-NN', () => {
  it('follows the exact search\'s conventions: self first, ascending distances, true distances, cosine zero rows', () => {
    const n = 600;
    const dims = 12;
    const k = 10;
    for (const metric of ['euclidean', 'cosine'] as const) {
      const x = gaussianClusters(n, dims, 6, 2, 3, metric === 'cosine');
      x.fill(0, 0, 2 * dims); // two dead rows
      const got = nnDescent(x, dims, n, k, metric, { rand: mulberry32(1) });
      expect(got.indices.length).toBe(n * k);
      for (let i = 0; i < n; i++) {
        expect(got.indices[i * k]).toBe(i);
        expect(got.distances[i * k]).toBe(0);
        expect(new Set(got.indices.subarray(i * k, (i + 1) * k)).size).toBe(k);
        for (let t = 1; t < k; t++) {
          const j = got.indices[i * k + t]!;
          expect(got.distances[i * k + t]!).toBeGreaterThanOrEqual(got.distances[i * k + t - 1]!);
          expect(Math.abs(got.distances[i * k + t]! - refDist(x, dims, i, j, metric))).toBeLessThan(1e-5);
        }
      }
      if (metric === 'cosine') {
        expect(got.indices[1]).toBe(1); // the other dead row, at 0; every live row at 1
        expect(Array.from(got.distances.subarray(0, 3))).toEqual([0, 0, 1]);
      }
      // small and well separated: NN-descent finds (nearly) everything
      expect(recall(knn(x, dims, n, k, metric).indices, got.indices, n, k)).toBeGreaterThan(0.99);
    }
  });

  it('is deterministic for a seed, and handles k = n and k = 1', () => {
    const x = gaussianClusters(400, 8, 4, 1, 5);
    const a = nnDescent(x, 8, 400, 15, 'euclidean', { rand: mulberry32(9) });
    const b = nnDescent(x, 8, 400, 15, 'euclidean', { rand: mulberry32(9) });
    expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
    expect(Array.from(a.distances)).toEqual(Array.from(b.distances));
    const all = nnDescent(x.subarray(0, 12 * 8), 8, 12, 12, 'cosine', { rand: mulberry32(2) });
    for (let i = 0; i < 12; i++) expect(new Set(all.indices.subarray(i * 12, (i + 1) * 12)).size).toBe(12);
    expect(Array.from(nnDescent(x.subarray(0, 5 * 8), 8, 5, 1, 'euclidean', { rand: mulberry32(2) }).indices)).toEqual([0, 1, 2, 3, 4]);
  });

  it('is chosen automatically from approximateFrom(k) points on, and either method can be forced', () => {
    expect(approximateFrom(15)).toBe(35_000);
    expect(chooseKnnMethod(34_999, 15)).toBe('exact');
    expect(chooseKnnMethod(35_000, 15)).toBe('approximate');
    expect(chooseKnnMethod(69_999, 50)).toBe('exact');
    expect(chooseKnnMethod(1_000_000, 50, 'exact')).toBe('exact');
    expect(chooseKnnMethod(100, 15, 'approximate')).toBe('approximate');
    const x = gaussianClusters(300, 6, 3, 1, 8);
    expect(neighbours(x, 6, 300, 10, 'euclidean', { rand: mulberry32(1) }).method).toBe('exact');
    expect(neighbours(x, 6, 300, 10, 'euclidean', { rand: mulberry32(1), method: 'approximate' }).method).toBe('approximate');
  });

  it('recalls ≥ 95 % of the exact 15 neighbours on 50,000 clustered 384-d activation-like points', () => {
    // what UMAP searches: the cosine PCA rows (reduce.ts) of a collected-layer-like cloud
    const n = 50_000;
    const dims = 384;
    const k = 15;
    const red = reduceRows(activationClusters(n, dims, 7), dims, n, 'cosine', 50, 2);
    const exact = knn(red.rows, red.dim, n, k, 'cosine');
    const approx = nnDescent(red.rows, red.dim, n, k, 'cosine', { rand: mulberry32(1) });
    const r = recall(exact.indices, approx.indices, n, k);
    console.log(`NN-descent recall on ${n} clustered points, k = ${k}: ${r.toFixed(4)}`);
    expect(r).toBeGreaterThanOrEqual(0.95);
  });
});

describe('UMAP with the approximate k-NN', () => {
  it('lays out 20,000 clustered points as trustworthily as with the exact k-NN (within 0.01)', async () => {
    const n = 20_000;
    const dims = 64;
    const x = gaussianClusters(n, dims, 20, 0.6, 11);
    const base = { nNeighbors: 15, minDist: 0.1, nComponents: 2, seed: 4, metric: 'euclidean' as const, nEpochs: 150 };
    const methods: string[] = [];
    const exact = await umap(x, dims, n, { ...base, knnMethod: 'exact', onKnnMethod: (m) => methods.push(m) });
    const approx = await umap(x, dims, n, { ...base, knnMethod: 'approximate', onKnnMethod: (m) => methods.push(m) });
    expect(methods).toEqual(['exact', 'approximate']);
    const rand = mulberry32(3);
    const samples = Int32Array.from({ length: 400 }, () => Math.floor(rand() * n));
    const tExact = sampledTrust(x, dims, n, exact, 'euclidean', samples);
    const tApprox = sampledTrust(x, dims, n, approx, 'euclidean', samples);
    console.log(`trustworthiness (k = 10, 400 sampled points): exact k-NN ${tExact.toFixed(4)}, NN-descent ${tApprox.toFixed(4)}`);
    expect(Math.abs(tApprox - tExact)).toBeLessThanOrEqual(0.01);
  });

  it('is deterministic for a seed and reports its progress', async () => {
    const x = gaussianClusters(3000, 16, 5, 1, 2);
    const steps: number[] = [];
    const opts = { nNeighbors: 10, minDist: 0.1, nComponents: 2, seed: 1, metric: 'cosine' as const, nEpochs: 20, knnMethod: 'approximate' as const };
    const a = await umap(x, 16, 3000, { ...opts, onKnnStep: (s, t) => steps.push(s / t) });
    const b = await umap(x, 16, 3000, opts);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(steps.length).toBeGreaterThan(3);
    expect(steps[steps.length - 1]).toBe(1);
    for (let s = 1; s < steps.length; s++) expect(steps[s]!).toBeGreaterThan(steps[s - 1]!);
  });
});
