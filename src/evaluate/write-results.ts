import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import type { EvaluatePatchesResult } from './evaluate-patches.js';
import type { Proportion } from './metrics.js';

const csvCell = (v: string | number) => (typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** results.json (everything, incl. per-image success matrices) and results.csv (one row per patch × placement). */
export async function writeEvaluation(dir: string, meta: Record<string, unknown>, r: EvaluatePatchesResult): Promise<{ json: string; csv: string }> {
  const json = join(dir, 'results.json');
  const csv = join(dir, 'results.csv');
  await writeJsonAtomic(json, {
    ...meta,
    images: r.images,
    skipped: r.skipped,
    patches: r.results.map((p) => ({
      patch: p.patch,
      metrics: p.metrics,
      matrix: {
        placements: p.matrix.placements,
        clean: { pred: Array.from(p.matrix.clean.pred), correct: Array.from(p.matrix.clean.correct), pTarget: Array.from(p.matrix.clean.pTarget) },
        patched: p.matrix.patched.map((row) => ({ pred: Array.from(row.pred), pTarget: Array.from(row.pTarget) })),
      },
    })),
  });
  const head = ['patch', 'placement', 'images', 'correct_before', 'targeted_k', 'targeted', 'targeted_lo', 'targeted_hi', 'untargeted', 'universal_k', 'universal_n', 'universal', 'universal_lo', 'universal_hi', 'p_target_before', 'p_target_after'];
  const prop = (p: Proportion) => [p.k, p.p, p.lo, p.hi];
  const rows: Array<Array<string | number>> = [];
  for (const p of r.results) {
    const m = p.metrics;
    for (const pl of m.placements) {
      rows.push([p.patch, pl.placement, m.images, m.correctBefore, ...prop(pl.targeted), pl.untargeted.p, pl.universal.k, pl.universal.n, pl.universal.p, pl.universal.lo, pl.universal.hi, pl.pTarget.before, pl.pTarget.after]);
    }
    const d = m.dynamic;
    rows.push([p.patch, 'dynamic', m.images, m.correctBefore, ...prop(d.targeted), d.untargeted.p, d.universal.k, d.universal.n, d.universal.p, d.universal.lo, d.universal.hi, d.pTarget.before, d.pTarget.after]);
  }
  await writeFileAtomic(csv, [head, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n');
  return { json, csv };
}
