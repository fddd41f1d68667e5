import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/engine/backend.js';
import { refDist } from '../helpers/distance.js';
import { umapLayout, type Metric } from '../../src/atlas/layout.js';
import { defaultEpochs, umap } from '../../src/atlas/umap/index.js';
import { knn } from '../../src/atlas/umap/knn.js';
import { fuzzyUnion, membershipStrengths, pruneGraph, smoothKnnDist } from '../../src/atlas/umap/fuzzy.js';
import { findAB } from '../../src/atlas/umap/curve.js';
import { pcaFit, pcaProject } from '../../src/atlas/umap/pca.js';
import { symmetricEigen } from '../../src/atlas/umap/eigen.js';
import { makePow } from '../../src/atlas/umap/pow.js';
import { mulberry32 } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function uniformRows(n: number, dims: number, seed: number, lo = -0.5): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n * dims }, () => lo + rand());
}

/** `k` Gaussian clusters of `per` points, centres N(0, sep²) per dim, unit noise; optionally ReLU'd (non-negative, some zeros). */
function clusters(opts: { k: number; per: number; dims: number; sep: number; seed: number; relu?: boolean }) {
  const { k, per, dims, sep } = opts;
  const g = gaussian(mulberry32(opts.seed));
  const n = k * per;
  const centres = Array.from({ length: k }, () => Float32Array.from({ length: dims }, () => sep * g()));
  const acts = new Float32Array(n * dims);
  const label = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % k;
    label[i] = c;
    for (let d = 0; d < dims; d++) {
      const v = centres[c]![d]! + g();
      acts[i * dims + d] = opts.relu ? Math.max(0, v) : v;
    }
  }
  return { acts, label, n };
}


/** Brute-force k-NN: self first, then by (distance, index). */
function bruteKnn(x: Float32Array, dims: number, n: number, k: number, metric: Metric) {
  const indices = new Int32Array(n * k);
  const distances = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const others = Array.from({ length: n }, (_, j) => j)
      .filter((j) => j !== i)
      .map((j) => [refDist(x, dims, i, j, metric), j] as const)
      .sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    indices[i * k] = i;
    for (let t = 1; t < k; t++) {
      indices[i * k + t] = others[t - 1]![1];
      distances[i * k + t] = others[t - 1]![0];
    }
  }
  return { indices, distances };
}

/**
 * Trustworthiness (Venna & Kaski) at k: penalises layout neighbours that are far in the input,
 * by how far (their input rank beyond k); 1 = every layout neighbourhood is an input one.
 * Also the leave-one-out k-NN label accuracy in the layout (majority of k, ties → lower label).
 */
function layoutQuality(x: Float32Array, dims: number, n: number, label: Int32Array, xy: Float32Array, metric: Metric, k = 10) {
  let penalty = 0;
  let correct = 0;
  const row = new Float64Array(n);
  const emb = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[j] = j === i ? Infinity : refDist(x, dims, i, j, metric);
    const kth = Float64Array.from(row).sort()[k - 1]!;
    for (let j = 0; j < n; j++) emb[j] = j === i ? Infinity : (xy[2 * i]! - xy[2 * j]!) ** 2 + (xy[2 * i + 1]! - xy[2 * j + 1]!) ** 2;
    // the k nearest in the layout, by (distance, index)
    const near: number[] = [];
    for (let j = 0; j < n; j++) {
      if (near.length === k && emb[j]! >= emb[near[k - 1]!]!) continue;
      let p = near.length === k ? k - 1 : near.length;
      while (p > 0 && emb[near[p - 1]!]! > emb[j]!) p--;
      near.splice(p, 0, j);
      if (near.length > k) near.pop();
    }
    const votes = new Map<number, number>();
    for (const j of near) {
      votes.set(label[j]!, (votes.get(label[j]!) ?? 0) + 1);
      if (row[j]! <= kth) continue;
      let rank = 1;
      for (let l = 0; l < n; l++) if (row[l]! < row[j]!) rank++;
      penalty += rank - k;
    }
    let best = -1;
    let bestVotes = -1;
    for (const [c, v] of votes) if (v > bestVotes || (v === bestVotes && c < best)) [best, bestVotes] = [c, v];
    if (best === label[i]) correct++;
  }
  return { trust: 1 - (2 / (n * k * (2 * n - 3 * k - 1))) * penalty, knnAcc: correct / n };
}

describe('findAB (umap-learn find_ab_params)', () => {
  it('matches umap-learn 0.5 for min_dist 0.1 and 0.001 (spread 1)', () => {
    // reference values: umap.umap_.find_ab_params(1.0, min_dist) with umap-learn 0.5.3 / scipy
    const r1 = findAB(0.1);
    expect(Math.abs(r1.a - 1.5769434601962196)).toBeLessThan(1e-5);
    expect(Math.abs(r1.b - 0.8950608779914887)).toBeLessThan(1e-5);
    const r2 = findAB(0.001);
    expect(Math.abs(r2.a - 1.9290733952004866)).toBeLessThan(1e-5);
    expect(Math.abs(r2.b - 0.7915045329560677)).toBeLessThan(1e-5);
    const r3 = findAB(0.5);
    expect(Math.abs(r3.a - 0.583030020479462)).toBeLessThan(1e-5);
    expect(Math.abs(r3.b - 1.3341669929263487)).toBeLessThan(1e-5);
  });
});

describe('fast pow', () => {
  it('agrees with Math.pow to 2e-7 relative, and falls back outside float32 range', () => {
    for (const b of [0.7915, 0.895, 1.334]) {
      const p = makePow(b);
      const rand = mulberry32(1);
      for (let t = 0; t < 20000; t++) {
        const x = Math.exp(40 * rand() - 20);
        expect(Math.abs(p(x) / Math.pow(x, b) - 1)).toBeLessThan(2e-7);
      }
      expect(p(0)).toBe(0);
      expect(p(1e-40)).toBe(Math.pow(1e-40, b));
      expect(p(1)).toBe(1);
    }
  });
});

describe('symmetricEigen and PCA', () => {
  it('solves random symmetric matrices: A·v = λ·v, orthonormal vectors, values descending', () => {
    for (const d of [1, 2, 7, 60]) {
      const rand = mulberry32(d);
      const a = new Float64Array(d * d);
      for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) a[i * d + j] = a[j * d + i] = rand() - 0.5;
      const { values, vectors } = symmetricEigen(a, d);
      for (let r = 0; r < d; r++) {
        if (r > 0) expect(values[r]!).toBeLessThanOrEqual(values[r - 1]!);
        for (let i = 0; i < d; i++) {
          let av = 0;
          for (let j = 0; j < d; j++) av += a[i * d + j]! * vectors[r * d + j]!;
          expect(Math.abs(av - values[r]! * vectors[r * d + i]!)).toBeLessThan(1e-12);
        }
        for (let q = 0; q < d; q++) {
          let dot = 0;
          for (let j = 0; j < d; j++) dot += vectors[r * d + j]! * vectors[q * d + j]!;
          expect(Math.abs(dot - (q === r ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('fits PCA to three points in 384 dimensions with a third of the channels dead (a rank-2 covariance)', () => {
    // The real case that stopped `atlas` with "QL iteration did not converge": the float32 covariance of 3 ReLU
    // activation vectors leaves a block of roundoff-sized entries after the reduction.
    const dims = 384;
    const rand = mulberry32(11);
    const x = new Float32Array(3 * dims);
    for (let i = 0; i < 3; i++) for (let c = 0; c < dims; c++) x[i * dims + c] = c % 3 === 0 ? 0 : Math.max(0, rand() - 0.3) * 0.2;
    const fit = pcaFit(x, dims, 3, 50);
    expect(fit.variances[0]!).toBeGreaterThan(fit.variances[1]!);
    expect(fit.variances[1]!).toBeGreaterThan(0);
    // Rank 2: everything after the second axis is nothing, up to the float32 covariance.
    for (let k = 2; k < 50; k++) expect(fit.variances[k]!).toBeLessThan(1e-6 * fit.variances[0]!); // float32 accumulation
  });

  it('recovers rank-3 data exactly, with the variances in descending order', () => {
    const n = 600;
    const dims = 40;
    const g = gaussian(mulberry32(4));
    const basis = Array.from({ length: 3 }, () => Float64Array.from({ length: dims }, g));
    const mean = Float64Array.from({ length: dims }, () => 5 + g());
    const scales = [4, 2, 1];
    const x = new Float32Array(n * dims);
    for (let i = 0; i < n; i++) {
      const z = scales.map((s) => s * g());
      for (let d = 0; d < dims; d++) x[i * dims + d] = mean[d]! + z[0]! * basis[0]![d]! + z[1]! * basis[1]![d]! + z[2]! * basis[2]![d]!;
    }
    const fit = pcaFit(x, dims, n, 5, { blockRows: 128 });
    expect(fit.variances[0]!).toBeGreaterThan(fit.variances[1]!);
    expect(fit.variances[1]!).toBeGreaterThan(fit.variances[2]!);
    expect(fit.variances[3]! / fit.variances[0]!).toBeLessThan(1e-6); // nothing beyond rank 3
    const p = pcaProject(fit, x, n, 3);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < dims; d++) {
        let v = fit.mean[d]!;
        for (let c = 0; c < 3; c++) v += p[i * 3 + c]! * fit.components[c * dims + d]!;
        worst = Math.max(worst, Math.abs(v - x[i * dims + d]!));
      }
    }
    expect(worst).toBeLessThan(1e-3); // float32 data of magnitude ~20
  });
});

describe('exact k-NN', () => {
  /** Random rows with zero rows (0–2) and duplicates (row 5 = rows 17, 40, 41; row 9 = row 3). */
  function awkwardRows(n: number, dims: number, seed: number) {
    const x = uniformRows(n, dims, seed);
    x.fill(0, 0, 3 * dims);
    for (const r of [17, 40, 41]) x.copyWithin(r * dims, 5 * dims, 6 * dims);
    x.copyWithin(9 * dims, 3 * dims, 4 * dims);
    return x;
  }

  for (const metric of ['euclidean', 'cosine'] as const) {
    it(`equals brute force (${metric}; zero and duplicate rows; ties by lower index), whatever the block size`, () => {
      const n = 257;
      const dims = 12;
      const k = 10;
      const x = awkwardRows(n, dims, metric === 'cosine' ? 1 : 2);
      const ref = bruteKnn(x, dims, n, k, metric);
      for (const blockSize of [8, 64, undefined]) {
        const got = knn(x, dims, n, k, metric, blockSize ? { blockSize } : {});
        expect(Array.from(got.indices)).toEqual(Array.from(ref.indices));
        for (let t = 0; t < n * k; t++) expect(Math.abs(got.distances[t]! - ref.distances[t]!)).toBeLessThan(1e-6);
      }
      const got = knn(x, dims, n, k, metric);
      // duplicates of row 5 follow it in index order
      expect(Array.from(got.indices.subarray(5 * k, 5 * k + 4))).toEqual([5, 17, 40, 41]);
      if (metric === 'cosine') {
        // zero rows: each other at 0, everyone else at 1 (lowest indices first)
        expect(Array.from(got.indices.subarray(0, 5))).toEqual([0, 1, 2, 3, 4]);
        expect(Array.from(got.distances.subarray(0, 5))).toEqual([0, 0, 0, 1, 1]);
      }
    });
  }

  it('gives the same result on the cpu backend (scores read with dataSync instead of a wasm heap view)', async () => {
    const x = awkwardRows(200, 9, 3);
    const onWasm = knn(x, 9, 200, 12, 'cosine', { blockSize: 48 });
    await tf.setBackend('cpu');
    try {
      const onCpu = knn(x, 9, 200, 12, 'cosine', { blockSize: 48 });
      expect(Array.from(onCpu.indices)).toEqual(Array.from(onWasm.indices));
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('handles k = n (everyone) and k = 1 (self only)', () => {
    const x = uniformRows(6, 3, 7);
    const all = knn(x, 3, 6, 6, 'euclidean');
    expect(new Set(all.indices.subarray(6, 12)).size).toBe(6);
    expect(Array.from(knn(x, 3, 6, 1, 'cosine').indices)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('fuzzy simplicial set', () => {
  const n = 300;
  const dims = 8;
  const k = 15;
  const x = uniformRows(n, dims, 11);
  x.copyWithin(7 * dims, 6 * dims, 7 * dims); // a duplicate: distance 0 is not rho

  it('smooth_knn_dist: Σ exp(−(d − rho)/sigma) over the non-self neighbours is log2(k); rho is the nearest positive distance', () => {
    const nn = knn(x, dims, n, k, 'euclidean');
    const { sigmas, rhos } = smoothKnnDist(nn, n);
    for (let i = 0; i < n; i++) {
      const d = nn.distances.subarray(i * k, (i + 1) * k);
      expect(rhos[i]).toBe(Array.from(d).filter((v) => v > 0)[0]);
      let sum = 0;
      for (let j = 1; j < k; j++) sum += Math.exp(-Math.max(0, d[j]! - rhos[i]!) / sigmas[i]!);
      expect(Math.abs(sum - Math.log2(k))).toBeLessThan(1e-4);
    }
  });

  it('is the fuzzy union a + b − ab of the directed memberships, symmetric, row-major, without self loops', () => {
    const nn = knn(x, dims, n, k, 'euclidean');
    const { sigmas, rhos } = smoothKnnDist(nn, n);
    const vals = membershipStrengths(nn, n, sigmas, rhos);
    const dense = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let s = 0; s < k; s++) dense[i * n + nn.indices[i * k + s]!] = vals[i * k + s]!;
    const g = fuzzyUnion(nn, n, vals);
    const seen = new Map<number, number>();
    for (let e = 0; e < g.head.length; e++) {
      const [i, j] = [g.head[e]!, g.tail[e]!];
      if (e > 0) expect(g.head[e - 1]! < i || (g.head[e - 1] === i && g.tail[e - 1]! < j)).toBe(true);
      expect(i).not.toBe(j);
      const a = dense[i * n + j]!;
      const b = dense[j * n + i]!;
      expect(g.weight[e]!).toBeCloseTo(a + b - a * b, 6);
      seen.set(i * n + j, g.weight[e]!);
    }
    for (const [key, w] of seen) expect(seen.get((key % n) * n + Math.floor(key / n))).toBe(w);
    let expected = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j && (dense[i * n + j]! > 0 || dense[j * n + i]! > 0)) expected++;
    expect(g.head.length).toBe(expected);
    const pruned = pruneGraph(g, 500);
    const max = Math.max(...g.weight);
    expect(pruned.weight.every((w) => w >= max / 500)).toBe(true);
  });
});

describe('umap (native)', () => {
  const base = { nNeighbors: 15, minDist: 0.1, nComponents: 2, seed: 1, metric: 'euclidean' as const, nEpochs: 60 };

  it('is deterministic for a seed, and the seed matters', async () => {
    const { acts } = clusters({ k: 4, per: 60, dims: 64, sep: 1, seed: 3 });
    const a = await umap(acts, 64, 240, base);
    const b = await umap(acts, 64, 240, base);
    const c = await umap(acts, 64, 240, { ...base, seed: 2 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('leaks no tensors (PCA, k-NN) and reports each phase', async () => {
    const { acts } = clusters({ k: 3, per: 50, dims: 80, sep: 1, seed: 4, relu: true });
    await umap(acts, 80, 150, { ...base, nEpochs: 5 }); // warm up (backend kernels, caches)
    const before = tf.memory().numTensors;
    const phases: string[] = [];
    for (const metric of ['cosine', 'euclidean'] as const) {
      await umap(acts, 80, 150, { ...base, metric, nEpochs: 5, onPhase: (p) => phases.push(p) });
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(phases).toEqual(['pca', 'knn', 'graph', 'init', 'optimise', 'pca', 'knn', 'graph', 'init', 'optimise']);
  });

  it('uses umap-learn\'s epoch default and refuses non-finite input', async () => {
    expect(defaultEpochs(10_000)).toBe(500);
    expect(defaultEpochs(10_001)).toBe(200);
    const acts = uniformRows(20, 4, 1);
    acts[13] = NaN;
    await expect(umap(acts, 4, 20, base)).rejects.toThrow(/non-finite value in row 3/);
  });
});

describe('layout quality: native vs umap-js (same options)', () => {
  // 10 Gaussian clusters × 150 points in 128-D. Trustworthiness at k = 10 in the input metric,
  // and 10-NN label accuracy in the layout; native must be within 3 points of umap-js.
  const cases = [
    { name: 'separated', sep: 1, relu: false },
    { name: 'overlapping, ReLU-like', sep: 0.35, relu: true },
  ];
  for (const c of cases) {
    for (const metric of ['euclidean', 'cosine'] as const) {
      it(`${c.name} clusters, ${metric}`, async () => {
        const dims = 128;
        const { acts, label, n } = clusters({ k: 10, per: 150, dims, sep: c.sep, seed: 5, relu: c.relu });
        const opts = { nNeighbors: 15, minDist: 0.1, nComponents: 2 as const, seed: 3, metric, nEpochs: 200 };
        const native = layoutQuality(acts, dims, n, label, await umapLayout(acts, dims, n, opts), metric);
        const ref = layoutQuality(acts, dims, n, label, await umapLayout(acts, dims, n, { ...opts, implementation: 'umap-js' }), metric);
        console.log(`quality ${c.name} ${metric}: trustworthiness native ${native.trust.toFixed(4)} vs umap-js ${ref.trust.toFixed(4)}; 10-NN accuracy native ${native.knnAcc.toFixed(4)} vs umap-js ${ref.knnAcc.toFixed(4)}`);
        expect(native.trust).toBeGreaterThan(ref.trust - 0.03);
        expect(native.knnAcc).toBeGreaterThan(ref.knnAcc - 0.03);
        if (c.sep >= 1) expect(native.knnAcc).toBeGreaterThan(0.98);
      });
    }
  }
});
