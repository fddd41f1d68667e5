import type { KindSummary, Median, PairedTest, Rate, ScreenAnalysis, ScreenFile } from '../formats/screen.js';
import { PRIMARY, STATIC_PLACEMENT } from './design.js';

/** The screen in words: what the terminal prints and the report's headline reads from. */

const pct = (r: Rate) => (r.p === null ? 'n/a' : `${(r.p * 100).toFixed(1)} % [${(r.lo * 100).toFixed(1)}, ${(r.hi * 100).toFixed(1)}] (${r.k}/${r.n})`);
const num = (x: number | null, d = 2) => (x === null ? 'n/a' : x.toFixed(d));
const med = (m: Median | null) => (m && m.median !== null ? `${num(m.median)}${m.lo !== null ? ` [${num(m.lo)}, ${num(m.hi)}]` : ''}` : 'n/a');
const pval = (p: number | null) => (p === null ? 'n/a' : p < 0.001 ? p.toExponential(1) : p.toFixed(3));

/** The primary test in one sentence. */
export function primarySentence(a: ScreenAnalysis): string {
  const t = a.primary;
  if (!t.n) return `no pair with a bridge could be tested (${a.noBridge} of ${a.pairs} pairs have none)`;
  return `${PRIMARY.kind} vs ${PRIMARY.control} on Δ log p(B) at ${STATIC_PLACEMENT}: median difference ${med(t.median)}, Wilcoxon p = ${pval(t.p)} (${t.n} pairs${t.method ? `, ${t.method}` : ''}); the smallest shift this screen detects at 80 % power is ${num(t.detectable)}`;
}

export function kindLine(k: KindSummary): string {
  return `${k.kind.padEnd(16)} flips: dynamic ${pct(k.flipDynamic)}, static ${pct(k.flipStatic)}; Δ log p(B) median: dynamic ${med(k.deltaDynamic)}, static ${med(k.deltaStatic)}`;
}

export function testLine(t: PairedTest): string {
  const what = t.test === 'wilcoxon' ? `median diff ${med(t.median)}` : `discordant ${t.discordant!.kindOnly}:${t.discordant!.controlOnly}`;
  return `${t.kind} vs ${t.control}, ${t.outcome}: ${what}, p = ${pval(t.p)}${t.pHolm !== null ? `, Holm ${pval(t.pHolm)}` : ''} (n = ${t.n})`;
}

export function screenSummary(s: ScreenFile): string[] {
  const lines: string[] = [];
  for (const set of s.sets) {
    const a = set.analysis;
    lines.push(`${set.name}: ${a.withBridge} of ${a.pairs} pairs have a bridge (${a.distinctB} distinct B classes)`);
    for (const k of a.kinds) lines.push(`  ${kindLine(k)}`);
    lines.push(`  primary: ${primarySentence(a)}`);
    lines.push(`  one pair per B: ${testLine(a.onePerB)}`);
    const strong = a.secondary.filter((t) => t.pHolm !== null && t.pHolm < 0.05);
    lines.push(`  secondary (exploratory, Holm over ${a.secondary.length}): ${strong.length ? strong.map(testLine).join('; ') : 'none below 0.05'}`);
    for (const st of a.strata) lines.push(`  ${st.name} (${num(st.pB[0], 3)}–${num(st.pB[1], 3)}, ${st.n} pairs): icon flips ${pct(st.kinds.find((k) => k.kind === 'icon')!.flipDynamic)}, noise ${pct(st.kinds.find((k) => k.kind === 'noise')!.flipDynamic)}; primary p = ${pval(st.primary.p)}`);
  }
  return lines;
}
