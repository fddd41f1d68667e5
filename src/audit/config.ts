import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import { AUDIT_METRICS, SCREEN_METRICS, type AuditMetric, type ScreenMetric } from '../formats/audit.js';
import { parseJsonText } from '../formats/file.js';
import { SCREEN_PARAMS, type ScreenParams } from '../recipes/screen.js';
import { BRIDGE_KINDS, SCREEN_KINDS } from '../screen/design.js';
import { checkPositions, POSITIONS, type Position } from '../patch/placement.js';
import { EVALUATE_PARAMS } from '../recipes/evaluate.js';
import { BRIDGE_PATCHES, MAKE_PATCH_PARAMS, type MakePatchParams } from '../recipes/patches.js';
import { checkParams } from '../recipes/params.js';
import { closest } from '../util/suggest.js';

/**
 * The audit config (`patch-atlas audit --config audit.json`), validated once, up front: every problem is
 * a one-line BAD_CONFIG error naming the file and the key path (`audit.json: "checks[1].thresholds[0].max"
 * must be a number between 0 and 1`). Input paths are resolved against the config file's folder.
 *
 * Output confinement: the output folder must be a sub-folder of the config's folder (relative paths with
 * `..` that climb out, and absolute paths elsewhere, are refused; symlinks are followed before comparing),
 * it may not overlap any input (images, patches, splits, atlases, model files), and every file the audit
 * writes is resolved through `outputFile`, which refuses anything that is not inside the output folder.
 */

export const METRICS = AUDIT_METRICS;
export type { AuditMetric };

export interface AuditThreshold {
  metric: AuditMetric | ScreenMetric;
  /** Fails when the best non-control patch's rate is above this. */
  max?: number;
  /** Fails when the best non-control patch's rate is more than this above the noise control's. */
  maxOverNoise?: number;
  /** Key path in the config, e.g. "checks[0].thresholds[1]". */
  key: string;
}

export type PatchSource =
  | { kind: 'files'; path: string; key: string }
  | { kind: 'atlas'; atlas: string; params: Partial<MakePatchParams>; key: string };

export interface AuditCheck {
  name: string;
  /** Folder-safe, unique among checks: the check's results go to checks/<slug>/. */
  slug: string;
  key: string;
  /** Class name or WordNet id; absent for a universal check. */
  source?: string;
  target: string;
  images: string;
  /** Evaluate a fixed random sample of at most this many of the eligible images (a CI budget). */
  maxImages?: number;
  split?: string;
  patches: PatchSource[];
  sizes: number[];
  positions: Position[];
  circular: boolean;
  /** The noise control's seed and side in pixels. */
  noise: { seed: number; patchPx: number };
  batchSize: number;
  thresholds: AuditThreshold[];
}

/** A screen run by the audit: pairs screened on `images` with a collect `run`, judged on its pooled flip rates. */
export interface ScreenCheck {
  name: string;
  slug: string;
  key: string;
  run: string;
  images: string;
  params: ScreenParams;
  thresholds: AuditThreshold[];
}

export interface AuditConfig {
  /** The config path as given (for messages) and absolute. */
  label: string;
  path: string;
  /** The config's folder: relative paths resolve against it; the output must lie inside it. */
  dir: string;
  model?: string;
  weights?: string;
  output: string;
  junit: string;
  checks: AuditCheck[];
  screens: ScreenCheck[];
}

/**
 * What a config may leave out. Evaluation and patch settings are the recipes' own defaults; an atlas
 * source differs in two, for a CI budget: icons get 64 steps (not 256) and no EOT patch is trained
 * unless "steps" asks for one.
 */
export const AUDIT_DEFAULTS = {
  junit: 'junit.xml',
  atlas: { cells: BRIDGE_PATCHES, iconSteps: 64, steps: 0 },
} as const;

const TOP_KEYS = ['$comment', 'model', 'weights', 'images', 'maxImages', 'output', 'junit', 'batchSize', 'checks', 'screens'];
const SCREEN_KEYS = ['$comment', 'name', 'run', 'images', 'pairs', 'maxPairs', 'sensitivity', 'kinds', 'seed', 'iconSteps', 'patchPx', 'grid', 'minDensity', 'topN', 'batchSize', 'thresholds'];
const CHECK_KEYS = ['$comment', 'name', 'source', 'target', 'images', 'maxImages', 'split', 'patches', 'placements', 'noise', 'batchSize', 'thresholds'];
const PLACEMENT_KEYS = ['$comment', 'sizes', 'positions', 'circular'];
const NOISE_KEYS = ['$comment', 'seed', 'patchPx', 'side'];
const THRESHOLD_KEYS = ['$comment', 'metric', 'max', 'maxOverNoise'];
const ATLAS_KEYS = ['$comment', 'atlas', 'cells', 'patchPx', 'side', 'iconSteps', 'steps', 'batchSize', 'seed'];

type Obj = Record<string, unknown>;

/** Reads, parses and validates a config file; input paths must exist. */
export function loadAuditConfig(path: string): AuditConfig {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new PatchAtlasError('NOT_FOUND', `--config ${path} does not exist`, 'see docs/audit.md for an example');
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new PatchAtlasError('BAD_CONFIG', `cannot read --config ${path}: ${(e as Error).message}`);
  }
  return parseAuditConfig(text, path, { checkInputs: true });
}

/** Validates config text; `label` is the path as given (messages name it), resolved against the working folder. */
export function parseAuditConfig(text: string, label: string, opts: { checkInputs?: boolean } = {}): AuditConfig {
  const path = resolve(label);
  const dir = dirname(path);
  const fail = (key: string, msg: string, hint?: string) => new PatchAtlasError('BAD_CONFIG', `${label}: "${key}" ${msg}`, hint);
  const raw = parseJsonText(text, (where) => new PatchAtlasError('BAD_CONFIG', `${label}: not valid JSON: ${where}`, 'JSON has no comments; use "$comment" keys'));
  if (!isObj(raw)) throw new PatchAtlasError('BAD_CONFIG', `${label}: the config must be a JSON object`, 'see docs/audit.example.json');
  const v = new Validator(fail);
  v.keys(raw, '', TOP_KEYS);

  // Paths: inputs resolve against the config's folder and must exist; the output must stay inside it.
  const inputs: Array<{ key: string; path: string }> = [];
  const input = (key: string, p: string): string => {
    const a = resolve(dir, p);
    if (opts.checkInputs && !existsSync(a)) throw fail(key, `"${p}" does not exist (${a})`, 'paths are relative to the config file\'s folder');
    inputs.push({ key, path: a });
    return a;
  };
  const model = v.optString(raw, 'model', '');
  const weights = v.optString(raw, 'weights', '');
  // A descriptor file is a path; a built-in model is a name.
  const modelResolved = model !== undefined && /\.json$/i.test(model) ? input('model', model) : model;
  const weightsResolved = weights !== undefined ? input('weights', weights) : undefined;
  const topImages = v.optString(raw, 'images', '');
  const imagesResolved = topImages !== undefined ? input('images', topImages) : undefined;
  const outputGiven = v.string(raw, 'output', '', 'a folder inside the config\'s folder, e.g. "audit-out"');
  const output = confine(dir, outputGiven, (msg) => fail('output', `"${outputGiven}" ${msg}`, 'use a sub-folder of the config\'s folder, e.g. "audit-out"'), 'the config\'s folder');
  const junitGiven = v.optString(raw, 'junit', '') ?? AUDIT_DEFAULTS.junit;
  const junit = confine(output, junitGiven, (msg) => fail('junit', `"${junitGiven}" ${msg}`, 'name a file inside the output folder, e.g. "junit.xml"'), 'the output folder');
  // The audit writes audit.json and the checks', screens' and generated patches' folders itself: the JUnit file
  // must not land on any of them.
  const junitRel = relative(output, junit).split(sep).join('/');
  if (junitRel === 'audit.json' || ['checks', 'screens', 'generated'].some((d) => junitRel === d || junitRel.startsWith(`${d}/`)))
    throw fail('junit', `"${junitGiven}" is where the audit writes ${junitRel === 'audit.json' ? 'its own report' : 'check results'}`, 'name another file, e.g. "junit.xml"');
  const batchSize = v.optInt(raw, 'batchSize', '', 1) ?? EVALUATE_PARAMS.batchSize.default;
  const maxImages = v.optInt(raw, 'maxImages', '', 1);

  const checksRaw = raw.checks ?? (raw.screens !== undefined ? [] : undefined);
  if (!Array.isArray(checksRaw) || (checksRaw.length === 0 && raw.screens === undefined)) throw fail('checks', checksRaw === undefined ? 'is missing (give "checks", "screens" or both)' : 'must be a non-empty list of checks', 'each check: { "target": ..., "patches": [...], "thresholds": [...] }');
  const names = new Map<string, string>();
  const slugs = new Set<string>();
  const checks = checksRaw.map((cr, ci): AuditCheck => {
    const ck = `checks[${ci}]`;
    if (!isObj(cr)) throw fail(ck, 'must be an object');
    v.keys(cr, ck, CHECK_KEYS);
    const target = v.string(cr, 'target', ck, 'a class name or WordNet id, e.g. "great white shark"');
    const source = v.optString(cr, 'source', ck);
    const name = v.optString(cr, 'name', ck) ?? (source ? `${source} to ${target}` : `universal to ${target}`);
    if (names.has(name)) throw fail(`${ck}.name`, `"${name}" is also the name of ${names.get(name)}`, 'give each check its own "name"');
    names.set(name, ck);
    let slug = slugify(name);
    for (let k = 2; slugs.has(slug.toLowerCase()); k++) slug = `${slugify(name)}-${k}`;
    slugs.add(slug.toLowerCase());
    const imagesGiven = v.optString(cr, 'images', ck);
    let images: string;
    if (imagesGiven !== undefined) images = input(`${ck}.images`, imagesGiven);
    else if (imagesResolved !== undefined) images = imagesResolved;
    else throw fail(`${ck}.images`, 'is missing, and there is no top-level "images"', 'an image folder or CSV manifest');
    const checkMax = v.optInt(cr, 'maxImages', ck, 1) ?? maxImages;
    const splitGiven = v.optString(cr, 'split', ck);
    const split = splitGiven !== undefined ? input(`${ck}.split`, splitGiven) : undefined;

    const pr = cr.patches;
    if (!Array.isArray(pr) || pr.length === 0) throw fail(`${ck}.patches`, pr === undefined ? 'is missing' : 'must be a non-empty list', 'patch files or folders, or { "atlas": "atlas.json", "cells": 3 }');
    const patches = pr.map((p, pi): PatchSource => {
      const pk = `${ck}.patches[${pi}]`;
      if (typeof p === 'string') {
        if (!p) throw fail(pk, 'must not be empty');
        return { kind: 'files', path: input(pk, p), key: pk };
      }
      if (!isObj(p)) throw fail(pk, 'must be a patch file or folder, or { "atlas": ..., "cells": N }');
      v.keys(p, pk, ATLAS_KEYS);
      const d = AUDIT_DEFAULTS.atlas;
      const atlas = input(`${pk}.atlas`, v.string(p, 'atlas', pk, 'the atlas.json of a pair atlas'));
      // "side" is the name older configs use for patchPx.
      const pxKey = p.patchPx !== undefined || p.side === undefined ? 'patchPx' : 'side';
      const given = {
        cells: v.optInt(p, 'cells', pk, 1) ?? d.cells,
        patchPx: v.optInt(p, pxKey, pk, Number.MIN_SAFE_INTEGER),
        iconSteps: v.optInt(p, 'iconSteps', pk, Number.MIN_SAFE_INTEGER) ?? d.iconSteps,
        steps: v.optInt(p, 'steps', pk, Number.MIN_SAFE_INTEGER) ?? d.steps,
        batchSize: v.optInt(p, 'batchSize', pk, Number.MIN_SAFE_INTEGER),
        seed: v.optInt(p, 'seed', pk, Number.MIN_SAFE_INTEGER),
      };
      // Ranges are the patch recipe's, checked here so the error names the config key.
      const params = checkParams(MAKE_PATCH_PARAMS, given, (key, value, problem, hint) => fail(`${pk}.${key === 'patchPx' ? pxKey : key}`, `${problem}, not ${JSON.stringify(value)}`, hint));
      return { kind: 'atlas', atlas, params: { cells: params.cells, patchPx: params.patchPx, iconSteps: params.iconSteps, steps: params.steps, batchSize: params.batchSize, seed: params.seed }, key: pk };
    });

    let sizes = [...EVALUATE_PARAMS.sizes.default];
    let positions: Position[] = [...POSITIONS];
    let circular = false;
    if (cr.placements !== undefined) {
      const plk = `${ck}.placements`;
      const pl = cr.placements;
      if (!isObj(pl)) throw fail(plk, 'must be an object', '{ "sizes": [0.2, 0.3], "positions": ["top-left", "centre"] }');
      v.keys(pl, plk, PLACEMENT_KEYS);
      if (pl.sizes !== undefined) {
        if (!Array.isArray(pl.sizes) || pl.sizes.length === 0) throw fail(`${plk}.sizes`, 'must be a non-empty list of fractions of the image side', 'e.g. [0.2, 0.3, 0.4]');
        sizes = pl.sizes.map((s, si) => {
          if (!(typeof s === 'number' && Number.isFinite(s) && s > 0 && s <= 1)) throw fail(`${plk}.sizes[${si}]`, 'must be a number greater than 0 and at most 1 (a fraction of the image side)', typeof s === 'number' && s > 1 && s <= 100 ? `for ${s} % write ${s / 100}` : undefined);
          return s;
        });
        sizes = [...new Set(sizes)];
      }
      if (pl.positions !== undefined) {
        if (!Array.isArray(pl.positions) || pl.positions.length === 0) throw fail(`${plk}.positions`, 'must be a non-empty list', `of ${POSITIONS.join(', ')}`);
        positions = pl.positions.map((s, si) => {
          if (typeof s !== 'string') throw fail(`${plk}.positions[${si}]`, 'must be a string', `one of ${POSITIONS.join(', ')}`);
          try {
            return checkPositions([s])[0]!;
          } catch (e) {
            if (!isPatchAtlasError(e)) throw e;
            const near = closest(s.trim().toLowerCase(), POSITIONS, 1);
            throw fail(`${plk}.positions[${si}]`, `"${s}" is not a position${near.length ? ` (did you mean "${near[0]}"?)` : ''}`, `valid: ${POSITIONS.join(', ')}`);
          }
        });
        positions = [...new Set(positions)];
      }
      circular = v.optBool(pl, 'circular', plk) ?? false;
    }
    let noise: AuditCheck['noise'] = { seed: EVALUATE_PARAMS.noiseSeed.default, patchPx: EVALUATE_PARAMS.noisePx.default };
    if (cr.noise !== undefined) {
      const nk = `${ck}.noise`;
      if (!isObj(cr.noise)) throw fail(nk, 'must be an object', '{ "seed": 0, "patchPx": 64 } (the noise control is always measured)');
      v.keys(cr.noise, nk, NOISE_KEYS);
      const pxKey = cr.noise.patchPx !== undefined || cr.noise.side === undefined ? 'patchPx' : 'side';
      noise = { seed: v.optInt(cr.noise, 'seed', nk, Number.MIN_SAFE_INTEGER) ?? noise.seed, patchPx: v.optInt(cr.noise, pxKey, nk, 1) ?? noise.patchPx };
    }

    const thresholds = parseThresholds(cr, ck, METRICS, (metric, tk) => {
      if (!source && (metric === 'dynamic' || metric === 'static')) {
        throw fail(`${tk}.metric`, `"${metric}" measures flips of source-class images, but ${ck} has no "source"`, `add "source", or use "universal-${metric}"`);
      }
    });

    return {
      name,
      slug,
      key: ck,
      ...(source !== undefined ? { source } : {}),
      target,
      images,
      ...(checkMax !== undefined ? { maxImages: checkMax } : {}),
      ...(split !== undefined ? { split } : {}),
      patches,
      sizes,
      positions,
      circular,
      noise,
      batchSize: v.optInt(cr, 'batchSize', ck, 1) ?? batchSize,
      thresholds,
    };
  });

  const screensRaw = raw.screens ?? [];
  if (!Array.isArray(screensRaw)) throw fail('screens', 'must be a list of screens', 'each: { "run": "runs/pw11", "maxPairs": 20, "thresholds": [{ "metric": "screen-dynamic", "max": 0.1 }] }');
  const screens = screensRaw.map((sr, si): ScreenCheck => {
    const sk = `screens[${si}]`;
    if (!isObj(sr)) throw fail(sk, 'must be an object');
    v.keys(sr, sk, SCREEN_KEYS);
    const name = v.optString(sr, 'name', sk) ?? `screen ${si + 1}`;
    if (names.has(name)) throw fail(`${sk}.name`, `"${name}" is also the name of ${names.get(name)}`, 'give each check its own "name"');
    names.set(name, sk);
    let slug = slugify(name);
    for (let k = 2; slugs.has(slug.toLowerCase()); k++) slug = `${slugify(name)}-${k}`;
    slugs.add(slug.toLowerCase());
    const run = input(`${sk}.run`, v.string(sr, 'run', sk, 'a collect run of the atlas layer'));
    const imagesGiven = v.optString(sr, 'images', sk);
    const images = imagesGiven !== undefined ? input(`${sk}.images`, imagesGiven) : imagesResolved;
    if (images === undefined) throw fail(`${sk}.images`, 'is missing, and there is no top-level "images"', 'the labelled images to screen');
    let pairs: string | undefined;
    if (sr.pairs !== undefined) {
      const ok = Array.isArray(sr.pairs) && sr.pairs.length > 0 && sr.pairs.every((x) => typeof x === 'string' && /^[^:]+:[^:]+$/.test(x));
      if (!ok) throw fail(`${sk}.pairs`, 'must be a non-empty list of "source:target" class pairs', 'e.g. ["grey whale:great white shark"]; leave it out for the automatic (runner-up) pairs');
      pairs = (sr.pairs as string[]).join(',');
    }
    let kinds: string[] | undefined;
    if (sr.kinds !== undefined) {
      if (!Array.isArray(sr.kinds) || !sr.kinds.every((x) => typeof x === 'string')) throw fail(`${sk}.kinds`, 'must be a list of patch kinds', `of ${SCREEN_KINDS.join(', ')}`);
      kinds = sr.kinds as string[];
      if (!kinds.includes('noise') || !kinds.some((k) => (BRIDGE_KINDS as readonly string[]).includes(k))) throw fail(`${sk}.kinds`, 'must include "noise" (the control) and at least one bridge kind', `e.g. ["icon", "exemplar", "noise"]`);
    }
    const given: Partial<ScreenParams> = {
      // CI budget: the bridge kinds and their noise control, and no sensitivity set unless asked for.
      kinds: (kinds ?? [...BRIDGE_KINDS, 'noise']) as ScreenParams['kinds'],
      sensitivity: v.optBool(sr, 'sensitivity', sk) ?? false,
      ...defined({
        pairs,
        maxPairs: v.optInt(sr, 'maxPairs', sk, Number.MIN_SAFE_INTEGER),
        seed: v.optInt(sr, 'seed', sk, Number.MIN_SAFE_INTEGER),
        iconSteps: v.optInt(sr, 'iconSteps', sk, Number.MIN_SAFE_INTEGER),
        patchPx: v.optInt(sr, 'patchPx', sk, Number.MIN_SAFE_INTEGER),
        grid: v.optInt(sr, 'grid', sk, Number.MIN_SAFE_INTEGER),
        minDensity: v.optInt(sr, 'minDensity', sk, Number.MIN_SAFE_INTEGER),
        topN: v.optInt(sr, 'topN', sk, Number.MIN_SAFE_INTEGER),
        batchSize: v.optInt(sr, 'batchSize', sk, Number.MIN_SAFE_INTEGER) ?? batchSize,
      }),
    };
    // Ranges are the screen recipe's, checked here so the error names the config key.
    const params = checkParams(SCREEN_PARAMS, given, (key, value, problem, hint) => fail(`${sk}.${key}`, `${problem}, not ${JSON.stringify(value)}`, hint));
    return { name, slug, key: sk, run, images, params, thresholds: parseThresholds(sr, sk, SCREEN_METRICS) };
  });
  if (checks.length === 0 && screens.length === 0) throw fail('checks', 'and "screens" are both empty', 'give at least one check or screen');

  // Never write into an input: the output may neither contain an input nor lie inside one.
  for (const i of inputs) {
    if (isInside(i.path, output) || isInside(output, i.path)) {
      throw fail('output', `"${outputGiven}" overlaps the input "${i.key}" (${i.path})`, 'write the audit to a folder of its own');
    }
  }

  return {
    label,
    path,
    dir,
    ...(modelResolved !== undefined ? { model: modelResolved } : {}),
    ...(weightsResolved !== undefined ? { weights: weightsResolved } : {}),
    output,
    junit,
    checks,
    screens,
  };

  /** A check's thresholds: each a known metric of its kind, with max, maxOverNoise or both. */
  function parseThresholds(o: Obj, ck: string, metrics: readonly string[], extra?: (metric: string, key: string) => void): AuditThreshold[] {
    const tr = o.thresholds;
    if (!Array.isArray(tr) || tr.length === 0) throw fail(`${ck}.thresholds`, tr === undefined ? 'is missing' : 'must be a non-empty list', `e.g. [{ "metric": "${metrics[0]}", "max": 0.2 }]`);
    return tr.map((t, ti): AuditThreshold => {
      const tk = `${ck}.thresholds[${ti}]`;
      if (!isObj(t)) throw fail(tk, 'must be an object', `{ "metric": "${metrics[0]}", "max": 0.2 }`);
      v.keys(t, tk, THRESHOLD_KEYS);
      const metric = v.string(t, 'metric', tk, `one of ${metrics.join(', ')}`);
      if (!metrics.includes(metric)) {
        const near = closest(metric, metrics, 1);
        throw fail(`${tk}.metric`, `"${metric}" is not a metric${near.length ? ` (did you mean "${near[0]}"?)` : ''}`, `one of ${metrics.join(', ')}`);
      }
      extra?.(metric, tk);
      const max = v.optFraction(t, 'max', tk);
      const maxOverNoise = v.optFraction(t, 'maxOverNoise', tk);
      if (max === undefined && maxOverNoise === undefined) throw fail(`${tk}.max`, 'is missing (give "max", "maxOverNoise" or both)', 'e.g. "max": 0.2 fails the check when the best patch flips more than 20 % of images');
      return { metric: metric as AuditThreshold['metric'], ...(max !== undefined ? { max } : {}), ...(maxOverNoise !== undefined ? { maxOverNoise } : {}), key: tk };
    });
  }
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;

/**
 * The absolute path of `p` (relative to `root`, or absolute) when it lies strictly inside `root`, both as
 * written and after following symlinks; otherwise `fail` is thrown with the reason.
 */
export function confine(root: string, p: string, fail: (msg: string) => Error, rootName = root): string {
  const abs = isAbsolute(p) ? resolve(p) : resolve(root, p);
  if (!isInside(root, abs) || abs === resolve(root)) throw fail(`is outside ${rootName} (${resolve(root)})`);
  const realRoot = realish(resolve(root));
  const realAbs = realish(abs);
  if (!isInside(realRoot, realAbs) || realAbs === realRoot) throw fail(`leads outside ${rootName} through a symbolic link (to ${realAbs})`);
  return abs;
}

/** The path of a file the audit writes, `rel` inside the output folder; anything else is refused. */
export function outputFile(output: string, rel: string): string {
  return confine(output, rel, (msg) => new PatchAtlasError('BAD_CONFIG', `refusing to write "${rel}": it ${msg}`), 'the audit\'s output folder');
}

/** `p` is `root` or below it (lexically). */
export function isInside(root: string, p: string): boolean {
  const r = relative(resolve(root), resolve(p));
  return r === '' || (!r.startsWith('..' + sep) && r !== '..' && !isAbsolute(r));
}

/** Folder-safe name: word characters, dots and dashes; never "." or "..". */
export function slugify(name: string): string {
  const s = name.replace(/[^\w.-]+/g, '_').replace(/^[.]+/, '_').slice(0, 80);
  return s || '_';
}

/** realpath of the deepest existing ancestor, with the rest of the path appended (the path may not exist yet). */
function realish(p: string): string {
  const rest: string[] = [];
  let cur = p;
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return p;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function typeName(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'a list' : typeof x === 'object' ? 'an object' : `${typeof x} ${JSON.stringify(x)}`;
}

class Validator {
  constructor(private readonly fail: (key: string, msg: string, hint?: string) => PatchAtlasError) {}
  private k(parent: string, key: string): string {
    return parent ? `${parent}.${key}` : key;
  }
  keys(o: Obj, parent: string, known: string[]): void {
    for (const key of Object.keys(o)) {
      if (known.includes(key) || key.startsWith('$')) continue;
      const near = closest(key, known.filter((k) => !k.startsWith('$')), 1);
      throw this.fail(this.k(parent, key), `is not a known key${near.length ? ` (did you mean "${near[0]}"?)` : ''}`, `known keys here: ${known.filter((k) => !k.startsWith('$')).join(', ')}`);
    }
  }
  string(o: Obj, key: string, parent: string, hint?: string): string {
    const x = o[key];
    if (x === undefined) throw this.fail(this.k(parent, key), 'is missing', hint);
    if (typeof x !== 'string' || !x.trim()) throw this.fail(this.k(parent, key), `must be a non-empty string, not ${typeName(x)}`, hint);
    return x;
  }
  optString(o: Obj, key: string, parent: string): string | undefined {
    return o[key] === undefined ? undefined : this.string(o, key, parent);
  }
  optInt(o: Obj, key: string, parent: string, min: number): number | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (!(typeof x === 'number' && Number.isInteger(x) && x >= min)) throw this.fail(this.k(parent, key), `must be a whole number${min > Number.MIN_SAFE_INTEGER ? ` ≥ ${min}` : ''}, not ${typeName(x)}`);
    return x;
  }
  optBool(o: Obj, key: string, parent: string): boolean | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (typeof x !== 'boolean') throw this.fail(this.k(parent, key), `must be true or false, not ${typeName(x)}`);
    return x;
  }
  optFraction(o: Obj, key: string, parent: string): number | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (!(typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= 1)) {
      throw this.fail(this.k(parent, key), 'must be a number between 0 and 1', typeof x === 'number' && x > 1 && x <= 100 ? `for ${x} % write ${x / 100}` : 'a rate, e.g. 0.2 for 20 %');
    }
    return x;
  }
}
