import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.js';
import { className, num, readFormat, writeFormat, type Format, type ReadOptions } from './file.js';
import { producerSchema } from './producer.js';

/**
 * The screen's files (issue "Do bridges make patches?"): one record per class pair in `pairs/<id>.json`
 * (written as each pair finishes, so a killed screen resumes where it stopped and shards merge by
 * copying records), and `screen.json` / `screen.csv` assembled from them with the pooled analysis.
 * Nothing in them depends on when or in what order the pairs ran, so a resumed or sharded screen
 * writes the same bytes as an uninterrupted one.
 */
export const SCREEN_PAIR_FORMAT = 'patch-atlas-screen-pair/1';
export const SCREEN_FORMAT = 'patch-atlas-screen/1';
export const SCREEN_FILE = 'screen.json';
export const PAIRS_DIR = 'pairs';

const cellRef = z.object({ i: z.number().int(), j: z.number().int(), count: z.number().int(), rank: z.number().int(), score: num, towardB: num });
export type ScreenCellRef = z.infer<typeof cellRef>;

/** Where a crop patch was cut: the image, the layer position and the window (at the static size). */
const cropRef = z.object({ image: z.string(), label: z.string().nullable(), y: z.number().int(), x: z.number().int(), window: z.object({ top: z.number().int(), left: z.number().int(), side: z.number().int() }) });

const placementOutcome = z.object({
  placement: z.string(),
  /** Predicted class (WordNet id) with the patch there, and log p(B). */
  pred: z.string(),
  logPB: num,
  /** Flipped to B; left A (predicted anything but A). */
  flip: z.boolean(),
  left: z.boolean(),
});
export type PlacementOutcome = z.infer<typeof placementOutcome>;

const kindOutcome = z.object({
  kind: z.string(),
  /** The patch file (relative to the screen folder), and what it was made from. */
  file: z.string().nullable(),
  cell: cellRef.nullable(),
  crop: cropRef.nullable(),
  placements: z.array(placementOutcome),
});
export type KindOutcome = z.infer<typeof kindOutcome>;

const testRecord = z.object({
  /** The tested image (never in its own atlas, whitening, exemplar pool or crops) and its content hash. */
  image: z.string(),
  sha256: z.string(),
  /** Run rows held out with it (its own and any duplicate file's). */
  heldRows: z.number().int(),
  clean: z.object({ pred: z.string(), pA: num, pB: num, logPB: num }),
  atlas: z.object({ points: z.number().int(), cells: z.number().int(), aPoints: z.number().int(), bPoints: z.number().int(), hasBridge: z.boolean(), noBridge: z.string().nullable(), bridge: cellRef.nullable() }),
  /** Empty when the pair has no bridge (such tests are counted, never measured). */
  kinds: z.array(kindOutcome),
});
export type ScreenTest = z.infer<typeof testRecord>;

const pairSchema = z.object({
  format: z.literal(SCREEN_PAIR_FORMAT),
  id: z.string(),
  set: z.enum(['auto', 'sensitivity', 'list']),
  source: className,
  target: className,
  tests: z.array(testRecord),
});
export type ScreenPairRecord = z.infer<typeof pairSchema>;

export const screenPairFormat: Format<ScreenPairRecord> = {
  what: 'a screen pair record written by `patch-atlas screen`',
  file: 'pair.json',
  version: SCREEN_PAIR_FORMAT,
  schema: pairSchema,
  hint: 'delete it and run the screen again: that pair is measured anew',
};

// ---- the analysis (derived from the pair records; typed here, computed in src/screen/analysis.ts) ----

export interface Rate {
  k: number;
  n: number;
  p: number | null;
  lo: number;
  hi: number;
}

export interface Median {
  n: number;
  median: number | null;
  lo: number | null;
  hi: number | null;
}

export interface KindSummary {
  kind: string;
  /** Pairs measured with this kind. */
  n: number;
  flipStatic: Rate;
  flipDynamic: Rate;
  leftDynamic: Rate;
  deltaStatic: Median;
  deltaDynamic: Median;
}

export interface PairedTest {
  kind: string;
  control: string;
  outcome: string;
  test: 'wilcoxon' | 'mcnemar';
  /** Pairs compared. */
  n: number;
  statistic: number | null;
  p: number | null;
  /** Holm-adjusted over the secondary family (null for the primary test). */
  pHolm: number | null;
  /** Wilcoxon: the paired differences' median with its interval; McNemar: the discordant pairs (kind only, control only). */
  median: Median | null;
  discordant: { kindOnly: number; controlOnly: number } | null;
  method: string | null;
}

export interface ScreenAnalysis {
  pairs: number;
  withBridge: number;
  noBridge: number;
  distinctB: number;
  kinds: KindSummary[];
  primary: PairedTest & { detectable: number | null; sd: number | null };
  /** The primary test keeping one pair per target class (the first by id): is one B carrying the result? */
  onePerB: PairedTest;
  secondary: PairedTest[];
  /** By the clean p(B) of the tested image, in tertiles. */
  strata: Array<{ name: string; pB: [number, number]; n: number; kinds: KindSummary[]; primary: PairedTest }>;
}

const analysisSchema = z.object({ pairs: z.number(), withBridge: z.number(), noBridge: z.number(), distinctB: z.number(), kinds: z.array(z.looseObject({ kind: z.string() })), primary: z.looseObject({ p: num }), onePerB: z.looseObject({}), secondary: z.array(z.looseObject({})), strata: z.array(z.looseObject({})) });

const screenSchema = z.object({
  format: z.literal(SCREEN_FORMAT),
  producer: producerSchema,
  model: z.string(),
  layer: z.string(),
  run: z.string(),
  images: z.string(),
  /** Everything that decides the result: kinds, sizes, positions, the static placement, patch side, icon budget, seeds. */
  design: z.record(z.string(), z.unknown()),
  sets: z.array(z.object({ name: z.string(), pairs: z.array(pairSchema), analysis: analysisSchema })),
});
export type ScreenFile = Omit<z.infer<typeof screenSchema>, 'sets'> & { sets: Array<{ name: string; pairs: ScreenPairRecord[]; analysis: ScreenAnalysis }> };

export const screenFormat: Format<ScreenFile> = {
  what: 'a screen.json written by `patch-atlas screen`',
  file: SCREEN_FILE,
  version: SCREEN_FORMAT,
  schema: screenSchema as unknown as z.ZodType<ScreenFile>,
  hint: 'write one with `patch-atlas screen --run RUN --images DIR`',
};

export function readScreen(path: string, o: ReadOptions = {}): ScreenFile {
  return readFormat(screenFormat, path, o);
}

/** screen.json and screen.csv (one row per pair × test × kind × placement) in `dir`. */
export async function writeScreen(dir: string, s: ScreenFile): Promise<{ json: string; csv: string }> {
  const json = join(dir, SCREEN_FILE);
  const csv = join(dir, 'screen.csv');
  await writeFormat(screenFormat, json, s);
  const cell = (v: string | number | boolean | null) => (v === null ? '' : typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
  const rows = [['set', 'pair', 'source', 'target', 'image', 'has_bridge', 'clean_p_target', 'kind', 'placement', 'pred', 'log_p_target', 'delta_log_p_target', 'flip', 'left_source']];
  for (const set of s.sets) {
    for (const p of set.pairs) {
      for (const t of p.tests) {
        for (const k of t.kinds) {
          for (const pl of k.placements) {
            const delta = pl.logPB !== null && t.clean.logPB !== null ? pl.logPB - t.clean.logPB : null;
            rows.push([set.name, p.id, p.source.name, p.target.name, t.image, String(t.atlas.hasBridge), cell(t.clean.pB), k.kind, pl.placement, pl.pred, cell(pl.logPB), cell(delta), String(pl.flip), String(pl.left)]);
          }
        }
      }
    }
  }
  await writeFileAtomic(csv, rows.map((r) => r.map((v) => cell(v)).join(',')).join('\n') + '\n');
  return { json, csv };
}

export function pairRecordPath(dir: string, id: string): string {
  return join(dir, PAIRS_DIR, `${id}.json`);
}

export async function writePairRecord(dir: string, r: ScreenPairRecord): Promise<void> {
  await writeFormat(screenPairFormat, pairRecordPath(dir, r.id), r);
}

/** The pair records a screen folder holds, by id (a damaged one is an error naming it). */
export function readPairRecords(dir: string): Map<string, ScreenPairRecord> {
  const out = new Map<string, ScreenPairRecord>();
  const folder = join(dir, PAIRS_DIR);
  if (!existsSync(folder)) return out;
  for (const f of readdirSync(folder).filter((n) => n.endsWith('.json')).sort()) {
    const r = readFormat(screenPairFormat, join(folder, f));
    out.set(r.id, r);
  }
  return out;
}
