/**
 * The plain-language summary at the top of the report, generated from the numbers (never written by
 * hand), so it changes whenever the results do. Sentences name the rate's denominator, since "42 %"
 * means little without "of which images".
 */
import type { ReportAccuracy, ReportAtlas, ReportPatch, ReportPatches, ReportScreen, ReportScreenSet, ReportSummary } from '../formats/report.js';
import { ci, fixed, frac, parsePlacement, pct, prob, where } from './format.js';

export function summarise(parts: { patches: ReportPatches | null; accuracy: ReportAccuracy | null; atlas: ReportAtlas | null; screen?: ReportScreen | null }): ReportSummary {
  const details: string[] = [];
  let headline: string | undefined;
  const { patches, accuracy, atlas, screen } = parts;

  // A screen answers the report's question over many pairs: it heads the summary when there is one.
  if (screen && screen.sets.length) {
    const s = screenSentences(screen);
    headline = s.headline;
    details.push(...s.details);
  }

  if (patches && patches.patches.length) {
    const s = patchSentences(patches);
    if (headline) details.push(s.headline, ...s.details);
    else {
      headline = s.headline;
      details.push(...s.details);
    }
  }
  if (accuracy) {
    const s = accuracySentence(accuracy, patches);
    if (headline) details.push(s);
    else headline = s;
  }
  if (atlas) {
    const s = atlasSentence(atlas);
    if (headline) details.push(s);
    else headline = s;
  }
  return { headline: headline ?? 'No results were given: pass an atlas, an evaluation or an accuracy report.', details };
}

/** The screen's main set (auto, else the first) in a headline; the other sets as details. */
function screenSentences(s: ReportScreen): { headline: string; details: string[] } {
  const main = s.sets.find((x) => x.name === 'auto') ?? s.sets[0]!;
  const kind = (set: ReportScreenSet, k: string) => set.kinds.find((x) => x.kind === k);
  const rate = (set: ReportScreenSet, k: string) => {
    const r = kind(set, k)?.flipDynamic;
    return r && r.n ? `${pct(r.p)} (${frac(r)}; 95 % CI ${ci(r)})` : 'n/a';
  };
  const line = (set: ReportScreenSet) =>
    `${set.name === 'auto' ? 'Across' : `In the ${set.name} set, across`} ${set.withBridge} class pairs with a bridge (of ${set.pairs}; ${set.distinctB} target classes), each tested on an image held out of its atlas, bridge icons flipped ${rate(set, 'icon')} of them to B at some placement, exemplar crops ${rate(set, 'exemplar')}, icons of random cells ${rate(set, 'icon-random')} and noise ${rate(set, 'noise')}. Primary test: ${set.primary.sentence}.`;
  return { headline: line(main), details: s.sets.filter((x) => x !== main).map(line) };
}

/** Highest static rate; rates without trials rank last; the first wins ties. */
export function best(list: ReportPatch[]): ReportPatch | undefined {
  let b: ReportPatch | undefined;
  for (const p of list) if (!b || (p.static.rate.p ?? -1) > (b.static.rate.p ?? -1)) b = p;
  return b;
}

/** "of correctly classified grey whale images" / "of images of other classes". */
function ofWhich(r: ReportPatches): string {
  return r.mode === 'targeted' ? `of correctly classified ${r.source!.name} images` : 'of images of other classes';
}

function patchSentences(r: ReportPatches): { headline: string; details: string[] } {
  const details: string[] = [];
  const noise = best(r.patches.filter((p) => p.kind === 'noise'));
  const others = r.patches.filter((p) => p.kind !== 'noise');
  const top = best(others) ?? noise!;
  const target = r.target.name;
  const size = parsePlacement(top.static.placement)?.size;
  const quoted = `'${top.name}'`;
  const article = size !== undefined ? `A ${size}-size ${quoted}` : `The ${quoted}`;
  let headline: string;
  if (top.static.rate.n === 0) {
    headline =
      r.mode === 'targeted'
        ? `No flip rate can be given: none of the ${r.images} test images was classified correctly as ${r.source!.name} before a patch was pasted.`
        : `No flip rate can be given: every one of the ${r.images} test images was already classified as ${target}.`;
  } else {
    const lead = top === noise ? `Only the noise control was evaluated: ${article[0]!.toLowerCase()}${article.slice(1)}` : article;
    headline = `${lead} patch ${where(top.static.placement)} flips ${pct(top.static.rate.p)} ${ofWhich(r)} to ${target} (${frac(top.static.rate)}; 95 % CI ${ci(top.static.rate)})`;
    if (noise && top !== noise) headline += `; noise flips ${pct(noise.static.rate.p)}`;
    headline += '.';
  }
  if (top.static.rate.n > 0) {
    details.push(`Choosing the best placement per image (dynamic) flips ${pct(top.dynamic.p)} (${frac(top.dynamic)}).`);
    const pt = top.pTarget.static;
    // pTarget is averaged over the images classified correctly before, in both modes.
    if (pt.before !== null && pt.after !== null) details.push(`At that placement the mean ${target} probability of the ${pt.n} correctly classified images goes from ${prob(pt.before)} to ${prob(pt.after)}.`);
  }
  if (!noise) details.push('No noise control was evaluated, so chance flips cannot be told apart.');
  const atlasMade = best(r.patches.filter((p) => p.kind === 'atlas'));
  const photo = best(r.patches.filter((p) => p.kind === 'photo'));
  if (atlasMade && photo) {
    details.push(`Best atlas-made patch '${atlasMade.name}': ${pct(atlasMade.static.rate.p)}; best photo patch '${photo.name}': ${pct(photo.static.rate.p)}.`);
  }
  return { headline, details };
}

function accuracySentence(a: ReportAccuracy, patches: ReportPatches | null): string {
  let s = `Clean top-1 accuracy is ${pct(a.top1)} over ${a.images} images (top-5 ${pct(a.top5)})`;
  const src = patches?.source ? a.perClass.find((c) => c.wnid === patches.source!.wnid) : undefined;
  if (src) s += `; on ${src.name} ${pct(src.top1)} of ${src.images}`;
  return s + '.';
}

function atlasSentence(a: ReportAtlas): string {
  const names = a.classes.map((c) => c.name);
  const what = a.kind === 'pair' ? `${names[0]} vs ${names[1]} atlas` : a.kind === 'class' ? `${names[0]} atlas` : `${a.layer} layer atlas`;
  const top = a.bridges[0];
  if (a.kind === 'pair' && top) {
    return `In the ${what} (${a.points} points, ${a.cells.length} cells) the strongest bridge toward ${names[1]} is cell (${top.i}, ${top.j}) with ${top.count} points, score ${fixed(top.score)}.`;
  }
  return `The ${what} lays out ${a.points} points in ${a.cells.length} cells.`;
}
