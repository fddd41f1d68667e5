import { proportion } from '../evaluate/metrics.js';
import { detectableShift, holm, mcnemarExact, medianInterval, sampleSd, wilcoxon } from '../evaluate/stats.js';
import type { KindSummary, Median, PairedTest, Rate, ScreenAnalysis, ScreenPairRecord, ScreenTest } from '../formats/screen.js';
import { BRIDGE_KINDS, PRIMARY, SCREEN_KINDS, SECONDARY_OUTCOMES, STATIC_PLACEMENT, type ScreenOutcome } from './design.js';

/**
 * The pooled analysis of one set of pairs (auto, sensitivity or list), every figure derived from the pair
 * records. The pair is the unit: a pair tested on several images of A (k-fold) counts once, with its
 * Δ log p(B) averaged over its images and a flip counted when at least half of them flip. Only pairs
 * with a bridge are analysed; the others are counted.
 */

/** One pair's values for one kind (null where the kind was not measured on it). */
interface PairValues {
  deltaStatic: number;
  deltaDynamic: number;
  flipStatic: boolean;
  flipDynamic: boolean;
  leftDynamic: boolean;
}

interface PairRow {
  id: string;
  target: string;
  pB: number;
  kinds: Map<string, PairValues>;
}

export function analyse(pairs: readonly ScreenPairRecord[]): ScreenAnalysis {
  const rows = pairs.map(pairRow).filter((r): r is PairRow => r !== null).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const onePerB: PairRow[] = [];
  const seen = new Set<string>();
  for (const r of rows) if (!seen.has(r.target)) (seen.add(r.target), onePerB.push(r));

  const secondary: PairedTest[] = [];
  for (const kind of BRIDGE_KINDS) {
    for (const control of SCREEN_KINDS.filter((k) => !BRIDGE_KINDS.includes(k))) {
      for (const outcome of SECONDARY_OUTCOMES) secondary.push(compare(rows, kind, control, outcome));
    }
  }
  const adjusted = holm(secondary.map((t) => t.p));
  secondary.forEach((t, k) => (t.pHolm = adjusted[k]!));

  const primary = compare(rows, PRIMARY.kind, PRIMARY.control, PRIMARY.outcome);
  const diffs = differences(rows, PRIMARY.kind, PRIMARY.control, PRIMARY.outcome);
  const sd = diffs.length >= 2 ? sampleSd(diffs) : null;

  return {
    pairs: pairs.length,
    withBridge: rows.length,
    noBridge: pairs.length - rows.length,
    distinctB: seen.size,
    kinds: kindSummaries(rows),
    primary: { ...primary, sd, detectable: sd === null ? null : detectableShift(sd, diffs.length) },
    onePerB: compare(onePerB, PRIMARY.kind, PRIMARY.control, PRIMARY.outcome),
    secondary,
    strata: strata(rows),
  };
}

/** A pair's values per kind from its tests with a bridge; null when none has one. */
function pairRow(p: ScreenPairRecord): PairRow | null {
  const tests = p.tests.filter((t) => t.atlas.hasBridge && t.kinds.length);
  if (tests.length === 0) return null;
  const kinds = new Map<string, PairValues>();
  for (const kind of SCREEN_KINDS) {
    const per = tests.map((t) => testValues(t, kind)).filter((v): v is PairValues => v !== null);
    if (per.length === 0) continue;
    const mean = (f: (v: PairValues) => number) => per.reduce((s, v) => s + f(v), 0) / per.length;
    const half = (f: (v: PairValues) => boolean) => per.filter(f).length * 2 >= per.length;
    kinds.set(kind, { deltaStatic: mean((v) => v.deltaStatic), deltaDynamic: mean((v) => v.deltaDynamic), flipStatic: half((v) => v.flipStatic), flipDynamic: half((v) => v.flipDynamic), leftDynamic: half((v) => v.leftDynamic) });
  }
  const pB = tests.reduce((s, t) => s + (t.clean.pB ?? 0), 0) / tests.length;
  return { id: p.id, target: p.target.wnid, pB, kinds };
}

function testValues(t: ScreenTest, kind: string): PairValues | null {
  const k = t.kinds.find((x) => x.kind === kind);
  const clean = t.clean.logPB;
  if (!k || clean === null) return null;
  const st = k.placements.find((p) => p.placement === STATIC_PLACEMENT);
  const deltas = k.placements.map((p) => (p.logPB === null ? -Infinity : p.logPB - clean));
  if (!st || st.logPB === null) return null;
  return { deltaStatic: st.logPB - clean, deltaDynamic: Math.max(...deltas), flipStatic: st.flip, flipDynamic: k.placements.some((p) => p.flip), leftDynamic: k.placements.some((p) => p.left) };
}

function value(v: PairValues, outcome: ScreenOutcome): number | boolean {
  return outcome === 'delta-static' ? v.deltaStatic : outcome === 'delta-dynamic' ? v.deltaDynamic : outcome === 'flip-static' ? v.flipStatic : v.flipDynamic;
}

/** Paired differences kind − control over the pairs that have both (Δ outcomes). */
function differences(rows: readonly PairRow[], kind: string, control: string, outcome: ScreenOutcome): number[] {
  const out: number[] = [];
  for (const r of rows) {
    const a = r.kinds.get(kind);
    const b = r.kinds.get(control);
    if (a && b) out.push((value(a, outcome) as number) - (value(b, outcome) as number));
  }
  return out;
}

function compare(rows: readonly PairRow[], kind: string, control: string, outcome: ScreenOutcome): PairedTest {
  const base = { kind, control, outcome, pHolm: null };
  if (outcome === 'flip-static' || outcome === 'flip-dynamic') {
    let kindOnly = 0;
    let controlOnly = 0;
    let n = 0;
    for (const r of rows) {
      const a = r.kinds.get(kind);
      const b = r.kinds.get(control);
      if (!a || !b) continue;
      n++;
      const fa = value(a, outcome) as boolean;
      const fb = value(b, outcome) as boolean;
      if (fa && !fb) kindOnly++;
      if (fb && !fa) controlOnly++;
    }
    return { ...base, test: 'mcnemar', n, statistic: Math.min(kindOnly, controlOnly), p: n ? mcnemarExact(kindOnly, controlOnly) : null, median: null, discordant: { kindOnly, controlOnly }, method: 'exact' };
  }
  const d = differences(rows, kind, control, outcome);
  const w = wilcoxon(d);
  return { ...base, test: 'wilcoxon', n: d.length, statistic: w.n ? w.statistic : null, p: w.p, median: median(d), discordant: null, method: w.method };
}

function median(xs: readonly number[]): Median {
  const m = medianInterval(xs);
  return { n: m.n, median: m.median, lo: m.lo, hi: m.hi };
}

function rate(k: number, n: number): Rate {
  const p = proportion(k, n);
  return { k, n, p: n ? p.p : null, lo: p.lo, hi: p.hi };
}

function kindSummaries(rows: readonly PairRow[]): KindSummary[] {
  return SCREEN_KINDS.map((kind) => {
    const vs = rows.map((r) => r.kinds.get(kind)).filter((v): v is PairValues => v !== undefined);
    const count = (f: (v: PairValues) => boolean) => vs.filter(f).length;
    return {
      kind,
      n: vs.length,
      flipStatic: rate(count((v) => v.flipStatic), vs.length),
      flipDynamic: rate(count((v) => v.flipDynamic), vs.length),
      leftDynamic: rate(count((v) => v.leftDynamic), vs.length),
      deltaStatic: median(vs.map((v) => v.deltaStatic)),
      deltaDynamic: median(vs.map((v) => v.deltaDynamic)),
    };
  });
}

/** Tertiles of the clean p(B): how far from flipping the tested image already was. */
function strata(rows: readonly PairRow[]): ScreenAnalysis['strata'] {
  const sorted = [...rows].sort((a, b) => a.pB - b.pB || (a.id < b.id ? -1 : 1));
  const n = sorted.length;
  const cuts = [0, Math.round(n / 3), Math.round((2 * n) / 3), n];
  return ['low p(B)', 'middle p(B)', 'high p(B)'].map((name, k) => {
    const part = sorted.slice(cuts[k], cuts[k + 1]);
    return {
      name,
      pB: [part[0]?.pB ?? 0, part.at(-1)?.pB ?? 0] as [number, number],
      n: part.length,
      kinds: kindSummaries(part),
      primary: compare(part, PRIMARY.kind, PRIMARY.control, PRIMARY.outcome),
    };
  });
}
