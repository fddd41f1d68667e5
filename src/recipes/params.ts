import { PatchAtlasError } from '../errors.js';

/**
 * Parameters declared once and checked once (IBM ART's `attack_params` + `_check_params`): each
 * recipe declares its parameters with their defaults and checks in a spec; `checkParams` fills in the
 * defaults and checks every given value before any work starts. Faces only name things: the CLI as
 * flags (`--icon-steps`), `audit` as config key paths (`checks[0].patches[1].iconSteps`), and their
 * option lists read their defaults from the same spec.
 */

/** One parameter: its default and, for values a user can get wrong, what a good value is. */
export interface Param<T> {
  default: T;
  /** What is wrong with `v` ("must be a whole number ≥ 1"), or undefined when it is fine. */
  check?: (v: T) => string | undefined;
  /** How to fix it, when the check alone does not say ("e.g. 0.2,0.3,0.4"). */
  hint?: string | ((v: T) => string | undefined);
}

export type ParamSpec<T> = { [K in keyof T]-?: Param<T[K]> };

/** How a face reports a bad value of parameter `key`: one line naming it its own way. */
export type ParamFail = (key: string, value: unknown, problem: string, hint?: string) => Error;

/** The CLI's names: `iconSteps` → `--icon-steps`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

// NaN is what yargs makes of a number flag given text ("--batch-size abc"): say so rather than print null.
const show = (v: unknown): string => (Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : Number.isNaN(v) ? '(not a number)' : JSON.stringify(v) ?? String(v));

/** BAD_FLAG naming the flag: "--icon-steps -1 must be a whole number ≥ 0". */
export const flagFail: ParamFail = (key, value, problem, hint) => new PatchAtlasError('BAD_FLAG', `${flagName(key)} ${show(value)} ${problem}`, hint);

/** The defaults of a spec. */
export function defaults<T>(spec: ParamSpec<T>): T {
  return Object.fromEntries(Object.entries(spec).map(([k, p]) => [k, (p as Param<unknown>).default])) as T;
}

/** Defaults filled in, every given value checked; the first bad value throws through `fail`. Unknown keys are a bug. */
export function checkParams<T>(spec: ParamSpec<T>, given: Partial<T>, fail: ParamFail = flagFail): T {
  const out = defaults(spec) as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const p = (spec as Record<string, Param<unknown> | undefined>)[key];
    if (!p) throw new Error(`checkParams: unknown parameter "${key}"`);
    const problem = p.check?.(value);
    if (problem) throw fail(key, value, problem, typeof p.hint === 'function' ? p.hint(value) : p.hint);
    out[key] = value;
  }
  return out as T;
}

// ---- checks -----------------------------------------------------------------------------------

/** A whole number ≥ min (and ≤ max). */
export const wholeNumber = (min: number, max = Infinity) => (v: number) =>
  Number.isInteger(v) && v >= min && v <= max ? undefined : `must be a whole number ${max < Infinity ? `from ${min} to ${max}` : `≥ ${min}`}`;

/** Any whole number (seeds). */
export const anyWholeNumber = (v: number) => (Number.isInteger(v) ? undefined : 'must be a whole number');

/** A finite number ≥ min (and ≤ max). */
export const atLeast = (min: number, max = Infinity) => (v: number) =>
  Number.isFinite(v) && v >= min && v <= max ? undefined : max < Infinity ? `must be between ${min} and ${max}` : `must be ≥ ${min}`;

/** A finite number > 0. */
export const positive = (v: number) => (Number.isFinite(v) && v > 0 ? undefined : 'must be a positive number');

/** Strictly between 0 and 1 (a share of the images). */
export const openFraction = (v: number) => (Number.isFinite(v) && v > 0 && v < 1 ? undefined : 'must be between 0 and 1 (exclusive)');

/** Patch sizes: fractions of the image side in (0, 1]. */
export const sizeList = (v: readonly number[]) =>
  v.length > 0 && v.every((s) => Number.isFinite(s) && s > 0 && s <= 1) ? undefined : 'must be fractions of the image side in (0, 1]';
export const sizeHint = (v: readonly number[]) => {
  const pct = v.find((s) => s > 1 && s <= 100);
  return pct !== undefined ? `for ${pct} % write ${pct / 100}` : 'e.g. 0.2,0.3,0.4';
};

/** lo,hi with 0 < lo ≤ hi ≤ 1. */
export const sizeRange = (v: readonly [number, number]) =>
  v.length === 2 && v[0] > 0 && v[1] <= 1 && v[0] <= v[1] ? undefined : 'must be two fractions of the image side, lo,hi with 0 < lo ≤ hi ≤ 1';

/** One of a fixed list of words. */
export const oneOf = <T extends string>(choices: readonly T[]) => (v: T) => (choices.includes(v) ? undefined : `must be one of ${choices.join(', ')}`);
