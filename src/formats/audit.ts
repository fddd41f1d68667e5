import { z } from 'zod';
import { className, readFormat, writeFormat, type ClassName, type Format, type ReadOptions } from './file.js';
import { producerSchema, type Producer } from './producer.js';

/**
 * audit.json: what `audit` found, check by check and threshold by threshold, with the rates behind
 * each verdict (CI systems read the JUnit XML written beside it; people and scripts read this).
 *
 * Version 2 replaces `tool` by `producer`.
 */
export const AUDIT_FORMAT = 'patch-atlas-audit/2';
export const AUDIT_FILE = 'audit.json';

export const AUDIT_METRICS = ['dynamic', 'static', 'universal-dynamic', 'universal-static'] as const;
export type AuditMetric = (typeof AUDIT_METRICS)[number];
/** A screen check's metrics: the share of screened pairs a bridge patch flips (best placement, or the declared one). */
export const SCREEN_METRICS = ['screen-dynamic', 'screen-static'] as const;
export type ScreenMetric = (typeof SCREEN_METRICS)[number];

const rate = z.object({ k: z.number(), n: z.number(), p: z.number().nullable(), lo: z.number(), hi: z.number() });
/** A rate as audit reports it: `p` is null when nothing could be counted (n = 0). */
export type RateSummary = z.infer<typeof rate>;
const rates = z.object({ dynamic: rate, static: rate, 'universal-dynamic': rate, 'universal-static': rate });

const threshold = z.object({
  key: z.string(),
  /** The testcase name, e.g. "dynamic max 0.2". */
  name: z.string(),
  metric: z.enum([...AUDIT_METRICS, ...SCREEN_METRICS]),
  max: z.number().optional(),
  maxOverNoise: z.number().optional(),
  passed: z.boolean(),
  /** The non-control patch with the highest rate on this metric (null if none could be measured). */
  best: rate.extend({ patch: z.string() }).nullable(),
  noise: rate,
  /** One line: what was measured against what. */
  message: z.string(),
});
export type ThresholdResult = z.infer<typeof threshold>;

const check = z.object({
  name: z.string(),
  key: z.string(),
  source: className.nullable(),
  target: className,
  images: z.number(),
  /** Images that could count, before a `maxImages` sample. */
  eligible: z.number(),
  skipped: z.number(),
  /** Denominators: source images classified correctly before the patch, and images not the target before. */
  correctBefore: z.number(),
  notTargetBefore: z.number(),
  placements: z.array(z.string()),
  /** results.json / results.csv, relative to the output folder. */
  results: z.object({ json: z.string(), csv: z.string() }),
  /** Generated patch folders (atlas sources), relative to the output folder. */
  generated: z.array(z.string()),
  split: z.string().nullable(),
  seconds: z.number(),
  patches: z.array(rates.extend({ name: z.string(), control: z.boolean() })),
  thresholds: z.array(threshold),
});
export type CheckResult = z.infer<typeof check>;

/** A screen check: the pooled flip rates of the bridge patches (icon, exemplar) against the noise control, over the screened pairs. */
const screenCheck = z.object({
  name: z.string(),
  key: z.string(),
  /** screen.json, relative to the output folder, and the set judged. */
  screen: z.string(),
  set: z.string(),
  pairs: z.number(),
  withBridge: z.number(),
  kinds: z.array(z.object({ name: z.string(), control: z.boolean(), 'screen-dynamic': rate, 'screen-static': rate })),
  seconds: z.number(),
  thresholds: z.array(threshold),
});
export type ScreenCheckResult = z.infer<typeof screenCheck>;

const auditSchema = z.object({
  format: z.literal(AUDIT_FORMAT),
  producer: producerSchema,
  config: z.string(),
  model: z.string(),
  passed: z.boolean(),
  counts: z.object({ checks: z.number(), thresholds: z.number(), passed: z.number(), failed: z.number() }),
  files: z.object({ json: z.string(), junit: z.string() }),
  createdAt: z.string(),
  seconds: z.number(),
  checks: z.array(check),
  screens: z.array(screenCheck),
});
export type AuditResult = z.infer<typeof auditSchema>;

export const auditFormat: Format<AuditResult> = {
  what: 'an audit.json written by `patch-atlas audit`',
  file: AUDIT_FILE,
  version: AUDIT_FORMAT,
  schema: auditSchema,
  hint: 'run `patch-atlas audit --config audit.json`',
};

export function readAuditResult(path: string, o: ReadOptions = {}): AuditResult {
  return readFormat(auditFormat, path, o);
}

export async function writeAuditResult(path: string, r: AuditResult): Promise<void> {
  await writeFormat(auditFormat, path, r);
}

export type { ClassName, Producer };
