/**
 * Our UMAP: PCA → k-NN (exact blocked matMul, or NN-descent for large inputs) → fuzzy simplicial
 * set → PCA init → SGD.
 * Follows umap-learn's algorithm and defaults (citations in each file); replaces umap-js, whose
 * NN-descent and per-point arrays took 772 s and 4.5 GB for 50,000 × 512 points.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../engine/index.js';
import { mulberry32 } from '../../util/random.js';
import { findAB } from './curve.js';
import { fuzzyUnion, membershipStrengths, pruneGraph, smoothKnnDist } from './fuzzy.js';
import { pcaInit } from './init.js';
import type { KnnMetric } from './knn.js';
import { neighbours, type KnnMethod } from './neighbours.js';
import { optimiseLayout } from './optimise.js';
import { reduceRows } from './reduce.js';

export type UmapPhase = 'pca' | 'knn' | 'graph' | 'init' | 'optimise';

export interface FastUmapOptions {
  /** Neighbours per point including itself (umap-learn n_neighbors); 2 ≤ nNeighbors ≤ n. */
  nNeighbors: number;
  minDist: number;
  /** umap-learn default 1. */
  spread?: number;
  nComponents: number;
  metric: KnnMetric;
  seed: number;
  /** Default as umap-learn: 500 for n ≤ 10,000, else 200. */
  nEpochs?: number;
  /** PCA dims for the k-NN search (default 50); rows with ≤ pcaDims dims are used as they are. */
  pcaDims?: number;
  negativeSampleRate?: number;
  /**
   * k-NN search: 'exact' (all pairs; the quality reference), 'approximate' (NN-descent from
   * RP trees, ~n·log n), or 'auto' (default: exact below approximateFrom(k) points, 35,000 at
   * k = 15, else approximate). Either way the same seed gives the same output.
   */
  knnMethod?: KnnMethod;
  /** NN-descent progress, (step, total) over its trees and rounds; the exact search calls it never. */
  onKnnStep?: (step: number, total: number) => void;
  /** The k-NN method actually used (after resolving 'auto'). */
  onKnnMethod?: (method: 'exact' | 'approximate') => void;
  onEpoch?: (epoch: number, total: number) => void;
  /** Wall time of each phase as it completes. */
  onPhase?: (phase: UmapPhase, ms: number) => void;
}

// any constant works; it only separates the k-NN's random stream from the init/SGD one
const KNN_SEED_SALT = 0x9e3779b9;

/** umap-learn's epoch default. */
export function defaultEpochs(n: number): number {
  return n <= 10_000 ? 500 : 200;
}

/** UMAP of the n rows of `acts` ([n × dims] row-major) → [n × nComponents]. Same seed, same output. */
export async function umap(acts: Float32Array, dims: number, n: number, opts: FastUmapOptions): Promise<Float32Array> {
  if (acts.length !== n * dims) throw new Error(`umap: acts has ${acts.length} values, expected ${n} × ${dims}`);
  const k = opts.nNeighbors;
  if (!(Number.isInteger(k) && k >= 2 && k <= n)) throw new Error(`umap: nNeighbors ${k} must be an integer in 2..${n}`);
  for (let t = 0; t < acts.length; t++) {
    if (!Number.isFinite(acts[t])) throw new Error(`umap: non-finite value in row ${Math.floor(t / dims)}`);
  }
  // The k-NN and PCA products need a tensor backend: keep whichever one the caller chose (and
  // let a pending async initialisation finish), else start the default one.
  if (tf.engine().backendName) await tf.ready();
  else await initBackend();

  const nc = opts.nComponents;
  const nEpochs = opts.nEpochs ?? defaultEpochs(n);
  const rand = mulberry32(opts.seed);
  let t0 = performance.now();
  const phase = (name: UmapPhase): void => {
    const t = performance.now();
    opts.onPhase?.(name, t - t0);
    t0 = t;
  };

  const red = reduceRows(acts, dims, n, opts.metric, opts.pcaDims ?? 50, nc);
  phase('pca');
  // NN-descent draws from its own stream, so init and SGD see the same draws whichever search ran
  const found = neighbours(red.rows, red.dim, n, k, opts.metric, {
    rand: mulberry32((opts.seed ^ KNN_SEED_SALT) >>> 0),
    ...(opts.knnMethod ? { method: opts.knnMethod } : {}),
    ...(opts.onKnnStep ? { onStep: opts.onKnnStep } : {}),
  });
  const nn = found.knn;
  opts.onKnnMethod?.(found.method);
  phase('knn');
  const { sigmas, rhos } = smoothKnnDist(nn, n);
  // umap-learn simplicial_set_embedding prunes by n_epochs, or by the default for very short runs
  const graph = pruneGraph(fuzzyUnion(nn, n, membershipStrengths(nn, n, sigmas, rhos)), nEpochs > 10 ? nEpochs : defaultEpochs(n));
  phase('graph');
  const emb = pcaInit(red.pcs, n, nc, rand);
  const { a, b } = findAB(opts.minDist, opts.spread ?? 1);
  phase('init');
  optimiseLayout(emb, nc, graph, {
    a,
    b,
    nEpochs,
    rand,
    ...(opts.negativeSampleRate ? { negativeSampleRate: opts.negativeSampleRate } : {}),
    ...(opts.onEpoch ? { onEpoch: opts.onEpoch } : {}),
  });
  phase('optimise');
  return Float32Array.from(emb);
}
