/**
 * results.json (from `patch-atlas evaluate`) → the report's patch section: the headline rate of the
 * evaluation's mode per patch and placement, best-per-size series and the position × size table.
 * Pure: images and examples are added by build.ts.
 */
import type { EvaluationFile, StoredMetrics, StoredProportion } from '../formats/evaluation.js';
import type { PatchKind, ProbChange, Rate, ReportPatch, ReportPatches } from '../formats/report.js';
import { parsePlacement } from './format.js';

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function rate(p: StoredProportion): Rate {
  return { k: p.k, n: p.n, p: num(p.p), lo: num(p.lo) ?? 0, hi: num(p.hi) ?? 1 };
}

export function probChange(t: StoredMetrics['dynamic']['pTarget']): ProbChange {
  const c: Partial<StoredMetrics['dynamic']['pTarget']['change']> = t.change ?? {};
  return { n: c.n ?? 0, before: num(t.before), after: num(t.after), change: num(c.mean), lo: num(c.lo), hi: num(c.hi) };
}

/** The generated noise control ('noise', 'noise-3') and the article's 'random' patch. */
export function isNoiseName(name: string): boolean {
  return /^(noise|random)(-\d+)?$/i.test(name);
}

/** A patch file and the `kind` its JSON sidecar gives ('' when it gives none; null: no sidecar). */
export interface PatchFileInfo {
  path: string;
  sidecar: string | null;
}

/**
 * Without the patch file the kind is only known for noise. With it, the sidecar `patch-atlas patch`
 * writes says what the patch is (its 'photo' and 'noise' kinds are controls, 'icon', 'eot' and
 * anything else made from the atlas); a file without a sidecar is a photo.
 */
export function patchKind(name: string, file: PatchFileInfo | null, noiseControl?: string | null): PatchKind {
  // The evaluation names its generated control; files that do not are read by the usual names.
  if ((noiseControl ? name === noiseControl : isNoiseName(name)) || file?.sidecar === 'noise') return 'noise';
  if (!file) return 'unknown';
  return file.sidecar === null || file.sidecar === 'photo' ? 'photo' : 'atlas';
}

export function patchesSection(ev: EvaluationFile, file: string, kinds: ReadonlyMap<string, PatchFileInfo> = new Map()): ReportPatches {
  const mode = ev.source ? 'targeted' : 'universal';
  const order = ev.positions?.length ? ev.positions : [];
  const patches = ev.patches.map((entry): ReportPatch => {
    const m = entry.metrics;
    const headline = (pl: StoredMetrics['placements'][number]) => rate(mode === 'targeted' ? pl.targeted : pl.universal);
    const placements = m.placements.map((pl) => {
      const parsed = parsePlacement(pl.placement);
      return { placement: pl.placement, position: parsed?.position ?? null, size: parsed?.size ?? null, rate: headline(pl), pTarget: probChange(pl.pTarget) };
    });
    const staticId = mode === 'targeted' ? m.static.placement : m.universal.static.placement;
    const staticRate = rate(mode === 'targeted' ? m.static.targeted : m.universal.static.rate);
    const staticEntry = m.placements.find((pl) => pl.placement === staticId);
    const f = kinds.get(entry.patch) ?? null;
    const kind = patchKind(entry.patch, f, ev.noise?.name);
    return {
      name: entry.patch,
      kind,
      made: kind === 'atlas' && f?.sidecar ? f.sidecar : null,
      control: kind === 'noise' || kind === 'photo',
      file: f?.path ?? null,
      image: null,
      denominator: mode === 'targeted' ? m.correctBefore : (m.notTargetBefore ?? staticRate.n),
      static: { placement: staticId, rate: staticRate },
      dynamic: rate(mode === 'targeted' ? m.dynamic.targeted : m.dynamic.universal),
      untargeted: { static: rate(m.static.untargeted), dynamic: rate(m.dynamic.untargeted) },
      pTarget: { static: probChange(staticEntry?.pTarget ?? m.static.pTarget), dynamic: probChange(m.dynamic.pTarget) },
      placements,
      bySize: bySize(placements),
      heat: heat(placements, order),
      example: null,
    };
  });
  return {
    file,
    mode,
    model: ev.model,
    source: ev.source ?? null,
    target: ev.target,
    sizes: ev.sizes ?? [],
    positions: ev.positions ?? [],
    circular: ev.circular ?? false,
    images: ev.images.length,
    skipped: ev.skipped?.length ?? 0,
    patches,
  };
}

type Row = ReportPatch['placements'][number];

/** The best position at each size (most flips, first in order on ties), sizes ascending. */
function bySize(rows: Row[]): ReportPatch['bySize'] {
  const best = new Map<number, Row>();
  for (const r of rows) {
    if (r.size === null) continue;
    const b = best.get(r.size);
    if (!b || r.rate.k > b.rate.k) best.set(r.size, r);
  }
  return [...best.entries()].sort((a, b) => a[0] - b[0]).map(([size, r]) => ({ size, placement: r.placement, rate: r.rate }));
}

/** Position × size table; positions in the evaluation's order, then any others seen. */
function heat(rows: Row[], order: string[]): ReportPatch['heat'] {
  const grid = rows.filter((r) => r.position !== null && r.size !== null);
  if (grid.length === 0) return null;
  const positions = [...new Set([...order.filter((p) => grid.some((r) => r.position === p)), ...grid.map((r) => r.position!)])];
  const sizes = [...new Set(grid.map((r) => r.size!))].sort((a, b) => a - b);
  // Circular and square placements of the same cell cannot both occur in one evaluation; first wins.
  const rates = positions.map((pos) => sizes.map((s) => grid.find((r) => r.position === pos && r.size === s)?.rate ?? null));
  return { positions, sizes, rates };
}
