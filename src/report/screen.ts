/**
 * screen.json → the report's screen section: per set of pairs the pooled table (flip rates with Wilson
 * intervals, median Δ log p(B)), the declared tests, the margin strata, and the pairs whose bridge
 * patches moved p(B) the most, with the bridge icon, the exemplar crop and the tested image before and
 * after (redrawn by pasting the patch exactly as the screen did). Pictures come through `Media`.
 */
import { dirname, join } from 'node:path';
import type { Media } from '../data/media.js';
import type { Preprocess } from '../data/pixels.js';
import type { PairedTest, ScreenFile, ScreenPairRecord } from '../formats/screen.js';
import type { ReportScreen, ReportScreenSet } from '../formats/report.js';
import type { LabelSet } from '../model/labels.js';
import { BRIDGE_KINDS, KIND_DESCRIPTIONS, PRIMARY, STATIC_PLACEMENT, type ScreenKind } from '../screen/design.js';
import { primarySentence } from '../screen/summary.js';
import { fixed } from './format.js';

export interface ScreenSectionOptions {
  /** Vulnerable pairs shown per set (default 5). */
  vulnerable?: number;
  /** The screen's model, to name predictions and redraw the pasted images; null: no before/after pictures. */
  model: { labels: LabelSet; pre: Preprocess; inputSize: [number, number] } | null;
}

export async function screenSection(s: ScreenFile, path: string, media: Media, opts: ScreenSectionOptions): Promise<ReportScreen> {
  const dir = dirname(path);
  const sets: ReportScreenSet[] = [];
  for (const set of s.sets) {
    const a = set.analysis;
    sets.push({
      name: set.name,
      pairs: a.pairs,
      withBridge: a.withBridge,
      noBridge: a.noBridge,
      distinctB: a.distinctB,
      kinds: a.kinds.map((k) => ({ ...k, description: KIND_DESCRIPTIONS[k.kind as ScreenKind] ?? k.kind, control: !BRIDGE_KINDS.includes(k.kind as ScreenKind) })),
      primary: { sentence: primarySentence(a), n: a.primary.n, p: a.primary.p, median: a.primary.median, detectable: a.primary.detectable },
      onePerB: { n: a.onePerB.n, p: a.onePerB.p, median: a.onePerB.median },
      secondary: [...a.secondary].sort((x, y) => (x.pHolm ?? 2) - (y.pHolm ?? 2)).map((t) => ({ kind: t.kind, control: t.control, outcome: t.outcome, test: t.test, n: t.n, p: t.p, pHolm: t.pHolm, effect: effect(t) })),
      strata: a.strata.map((st) => ({ name: st.name, pB: st.pB, n: st.n, icon: st.kinds.find((k) => k.kind === 'icon')!.flipDynamic, noise: st.kinds.find((k) => k.kind === 'noise')!.flipDynamic, primaryP: st.primary.p })),
      vulnerable: await vulnerable(set.pairs, dir, media, opts),
    });
  }
  return { file: path, model: s.model, layer: s.layer, staticPlacement: STATIC_PLACEMENT, primary: { kind: PRIMARY.kind, control: PRIMARY.control }, sets };
}

function effect(t: PairedTest): string {
  if (t.test === 'mcnemar') return `${t.discordant!.kindOnly} vs ${t.discordant!.controlOnly} discordant pairs`;
  const m = t.median;
  return m && m.median !== null ? `median difference ${fixed(m.median)}${m.lo !== null ? ` [${fixed(m.lo)}, ${fixed(m.hi)}]` : ''}` : 'n/a';
}

/** The pairs (with a bridge) whose icon or exemplar raised log p(B) the most at any placement, best first. */
async function vulnerable(pairs: readonly ScreenPairRecord[], dir: string, media: Media, opts: ScreenSectionOptions): Promise<ReportScreenSet['vulnerable']> {
  const scored = pairs.flatMap((p) =>
    p.tests
      .filter((t) => t.atlas.hasBridge && t.clean.logPB !== null)
      .flatMap((t) => t.kinds.filter((k) => BRIDGE_KINDS.includes(k.kind as ScreenKind)).flatMap((k) => k.placements.map((pl) => ({ p, t, k, pl, gain: (pl.logPB ?? -Infinity) - t.clean.logPB! })))),
  );
  scored.sort((x, y) => Number(y.pl.flip) - Number(x.pl.flip) || y.gain - x.gain || (x.p.id < y.p.id ? -1 : 1));
  const out: ReportScreenSet['vulnerable'] = [];
  const seen = new Set<string>();
  for (const v of scored) {
    if (out.length >= (opts.vulnerable ?? 5)) break;
    if (seen.has(v.p.id)) continue;
    seen.add(v.p.id);
    const file = (kind: string) => v.t.kinds.find((k) => k.kind === kind)?.file;
    const png = async (kind: string) => (file(kind) ? media.pngFile(join(dir, file(kind)!), 96) : null);
    let before = null;
    let after = null;
    if (opts.model) {
      const img = await media.decode(v.t.image, opts.model.pre);
      if (img) before = await media.rgb(img.data, img.width, img.height, { format: 'jpeg', max: 160 });
      if (img && file(v.k.kind)) after = await redraw(img, join(dir, file(v.k.kind)!), v.pl.placement, opts.model.inputSize, media);
    }
    const name = (wnid: string) => (opts.model?.labels.tryResolve(wnid) ? opts.model.labels.tryResolve(wnid)!.name.replace(/_/g, ' ') : wnid);
    out.push({
      id: v.p.id,
      source: v.p.source.name,
      target: v.p.target.name,
      pB: v.t.clean.pB,
      flippedBy: v.t.kinds.filter((k) => k.placements.some((pl) => pl.flip)).map((k) => k.kind),
      icon: await png('icon'),
      exemplar: await png('exemplar'),
      before,
      after,
      afterKind: v.k.kind,
      afterPlacement: v.pl.placement,
      afterLabel: name(v.pl.pred),
    });
  }
  return out;
}

/** The tested image with a patch pasted at a grid placement, as the screen pasted it. */
async function redraw(img: { data: Uint8Array; width: number; height: number; sourceWidth: number; sourceHeight: number }, patchFile: string, placementId: string, inputSize: [number, number], media: Media): Promise<string | null> {
  const [{ gridPlacements }, { pasteRgb }] = await Promise.all([import('../patch/placement.js'), import('../patch/paste.js')]);
  const m = /^(.+)@([\d.]+)$/.exec(placementId);
  if (!m) return null;
  const pl = gridPlacements(inputSize, [Number(m[2])], [m[1]!]).find((p) => p.id === placementId);
  const raw = await media.raw(patchFile);
  if (!pl || !raw || raw.width !== raw.height) return null;
  const after = pasteRgb(img, { data: raw.data, size: raw.width }, pl);
  return media.rgb(after, img.width, img.height, { format: 'jpeg', max: 160 });
}
