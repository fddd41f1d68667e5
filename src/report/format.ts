/** Number formatting shared by the summary sentences, the HTML and the PNG charts, so they agree. */
import type { Rate } from '../formats/report.js';

/** 0.42 → "42 %"; small rates keep a decimal so 0.4 % does not read as 0 %. null → "n/a". */
export function pct(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return 'n/a';
  const x = p * 100;
  if (x === 0 || x === 100) return `${x} %`;
  // Never round a non-zero rate to 0 % or a rate below one to 100 %.
  if (x > 0 && x < 0.1) return '<0.1 %';
  if (x > 99 && x < 100) return `${(Math.floor(x * 10) / 10).toFixed(1)} %`;
  if (Math.abs(x) < 10) return `${x.toFixed(1)} %`;
  return `${Math.round(x)} %`;
}

/** Wilson interval as "29–56 %". */
export function ci(r: Rate): string {
  if (r.n === 0) return 'n/a';
  return `${pct(r.lo).replace(' %', '')}–${pct(r.hi)}`;
}

/** "21 of 50". */
export function frac(r: Rate): string {
  return `${r.k} of ${r.n}`;
}

export function fixed(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

/** A probability: two decimals, or two significant digits below 0.01 so small values do not read as 0. */
export function prob(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return x === 0 || Math.abs(x) >= 0.01 ? x.toFixed(2) : x.toPrecision(2);
}

/** "'a', 'b', 'c' and 4 more": long name lists in notes stay one readable line. */
export function quotedList(names: string[], max = 5): string {
  const q = names.slice(0, max).map((n) => `'${n}'`).join(', ');
  return names.length > max ? `${q} and ${names.length - max} more` : q;
}

/** Signed, for probability changes: "+0.31". */
export function signed(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
}

/** Placement ids of grid placements: "top-left@0.3", "centre@0.2/circle". */
export function parsePlacement(id: string): { position: string; size: number; circular: boolean } | null {
  const m = /^(top-left|top-right|bottom-left|bottom-right|centre)@(\d+(?:\.\d+)?)(\/circle)?$/.exec(id);
  if (!m) return null;
  return { position: m[1]!, size: Number(m[2]), circular: m[3] !== undefined };
}

/** "in the top-left corner", "in the centre", or "at <id>" for random placements. */
export function where(id: string): string {
  const p = parsePlacement(id);
  if (!p) return id ? `at placement ${id}` : 'at no placement';
  return p.position === 'centre' ? 'in the centre' : `in the ${p.position} corner`;
}

/**
 * Heat colour for a rate in [0, 1]: white → amber → dark red, with the text colour that stays legible.
 * Shared by the HTML table and the PNG so both show the same colours.
 */
export function heatColour(p: number | null): { background: string; text: string } {
  if (p === null || !Number.isFinite(p)) return { background: '#eeeeee', text: '#666666' };
  const t = Math.max(0, Math.min(1, p));
  const stops: Array<[number, number, number]> = [
    [255, 255, 255],
    [253, 174, 97],
    [215, 48, 39],
    [103, 0, 13],
  ];
  const x = t * (stops.length - 1);
  const k = Math.min(stops.length - 2, Math.floor(x));
  const f = x - k;
  const c = stops[k]!.map((v, i) => Math.round(v + (stops[k + 1]![i]! - v) * f));
  return { background: `rgb(${c[0]}, ${c[1]}, ${c[2]})`, text: t > 0.55 ? '#ffffff' : '#111111' };
}
