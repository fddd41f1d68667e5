/**
 * Which k-NN search a UMAP run uses. The exact search (knn.ts) costs ~n² and is the quality
 * reference; NN-descent (nndescent.ts) costs ~n·log n but misses a few neighbours. `auto` takes
 * the exact search while it is cheap and NN-descent once it measurably wins.
 */
import { knn, type Knn, type KnnMetric } from './knn.js';
import { nnDescent, type NnDescentOptions } from './nndescent.js';

export type KnnMethod = 'auto' | 'exact' | 'approximate';

/**
 * Smallest n at which `auto` switches to NN-descent for k neighbours: 20,000 + 1,000·k (35,000
 * at k = 15, 70,000 at k = 50). Measured on 2 cores on 50-d PCA rows, 50,000 points: exact 9–11 s
 * whatever k; NN-descent 6–8 s at k = 15 and ~14 s at k = 50 (its join grows with k), so the
 * crossover sits near 30,000 points at k = 15 and 65,000 at k = 50; the rule errs towards exact.
 */
export function approximateFrom(k: number): number {
  return 20_000 + 1_000 * k;
}

/** The method `method` stands for at n points and k neighbours ('auto' → by approximateFrom). */
export function chooseKnnMethod(n: number, k: number, method: KnnMethod = 'auto'): 'exact' | 'approximate' {
  if (method !== 'auto') return method;
  return n >= approximateFrom(k) ? 'approximate' : 'exact';
}

export interface NeighboursOptions {
  /** Default 'auto'. */
  method?: KnnMethod;
  /** Seeded uniform [0, 1) generator for NN-descent (the exact search draws nothing). */
  rand: () => number;
  /** NN-descent tuning (see NnDescentOptions); ignored by the exact search. */
  nnDescent?: Omit<NnDescentOptions, 'rand' | 'onStep'>;
  /** NN-descent progress: (step, total) over its trees and rounds. */
  onStep?: (step: number, total: number) => void;
}

/**
 * k nearest neighbours (self first) of the n rows of `rows` ([n × dim] row-major) by the chosen
 * method; both return the same Knn layout ([n × k] indices and distances, ascending).
 */
export function neighbours(rows: Float32Array, dim: number, n: number, k: number, metric: KnnMetric, opts: NeighboursOptions): { knn: Knn; method: 'exact' | 'approximate' } {
  const method = chooseKnnMethod(n, k, opts.method);
  if (method === 'exact') return { knn: knn(rows, dim, n, k, metric), method };
  const nn = nnDescent(rows, dim, n, k, metric, { ...opts.nnDescent, rand: opts.rand, ...(opts.onStep ? { onStep: opts.onStep } : {}) });
  return { knn: nn, method };
}
