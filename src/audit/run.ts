import { relative } from 'node:path';
import { openDataset, type Skipped } from '../data/dataset.js';
import { loadPatches, type PatchImage } from '../data/patches.js';
import { PatchAtlasError, isPatchAtlasError } from '../errors.js';
import type { PatchMetrics, Proportion } from '../evaluate/metrics.js';
import { readAtlas } from '../formats/atlas.js';
import { AUDIT_FORMAT, writeAuditResult, type AuditMetric, type AuditResult, type CheckResult, type RateSummary, type ScreenCheckResult, type ScreenMetric, type ThresholdResult } from '../formats/audit.js';
import type { ClassName } from '../formats/file.js';
import { producer } from '../formats/producer.js';
import { readSplit } from '../formats/split.js';
import type { Classifier } from '../model/classifier.js';
import { LabelSet, type ClassRef } from '../model/labels.js';
import { eligibleImages, evaluate, sampleImages } from '../recipes/evaluate.js';
import { makePatches } from '../recipes/patches.js';
import { screen } from '../recipes/screen.js';
import { BRIDGE_KINDS } from '../screen/design.js';
import { writeFileAtomic } from '../util/atomic.js';
import { outputFile, type AuditCheck, type AuditConfig, type AuditThreshold, type ScreenCheck } from './config.js';

/**
 * `audit`: each check of a config evaluates its patches (with a noise control in the same run) on its
 * images, and compares the best non-control patch's success rate with the check's thresholds. Results:
 * audit.json, a JUnit XML file (one testcase per check × threshold) and each check's results.json/csv,
 * all inside the config's output folder (see config.ts for how that is enforced). Patches and the
 * evaluation come from the same recipes as the `patch` and `evaluate` commands. A screen check runs the
 * `screen` recipe and judges the pooled flip rates of its bridge patches (icon, exemplar) against its
 * noise patches, pair by pair.
 */

export const NOISE_CONTROL = 'noise-control';
export type { AuditResult, CheckResult, RateSummary, ThresholdResult };

export interface AuditRunOptions {
  /** Before each check (then each screen) is run. */
  onCheck?: (check: AuditCheck | ScreenCheck, index: number, total: number) => void;
  /** Pairs screened so far for the current screen check. */
  onPair?: (done: number, total: number, line: string) => void;
  /** Images through the model so far for the current check. */
  onProgress?: (done: number, total: number) => void;
  onSkip?: (s: Skipped) => void;
  onNote?: (note: string) => void;
}

type ConfigError = (key: string, e: unknown) => unknown;

export async function runAudit(cfg: AuditConfig, c: Classifier, opts: AuditRunOptions = {}): Promise<AuditResult> {
  const t0 = Date.now();
  const createdAt = new Date().toISOString();
  const configError: ConfigError = (key, e) => {
    if (isPatchAtlasError(e)) return new PatchAtlasError('BAD_CONFIG', `${cfg.label}: "${key}": ${e.message.replace(/^--(patches|atlas|split) /, '')}`);
    return e;
  };
  // Classes first, for every check: a typo fails before any image is decoded.
  const classes = cfg.checks.map((check) => {
    const resolveClass = (key: string, q: string, what: string) => {
      try {
        return c.labels.resolve(q, what);
      } catch (e) {
        throw configError(key, e);
      }
    };
    const target = resolveClass(`${check.key}.target`, check.target, 'target class');
    const source = check.source !== undefined ? resolveClass(`${check.key}.source`, check.source, 'source class') : undefined;
    if (source && source.wnid === target.wnid) throw new PatchAtlasError('BAD_CONFIG', `${cfg.label}: "${check.key}.source" and "${check.key}.target" are both "${LabelSet.display(target)}"`, 'a targeted patch must move images to a different class');
    for (const p of check.patches) {
      if (p.kind !== 'atlas') continue;
      const atlas = readAtlasFor(cfg, p.key, p.atlas);
      const b = atlas.classes[1];
      if (atlas.kind !== 'pair' || !b) throw new PatchAtlasError('BAD_CONFIG', `${cfg.label}: "${p.key}.atlas" is a ${atlas.kind} atlas`, 'generated patches need a pair atlas (A vs target B)');
      if (b.wnid !== target.wnid) throw new PatchAtlasError('BAD_CONFIG', `${cfg.label}: "${p.key}.atlas" targets "${b.name}", but ${check.key} targets "${LabelSet.display(target)}"`);
    }
    return { target, source };
  });

  const total = cfg.checks.length + cfg.screens.length;
  const checks: CheckResult[] = [];
  for (const [ci, check] of cfg.checks.entries()) {
    opts.onCheck?.(check, ci, total);
    checks.push(await runCheck(cfg, c, check, classes[ci]!.target, classes[ci]!.source, opts, configError));
  }
  const screens: ScreenCheckResult[] = [];
  for (const [si, check] of cfg.screens.entries()) {
    opts.onCheck?.(check, cfg.checks.length + si, total);
    screens.push(await runScreenCheck(cfg, c, check, opts, configError));
  }

  const all = [...checks, ...screens].flatMap((ch) => ch.thresholds);
  const failed = all.filter((t) => !t.passed).length;
  const jsonPath = outputFile(cfg.output, 'audit.json');
  const junitPath = outputFile(cfg.output, relative(cfg.output, cfg.junit));
  const result: AuditResult = {
    format: AUDIT_FORMAT,
    producer: producer(c.descriptor.name),
    config: cfg.path,
    model: c.descriptor.name,
    passed: failed === 0,
    counts: { checks: checks.length + screens.length, thresholds: all.length, passed: all.length - failed, failed },
    files: { json: jsonPath, junit: junitPath },
    createdAt,
    seconds: (Date.now() - t0) / 1000,
    checks,
    screens,
  };
  await writeFileAtomic(junitPath, junitXml(result));
  await writeAuditResult(jsonPath, result);
  return result;
}

async function runCheck(cfg: AuditConfig, c: Classifier, check: AuditCheck, target: ClassRef, source: ClassRef | undefined, opts: AuditRunOptions, configError: ConfigError): Promise<CheckResult> {
  const t0 = Date.now();
  const outRel = (p: string) => relative(cfg.output, p).split('\\').join('/');
  const keyed = async <T>(key: string, f: () => Promise<T> | T): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw configError(key, e);
    }
  };

  // Patches: files as given; atlas sources generated into the output folder (icons, and EOT patches when asked).
  const paths: string[] = [];
  const generated: string[] = [];
  let split = check.split;
  for (const [pi, p] of check.patches.entries()) {
    if (p.kind === 'files') {
      paths.push(p.path);
      continue;
    }
    const out = outputFile(cfg.output, `generated/${check.slug}/${pi}`);
    opts.onNote?.(`${check.name}: generating patches from ${p.atlas} into ${out}`);
    const r = await keyed(p.key, () =>
      makePatches({ classifier: c, atlas: p.atlas, out, images: check.images, params: { ...p.params, noise: false }, ...(opts.onSkip ? { onSkip: opts.onSkip } : {}) }),
    );
    // Trained patches are measured on held-out images only (unless the check names a split itself).
    if ((p.params.steps ?? 0) > 0) split ??= r.split;
    paths.push(out);
    generated.push(outRel(out));
  }
  const patches: PatchImage[] = await keyed(`${check.key}.patches`, () => loadPatches(paths));

  // Images as `evaluate` takes them: a pair check counts source images; a universal one every image not labelled the target.
  const ds = await openDataset(check.images, c.labels);
  for (const s of ds.skipped) opts.onSkip?.(s);
  const held = split ? await keyed(`${check.key}.split`, () => readSplit(split!, { label: '' })) : undefined;
  const eligible = await keyed(check.key, () => eligibleImages(ds.items, { ...(source ? { source } : {}), target, where: check.images, ...(held ? { split: held, splitFile: split } : {}) }));
  // A CI budget: the same fixed sample for the same eligible images, whatever the check is called.
  const items = sampleImages(eligible, check.maxImages);

  const r = await evaluate({
    classifier: c,
    images: items,
    patches: [],
    extraPatches: patches,
    ...(source ? { source } : {}),
    target,
    params: { sizes: check.sizes, positions: check.positions, circular: check.circular, noisePx: check.noise.patchPx, noiseSeed: check.noise.seed, batchSize: check.batchSize },
    noiseName: NOISE_CONTROL,
    out: outputFile(cfg.output, `checks/${check.slug}`),
    check: check.name,
    split: split && held ? { file: split, testFraction: held.testFraction, seed: held.seed, candidates: null } : null,
    ...(opts.onSkip ? { onSkip: opts.onSkip } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const name = (x: ClassRef): ClassName => ({ wnid: x.wnid, name: LabelSet.display(x) });
  const rates = r.results.map((p) => ({ name: p.patch, control: p.patch === r.noise, ...ratesOf(p.metrics) }));
  const controlRates = rates.find((p) => p.control)!;
  const candidates = rates.filter((p) => !p.control);
  const first = r.results[0]!.metrics;
  return {
    name: check.name,
    key: check.key,
    source: source ? name(source) : null,
    target: name(target),
    images: r.images.length,
    eligible: eligible.length,
    skipped: r.skipped.length,
    correctBefore: first.correctBefore,
    notTargetBefore: first.notTargetBefore,
    placements: r.placements.map((p) => p.id),
    results: { json: outRel(r.files.json), csv: outRel(r.files.csv) },
    generated,
    split: split ?? null,
    seconds: (Date.now() - t0) / 1000,
    patches: rates,
    thresholds: check.thresholds.map((t) => {
      const nothing = t.metric === 'dynamic' || t.metric === 'static' ? `none of the ${r.images.length} source images was classified correctly before the patch` : `all ${r.images.length} images were already the target class`;
      return judge(t as AuditThreshold & { metric: AuditMetric }, candidates, controlRates, nothing);
    }),
  };
}

async function runScreenCheck(cfg: AuditConfig, c: Classifier, check: ScreenCheck, opts: AuditRunOptions, configError: ConfigError): Promise<ScreenCheckResult> {
  const t0 = Date.now();
  const out = outputFile(cfg.output, `screens/${check.slug}`);
  const r = await (async () => {
    try {
      return await screen({
        classifier: c,
        run: check.run,
        images: check.images,
        out,
        params: check.params,
        onEvent: (e) => (e.kind === 'pair' ? opts.onPair?.(e.done, e.total, e.line) : undefined),
        ...(opts.onSkip ? { onSkip: opts.onSkip } : {}),
      });
    } catch (e) {
      throw configError(check.key, e);
    }
  })();
  // The auto set is the screen's population; the sensitivity set (when asked for) is reported beside it, not judged.
  const set = r.file!.sets[0]!;
  const a = set.analysis;
  const rates = (kind: string) => {
    const k = a.kinds.find((x) => x.kind === kind);
    const none: RateSummary = { k: 0, n: 0, p: null, lo: 0, hi: 1 };
    return { 'screen-dynamic': k ? { ...k.flipDynamic } : none, 'screen-static': k ? { ...k.flipStatic } : none };
  };
  const kinds = [...check.params.kinds.filter((k) => k !== 'noise'), 'noise'].map((name) => ({ name, control: name === 'noise', ...rates(name) }));
  const candidates = kinds.filter((k) => BRIDGE_KINDS.includes(k.name as (typeof BRIDGE_KINDS)[number]));
  const control = kinds.find((k) => k.control)!;
  const nothing = `none of the ${a.pairs} screened pairs had a bridge cell (${a.noBridge} without)`;
  return {
    name: check.name,
    key: check.key,
    screen: relative(cfg.output, r.files!.json).split('\\').join('/'),
    set: set.name,
    pairs: a.pairs,
    withBridge: a.withBridge,
    kinds,
    seconds: (Date.now() - t0) / 1000,
    thresholds: check.thresholds.map((t) => judge(t as AuditThreshold & { metric: ScreenMetric }, candidates, control, nothing)),
  };
}

function readAtlasFor(cfg: AuditConfig, key: string, path: string) {
  try {
    return readAtlas(path, { label: '--atlas' });
  } catch (e) {
    if (isPatchAtlasError(e)) throw new PatchAtlasError('BAD_CONFIG', `${cfg.label}: "${key}.atlas": ${e.message.replace(/^--atlas /, '')}`);
    throw e;
  }
}

function summary(p: Proportion): RateSummary {
  return { k: p.k, n: p.n, p: p.n ? p.p : null, lo: p.lo, hi: p.hi };
}

function ratesOf(m: PatchMetrics): Record<AuditMetric, RateSummary> {
  return {
    dynamic: summary(m.dynamic.targeted),
    static: summary(m.static.targeted),
    'universal-dynamic': summary(m.universal.dynamic),
    'universal-static': summary(m.universal.static.rate),
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
/** "45.0 % [30.1, 60.9] (9/20)": the rate, its 95 % Wilson interval and the counts behind it. */
export function formatRate(r: RateSummary): string {
  if (r.p === null) return `n/a (0 images counted)`;
  return `${pct(r.p)} [${(r.lo * 100).toFixed(1)}, ${(r.hi * 100).toFixed(1)}] (${r.k}/${r.n})`;
}

function thresholdName(t: AuditThreshold): string {
  const parts = [t.max !== undefined ? `max ${t.max}` : '', t.maxOverNoise !== undefined ? `maxOverNoise ${t.maxOverNoise}` : ''].filter(Boolean);
  return `${t.metric} ${parts.join(' ')}`;
}

/** A threshold against the best candidate's rate of its metric (a patch of a check, a bridge kind of a screen) and the noise control's. */
function judge<M extends AuditMetric | ScreenMetric>(
  t: AuditThreshold & { metric: M },
  candidates: ReadonlyArray<{ name: string } & Record<M, RateSummary>>,
  control: Record<M, RateSummary>,
  nothing: string,
): ThresholdResult {
  const noise = control[t.metric];
  let best: ({ patch: string } & RateSummary) | null = null;
  for (const p of candidates) {
    const r: RateSummary = p[t.metric];
    if (r.p === null) continue;
    if (!best || r.p > best.p!) best = { patch: p.name, ...r };
  }
  const base = { key: t.key, name: thresholdName(t), metric: t.metric, ...(t.max !== undefined ? { max: t.max } : {}), ...(t.maxOverNoise !== undefined ? { maxOverNoise: t.maxOverNoise } : {}), best, noise };
  if (!best) return { ...base, passed: false, message: `${t.metric}: nothing to measure: ${nothing}` };
  const broken: string[] = [];
  const held: string[] = [];
  const measured = `${t.metric} ${formatRate(best)} of "${best.patch}"`;
  if (t.max !== undefined) (best.p! > t.max ? broken : held).push(`${best.p! > t.max ? 'above' : 'within'} max ${pct(t.max)}`);
  if (t.maxOverNoise !== undefined) {
    if (noise.p === null) broken.push('the noise control counted no images');
    else {
      const over = best.p! - noise.p;
      (over > t.maxOverNoise ? broken : held).push(`${(over * 100).toFixed(1)} points over the noise control's ${formatRate(noise)}, ${over > t.maxOverNoise ? 'above' : 'within'} maxOverNoise ${(t.maxOverNoise * 100).toFixed(1)} points`);
    }
  }
  const passed = broken.length === 0;
  const noiseNote = t.maxOverNoise === undefined ? `; noise control ${formatRate(noise)}` : '';
  return { ...base, passed, message: `${measured}: ${(passed ? held : broken).join('; ')}${noiseNote}` };
}

/** Text for XML: the five special characters escaped, characters XML 1.0 cannot hold replaced by U+FFFD. */
export function xmlEscape(s: string, attribute = false): string {
  const clean = s.replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD');
  const out = clean.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
  // Parsers normalise raw newlines and tabs in attribute values to spaces; character references keep them.
  return attribute ? out.replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;') : out;
}

/**
 * JUnit XML as CI systems read it (Jenkins/GitLab/GitHub test reporters): one testsuite per check, one
 * testcase per threshold, a <failure> with the measured rate and its Wilson interval where it breaks.
 */
export function junitXml(r: AuditResult): string {
  const a = (s: string | number) => xmlEscape(String(s), true);
  const secs = (s: number) => s.toFixed(3);
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  lines.push(`<testsuites name="patch-atlas audit" tests="${r.counts.thresholds}" failures="${r.counts.failed}" errors="0" time="${secs(r.seconds)}">`);
  const suite = (name: string, seconds: number, thresholds: readonly ThresholdResult[], props: Array<[string, string | number]>, rows: ReadonlyArray<{ name: string; control: boolean; rate: (m: ThresholdResult['metric']) => RateSummary | undefined }>) => {
    const failures = thresholds.filter((t) => !t.passed).length;
    lines.push(`  <testsuite name="${a(name)}" tests="${thresholds.length}" failures="${failures}" errors="0" skipped="0" time="${secs(seconds)}" timestamp="${a(r.createdAt.replace(/\.\d+Z$/, ''))}">`);
    lines.push('    <properties>');
    for (const [k, v] of [['model', r.model] as [string, string], ...props]) lines.push(`      <property name="${a(k)}" value="${a(v)}"/>`);
    lines.push('    </properties>');
    const each = thresholds.length ? seconds / thresholds.length : 0;
    for (const t of thresholds) {
      const open = `    <testcase classname="${a(`patch-atlas.audit.${name}`)}" name="${a(t.name)}" time="${secs(each)}"`;
      if (t.passed) {
        lines.push(`${open}/>`);
        continue;
      }
      const detail = [
        t.message,
        `best patch: ${t.best ? `${t.best.patch} ${formatRate(t.best)}` : 'none measured'}`,
        `noise control: ${formatRate(t.noise)}`,
        ...rows.map((p) => `  ${p.name}${p.control ? ' (control)' : ''}: ${formatRate(p.rate(t.metric) ?? { k: 0, n: 0, p: null, lo: 0, hi: 1 })}`),
        `config key: ${t.key}`,
      ].join('\n');
      lines.push(`${open}>`);
      lines.push(`      <failure message="${a(t.message)}" type="threshold">${xmlEscape(detail)}</failure>`);
      lines.push('    </testcase>');
    }
    lines.push('  </testsuite>');
  };
  for (const ch of r.checks) {
    suite(ch.name, ch.seconds, ch.thresholds, [
      ['source', ch.source ? `${ch.source.name} (${ch.source.wnid})` : 'any (universal)'],
      ['target', `${ch.target.name} (${ch.target.wnid})`],
      ['images', ch.images],
      ['correctBefore', ch.correctBefore],
      ['results', ch.results.json],
    ], ch.patches.map((p) => ({ name: p.name, control: p.control, rate: (m) => (m in p ? p[m as AuditMetric] : undefined) })));
  }
  for (const sc of r.screens) {
    suite(sc.name, sc.seconds, sc.thresholds, [
      ['set', sc.set],
      ['pairs', sc.pairs],
      ['withBridge', sc.withBridge],
      ['results', sc.screen],
    ], sc.kinds.map((k) => ({ name: k.name, control: k.control, rate: (m) => (m in k ? k[m as ScreenMetric] : undefined) })));
  }
  lines.push('</testsuites>');
  return lines.join('\n') + '\n';
}

/** A one-screen text summary: one line per check × threshold. */
export function auditSummary(r: AuditResult, configLabel: string): string[] {
  const lines = [`audit ${configLabel}: model ${r.model}, ${r.counts.checks} check${r.counts.checks === 1 ? '' : 's'}, ${r.counts.thresholds} threshold${r.counts.thresholds === 1 ? '' : 's'}: ${r.counts.passed} passed, ${r.counts.failed} failed`];
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : w.endsWith('h') ? 'es' : 's'}`;
  for (const ch of r.checks) {
    // ImageNet has two "crane"s (and other repeated names): the WordNet ids tell them apart.
    const same = ch.source?.name === ch.target.name;
    const cls = (x: ClassName) => (same ? `${x.name} (${x.wnid})` : x.name);
    const imgs = `${plural(ch.images, 'image')}${ch.eligible !== ch.images ? ` of ${ch.eligible}` : ''}`;
    const who = ch.source ? `${cls(ch.source)} → ${cls(ch.target)}, ${imgs}, ${ch.correctBefore} correct before` : `any → ${cls(ch.target)}, ${imgs}, ${ch.notTargetBefore} not the target before`;
    lines.push(`${ch.name} (${who}; ${plural(ch.patches.length - 1, 'patch')} + noise control)`);
    for (const t of ch.thresholds) lines.push(`  ${t.passed ? 'PASS' : 'FAIL'}  ${t.message}`);
  }
  for (const sc of r.screens) {
    lines.push(`${sc.name} (screen, ${sc.set} pairs: ${sc.withBridge} of ${sc.pairs} with a bridge; ${sc.kinds.filter((k) => !k.control).map((k) => k.name).join(', ')} + noise control)`);
    for (const t of sc.thresholds) lines.push(`  ${t.passed ? 'PASS' : 'FAIL'}  ${t.message}`);
  }
  lines.push(`results: ${r.files.json}, ${r.files.junit}`);
  return lines;
}
