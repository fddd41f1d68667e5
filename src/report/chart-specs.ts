/**
 * The numbers behind each chart, as plain JSON: the same spec is drawn by chart.js in the page
 * (client.js, embedded as JSON) and in Node for the PNG exports (charts-png.ts), so both agree.
 */
import type { ReportData, ReportPatch, ReportPatches, ReportScreen } from '../formats/report.js';
import { frac, signed } from './format.js';

export interface ChartSeries {
  label: string;
  colour: string;
  /** Noise and photo patches: drawn in greys (and dashed, in line charts). */
  control: boolean;
  values: Array<number | null>;
  lo: Array<number | null>;
  hi: Array<number | null>;
  /** Tooltip text per point, e.g. "21 of 50 at top-left@0.3". */
  notes: Array<string | null>;
}

export interface ChartSpec {
  id: 'flip-rates' | 'static-dynamic' | 'p-target' | 'screen-flips';
  type: 'bar' | 'line';
  title: string;
  xLabel: string;
  yLabel: string;
  /** Values are rates in [0, 1], shown as percentages. */
  percent: boolean;
  labels: string[];
  series: ChartSeries[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#bcbd22', '#393b79'];
const CONTROLS = ['#7f7f7f', '#a0a0a0', '#5f5f5f', '#c0c0c0'];

/** A stable colour per patch: greys for controls, the palette for the rest. */
export function patchColours(list: ReportPatch[]): Map<string, string> {
  const out = new Map<string, string>();
  let c = 0;
  let o = 0;
  for (const p of list) out.set(p.name, p.control ? CONTROLS[c++ % CONTROLS.length]! : PALETTE[o++ % PALETTE.length]!);
  return out;
}

/** Every chart of a report: the patch evaluation's, then the screen's. */
export function reportCharts(d: Pick<ReportData, 'patches' | 'screen'>): ChartSpec[] {
  return [...(d.patches ? chartSpecs(d.patches) : []), ...(d.screen?.sets.length ? [screenChart(d.screen)] : [])];
}

/** The screen's main set: per patch kind, the share of pairs flipped to B (dynamic and static), with Wilson intervals. */
export function screenChart(s: ReportScreen): ChartSpec {
  const set = s.sets.find((x) => x.name === 'auto') ?? s.sets[0]!;
  const series = (label: string, colour: string, pick: (k: (typeof set.kinds)[number]) => { k: number; n: number; p: number | null; lo: number; hi: number }) => ({
    label,
    colour,
    control: false,
    values: set.kinds.map((k) => pick(k).p),
    lo: set.kinds.map((k) => (pick(k).n ? pick(k).lo : null)),
    hi: set.kinds.map((k) => (pick(k).n ? pick(k).hi : null)),
    notes: set.kinds.map((k) => `${frac(pick(k))} pairs`),
  });
  return {
    id: 'screen-flips',
    type: 'bar',
    title: `Screen (${set.name}, ${set.withBridge} pairs with a bridge): pairs flipped to B per patch kind, 95 % Wilson CI`,
    xLabel: 'patch kind',
    yLabel: '% of pairs flipped to B',
    percent: true,
    labels: set.kinds.map((k) => k.kind),
    series: [series('dynamic (best placement)', PALETTE[0]!, (k) => k.flipDynamic), series(`static (${s.staticPlacement})`, PALETTE[4]!, (k) => k.flipStatic)],
  };
}

export function chartSpecs(r: ReportPatches): ChartSpec[] {
  const colours = patchColours(r.patches);
  // Short: chart.js truncates long axis titles; the page states the denominator beside each chart.
  const rateAxis = `% flipped to ${r.target.name}`;
  const sizes = [...new Set(r.patches.flatMap((p) => p.bySize.map((s) => s.size)))].sort((a, b) => a - b);
  const names = r.patches.map((p) => p.name);
  return [
    {
      id: 'flip-rates',
      // Bars, not lines: with few sizes, the patches' intervals would sit on top of each other.
      type: 'bar',
      title: 'Flip rate by patch size (best position at each size, 95 % Wilson CI)',
      xLabel: 'patch side (fraction of the image side)',
      yLabel: rateAxis,
      percent: true,
      labels: sizes.map(String),
      series: r.patches.map((p) => {
        const at = sizes.map((s) => p.bySize.find((b) => b.size === s) ?? null);
        return {
          label: p.name,
          colour: colours.get(p.name)!,
          control: p.control,
          values: at.map((b) => b?.rate.p ?? null),
          lo: at.map((b) => (b?.rate.n ? b.rate.lo : null)),
          hi: at.map((b) => (b?.rate.n ? b.rate.hi : null)),
          notes: at.map((b) => (b ? `${frac(b.rate)} at ${b.placement}` : null)),
        };
      }),
    },
    {
      id: 'static-dynamic',
      type: 'bar',
      title: 'Static (one placement for all images) vs dynamic (best placement per image), 95 % Wilson CI',
      xLabel: 'patch',
      yLabel: rateAxis,
      percent: true,
      labels: names,
      series: [
        {
          label: 'static',
          colour: '#4c78a8',
          control: false,
          values: r.patches.map((p) => p.static.rate.p),
          lo: r.patches.map((p) => (p.static.rate.n ? p.static.rate.lo : null)),
          hi: r.patches.map((p) => (p.static.rate.n ? p.static.rate.hi : null)),
          notes: r.patches.map((p) => `${frac(p.static.rate)} at ${p.static.placement}`),
        },
        {
          label: 'dynamic',
          colour: '#f58518',
          control: false,
          values: r.patches.map((p) => p.dynamic.p),
          lo: r.patches.map((p) => (p.dynamic.n ? p.dynamic.lo : null)),
          hi: r.patches.map((p) => (p.dynamic.n ? p.dynamic.hi : null)),
          notes: r.patches.map((p) => `${frac(p.dynamic)}, best placement per image`),
        },
      ],
    },
    {
      id: 'p-target',
      type: 'bar',
      title: `Mean change in the probability of ${r.target.name} (95 % CI)`,
      xLabel: 'patch',
      yLabel: `Δ P(${r.target.name})`,
      percent: false,
      labels: names,
      series: (['static', 'dynamic'] as const).map((k, q) => ({
        label: k,
        colour: q === 0 ? '#4c78a8' : '#f58518',
        control: false,
        values: r.patches.map((p) => p.pTarget[k].change),
        lo: r.patches.map((p) => p.pTarget[k].lo),
        hi: r.patches.map((p) => p.pTarget[k].hi),
        notes: r.patches.map((p) => `${signed(p.pTarget[k].change, 3)} over ${p.pTarget[k].n} images`),
      })),
    },
  ];
}
