/**
 * ReportData → what template.hbs shows: every number already formatted and every colour computed,
 * so the template only places strings (all through Handlebars' escaping `{{ }}`).
 */
import type { CellExample, Rate, ReportAtlas, ReportCell, ReportData, ReportMedian, ReportPatch, ReportPatches, ReportScreen } from '../formats/report.js';
import { ci, fixed, frac, heatColour, pct, prob, signed } from './format.js';

const rateText = (r: Rate) => ({ pct: pct(r.p), ci: ci(r), frac: frac(r) });

export function reportView(d: ReportData) {
  return {
    title: d.title,
    created: d.created,
    version: d.producer.version,
    format: d.format,
    summary: d.summary,
    notes: d.notes,
    settings: {
      command: d.settings.command,
      inputs: [
        { name: 'atlas file', value: d.settings.inputs.atlas },
        { name: 'evaluation file', value: d.settings.inputs.evaluation },
        { name: 'accuracy file', value: d.settings.inputs.accuracy },
        { name: 'patch files', value: d.settings.inputs.patches.join(', ') || null },
      ].filter((x) => x.value),
      rows: d.settings.rows,
    },
    accuracy: d.accuracy && {
      ...d.accuracy,
      top1Text: pct(d.accuracy.top1),
      top5Text: pct(d.accuracy.top5),
      perClass: d.accuracy.perClass.map((c) => ({ ...c, top1Text: pct(c.top1), top5Text: pct(c.top5) })),
      lowest: d.accuracy.perClass.slice(0, 10).map((c) => ({ ...c, top1Text: pct(c.top1), top5Text: pct(c.top5) })),
    },
    atlas: d.atlas && atlasView(d.atlas),
    patches: d.patches && patchesView(d.patches),
    screen: d.screen && screenView(d.screen),
  };
}

const median = (m: ReportMedian | null) => (m && m.median !== null ? `${fixed(m.median)}${m.lo !== null ? ` [${fixed(m.lo)}, ${fixed(m.hi)}]` : ''}` : 'n/a');
const pValue = (p: number | null) => (p === null ? 'n/a' : p < 0.001 ? p.toExponential(1) : p.toFixed(3));

function screenView(s: ReportScreen) {
  return {
    file: s.file,
    model: s.model,
    layer: s.layer,
    staticPlacement: s.staticPlacement,
    primaryName: `${s.primary.kind} vs ${s.primary.control}`,
    sets: s.sets.map((set) => ({
      ...set,
      kinds: set.kinds.map((k) => ({ ...k, dynamic: rateText(k.flipDynamic), static: rateText(k.flipStatic), deltaDynamic: median(k.deltaDynamic), deltaStatic: median(k.deltaStatic) })),
      primaryText: set.primary.sentence,
      onePerBText: `${set.onePerB.n} pairs: median difference ${median(set.onePerB.median)}, p = ${pValue(set.onePerB.p)}`,
      secondary: set.secondary.map((t) => ({ ...t, pText: pValue(t.p), pHolmText: pValue(t.pHolm), strong: t.pHolm !== null && t.pHolm < 0.05 })),
      strata: set.strata.map((st) => ({ ...st, range: `${prob(st.pB[0])}–${prob(st.pB[1])}`, icon: rateText(st.icon), noise: rateText(st.noise), primaryP: pValue(st.primaryP) })),
      vulnerable: set.vulnerable.map((v) => ({ ...v, pBText: prob(v.pB), flipped: v.flippedBy.join(', ') || 'none' })),
    })),
  };
}

function atlasView(a: ReportAtlas) {
  const colour = cellColour(a);
  const [A, B] = a.classes;
  return {
    ...a,
    classesText: a.classes.map((c) => c.name).join(' vs '),
    legend:
      a.kind === 'pair' ? `blue: attributes to ${A?.name}, red: to ${B?.name} (mean attribution difference); outlined: top bridges, numbered by rank`
      : a.kind === 'class' ? `darker: stronger mean attribution to ${A?.name}`
      : 'darker: more points',
    cells: a.cells.map((c, k) => ({
      k,
      style: `grid-column: ${c.i + 1}; grid-row: ${c.j + 1}; background: ${colour(c)}`,
      label: `cell (${c.i}, ${c.j}): ${c.count} points${c.bridge ? `, bridge #${c.bridge.rank}` : ''}`,
      icon: c.icon,
      bridge: c.bridge,
      i: c.i,
      j: c.j,
      count: c.count,
      attr: c.attr.map((v) => ({ name: v.name, value: fixed(v.value, 3) })),
      composition: c.composition && {
        classes: c.composition.classes.map((v) => ({ name: v.name, value: pct(v.value) })),
        other: pct(c.composition.other),
        unlabelled: pct(c.composition.unlabelled),
      },
      topClasses: c.topClasses.map((t) => ({ name: t.name, value: fixed(t.value, 3) })),
      examples: c.examples.map(exampleView),
    })),
    bridges: a.bridges.map((b) => ({
      ...b,
      scoreText: fixed(b.score, 3),
      towardBText: fixed(b.towardB, 2),
      fromAText: b.fromA === null ? 'n/a' : pct(b.fromA),
      betweenText: fixed(b.between, 2),
      examples: b.examples.map(exampleView),
    })),
  };
}

const exampleView = (e: CellExample) => ({ ...e, caption: `${e.label ?? 'unlabelled'}: ${e.count} point${e.count === 1 ? '' : 's'}` });

/** Pair: diverging blue (A) – white – red (B) on attr[B] − attr[A]; class: attribution; layer: count. */
function cellColour(a: ReportAtlas): (c: ReportCell) => string {
  const mix = (t: number, to: [number, number, number]) => {
    const c = [255, 255, 255].map((w, q) => Math.round(w + (to[q]! - w) * Math.max(0, Math.min(1, t))));
    return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  };
  const value =
    a.kind === 'pair' ? (c: ReportCell) => (c.attr[1]?.value ?? 0) - (c.attr[0]?.value ?? 0)
    : a.kind === 'class' ? (c: ReportCell) => c.attr[0]?.value ?? 0
    : (c: ReportCell) => c.count;
  const scale = Math.max(1e-12, ...a.cells.map((c) => Math.abs(value(c))));
  return (c) => {
    const v = value(c) / scale;
    if (a.kind !== 'pair') return mix(0.15 + 0.7 * Math.max(0, v), [49, 54, 149]);
    return v >= 0 ? mix(0.8 * v, [215, 48, 39]) : mix(-0.8 * v, [49, 54, 149]);
  };
}

function patchesView(r: ReportPatches) {
  const row = (p: ReportPatch) => ({
    name: p.name,
    kind: p.made ? `${p.kind} (${p.made})` : p.kind,
    control: p.control,
    image: p.image,
    placement: p.static.placement || 'n/a',
    static: rateText(p.static.rate),
    dynamic: rateText(p.dynamic),
    untargeted: rateText(p.untargeted.dynamic),
    pBefore: prob(p.pTarget.static.before),
    pAfter: prob(p.pTarget.static.after),
    pChange: signed(p.pTarget.static.change),
    example: p.example,
  });
  const rows = r.patches.map(row);
  return {
    ...r,
    targeted: r.mode === 'targeted',
    who: r.mode === 'targeted' ? `correctly classified ${r.source!.name} images` : 'images of other classes (not the target before)',
    rows,
    controls: rows.filter((p) => p.control),
    candidates: rows.filter((p) => !p.control),
    heat: r.patches.map((p) => ({
      name: p.name,
      heat: p.heat && {
        sizes: p.heat.sizes,
        rows: p.heat.positions.map((pos, q) => ({
          position: pos,
          cells: p.heat!.rates[q]!.map((rt) => {
            const c = heatColour(rt?.p ?? null);
            return { text: rt ? pct(rt.p) : '–', title: rt ? `${frac(rt)}, 95 % CI ${ci(rt)}` : 'not evaluated', style: `background: ${c.background}; color: ${c.text}` };
          }),
        })),
      },
    })),
  };
}
