import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.js';
import { className, num, readFormat, writeFormat, type ClassName, type Format, type ReadOptions } from './file.js';
import { producer, producerSchema } from './producer.js';

/**
 * results.json (+ results.csv): one evaluation of patches pasted on images, as `evaluate`, the `run`
 * pipeline and each `audit` check write it. Every metric is kept with the raw success matrix
 * (placements × images) it was derived from, so rates can be recomputed or re-cut later.
 *
 * Version 2 adds `format` and `producer`, records the noise control (`noise`) and the held-out split
 * (`split`) in one shape whoever wrote the file; version-1 files (no format field) are upgraded on read.
 * Non-finite numbers (a rate over no images) are written as null.
 */
export const EVALUATION_FORMAT = 'patch-atlas-evaluation/2';
export const EVALUATION_FILE = 'results.json';

const proportion = z.object({ k: z.number(), n: z.number(), p: num, lo: num, hi: num });
const meanInterval = z.object({ n: z.number(), mean: num, lo: num, hi: num });
const targetProbability = z.object({ before: num, after: num, change: meanInterval });
const placementMetrics = z.object({ placement: z.string(), targeted: proportion, untargeted: proportion, universal: proportion, pTarget: targetProbability });
const patchMetrics = z.object({
  images: z.number(),
  correctBefore: z.number(),
  notTargetBefore: z.number(),
  placements: z.array(placementMetrics),
  static: z.object({ placement: z.string(), targeted: proportion, untargeted: proportion, pTarget: targetProbability }),
  dynamic: z.object({ targeted: proportion, untargeted: proportion, universal: proportion, pTarget: targetProbability }),
  universal: z.object({ static: z.object({ placement: z.string(), rate: proportion }), dynamic: proportion }),
});
/** Metrics as read back: a rate over no images is null where the evaluation had NaN. */
export type StoredMetrics = z.infer<typeof patchMetrics>;
export type StoredProportion = z.infer<typeof proportion>;

const matrix = z.object({
  placements: z.array(z.string()),
  clean: z.object({ pred: z.array(z.number()), correct: z.array(z.number()), pTarget: z.array(num) }),
  patched: z.array(z.object({ pred: z.array(z.number()), pTarget: z.array(num) })),
});

const evaluationSchema = z.object({
  format: z.literal(EVALUATION_FORMAT),
  producer: producerSchema,
  model: z.string(),
  /** The audit check this evaluation belongs to, if any. */
  check: z.string().optional(),
  /** null: universal (every image not of the target counts). */
  source: className.nullable(),
  target: className,
  /** Patch sides as fractions of the image side, and where they were pasted. */
  sizes: z.array(z.number()),
  positions: z.array(z.string()),
  circular: z.boolean(),
  /** The generated noise control: its name in `patches`, side and seed (null: none was measured). */
  noise: z.object({ name: z.string(), patchPx: z.number().int(), seed: z.number() }).nullable(),
  /** Held-out images only: the split file, or the split `run` made (fraction and seed); null: all images. */
  split: z.object({ file: z.string().nullable(), testFraction: z.number().nullable(), seed: z.number().nullable(), candidates: z.number().nullable() }).nullable(),
  images: z.array(z.string()),
  skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  patches: z.array(z.object({ patch: z.string(), metrics: patchMetrics, matrix: matrix.optional() })),
});
export type EvaluationFile = z.infer<typeof evaluationSchema>;

/** What the writer is told besides the result: everything but format, producer and the result's own fields. */
export type EvaluationMeta = Omit<EvaluationFile, 'format' | 'producer' | 'images' | 'skipped' | 'patches'>;

/** A success matrix as the evaluation block builds it (typed arrays), for the writer. */
interface MatrixData {
  placements: string[];
  clean: { pred: ArrayLike<number>; correct: ArrayLike<number>; pTarget: ArrayLike<number> };
  patched: Array<{ pred: ArrayLike<number>; pTarget: ArrayLike<number> }>;
}

/** What the evaluation block returns (src/evaluate/evaluate-patches.ts): its metrics may hold NaN. */
export interface EvaluationResult {
  images: string[];
  skipped: Array<{ path: string; reason: string }>;
  results: Array<{ patch: string; matrix: MatrixData; metrics: StoredMetrics }>;
}

/** Version 1 split: a file path (evaluate, audit), the run's split object, or null. */
function upgradeSplit(s: unknown): EvaluationFile['split'] {
  if (typeof s === 'string') return { file: s, testFraction: null, seed: null, candidates: null };
  if (s && typeof s === 'object') {
    const o = s as { testFraction?: number; seed?: number; candidates?: number };
    return { file: null, testFraction: o.testFraction ?? null, seed: o.seed ?? null, candidates: o.candidates ?? null };
  }
  return null;
}

export const evaluationFormat: Format<EvaluationFile> = {
  what: 'a results.json written by `patch-atlas evaluate`',
  file: EVALUATION_FILE,
  version: EVALUATION_FORMAT,
  schema: evaluationSchema,
  hint: 'write one with `patch-atlas evaluate`',
  unversioned: {
    test: (raw) => Array.isArray(raw.patches) && typeof raw.target === 'object',
    upgrade: (raw) => {
      const { seed, split, ...rest } = raw as Record<string, unknown> & { seed?: number };
      const names = Array.isArray(raw.patches) ? (raw.patches as Array<{ patch?: unknown }>).map((p) => p.patch) : [];
      const noise = names.find((n): n is string => typeof n === 'string' && /^noise(-control)?(-\d+)?$/.test(n));
      return {
        ...rest,
        format: EVALUATION_FORMAT,
        producer: { tool: 'patch-atlas', version: 'unknown', model: typeof raw.model === 'string' ? raw.model : null, engine: 'unknown', threads: 0 },
        noise: noise ? { name: noise, patchPx: 64, seed: seed ?? 0 } : null,
        split: upgradeSplit(split),
      };
    },
  },
};

export function readEvaluation(path: string, o: ReadOptions = {}): EvaluationFile {
  return readFormat(evaluationFormat, path, o);
}

/** results.json (everything, with the per-image success matrices) and results.csv (one row per patch × placement) in `dir`. */
export async function writeEvaluation(dir: string, meta: EvaluationMeta, r: EvaluationResult): Promise<{ json: string; csv: string }> {
  const json = join(dir, EVALUATION_FILE);
  const csv = join(dir, 'results.csv');
  // Through JSON once: NaN becomes null, as the schema (and every reader) expects.
  const patches = JSON.parse(JSON.stringify(r.results.map((p) => ({
    patch: p.patch,
    metrics: p.metrics,
    matrix: {
      placements: p.matrix.placements,
      clean: { pred: Array.from(p.matrix.clean.pred), correct: Array.from(p.matrix.clean.correct), pTarget: Array.from(p.matrix.clean.pTarget) },
      patched: p.matrix.patched.map((row) => ({ pred: Array.from(row.pred), pTarget: Array.from(row.pTarget) })),
    },
  })))) as EvaluationFile['patches'];
  await writeFormat(evaluationFormat, json, { format: EVALUATION_FORMAT, producer: producer(meta.model), ...meta, images: r.images, skipped: r.skipped, patches });
  await writeFileAtomic(csv, resultsCsv(r));
  return { json, csv };
}

const csvCell = (v: string | number | null) => (v === null ? '' : typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

function resultsCsv(r: EvaluationResult): string {
  const head = ['patch', 'placement', 'images', 'correct_before', 'targeted_k', 'targeted', 'targeted_lo', 'targeted_hi', 'untargeted', 'universal_k', 'universal_n', 'universal', 'universal_lo', 'universal_hi', 'p_target_before', 'p_target_after'];
  const prop = (p: StoredProportion) => [p.k, p.p, p.lo, p.hi];
  const rows: Array<Array<string | number | null>> = [];
  for (const p of r.results) {
    const m = p.metrics;
    for (const pl of m.placements) {
      rows.push([p.patch, pl.placement, m.images, m.correctBefore, ...prop(pl.targeted), pl.untargeted.p, pl.universal.k, pl.universal.n, pl.universal.p, pl.universal.lo, pl.universal.hi, pl.pTarget.before, pl.pTarget.after]);
    }
    const d = m.dynamic;
    rows.push([p.patch, 'dynamic', m.images, m.correctBefore, ...prop(d.targeted), d.untargeted.p, d.universal.k, d.universal.n, d.universal.p, d.universal.lo, d.universal.hi, d.pTarget.before, d.pTarget.after]);
  }
  return [head, ...rows].map((row) => row.map(csvCell).join(',')).join('\n') + '\n';
}

export type { ClassName };
