import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.js';
import { packageRoot } from '../util/paths.js';
import { readFormat, writeFormat, type Format, type ReadOptions } from './file.js';
import { producerSchema, type Producer } from './producer.js';

/**
 * report-data.json: the report's data model, everything `report.html` shows, as plain JSON written
 * beside the page. Built from atlas.json, results.json and accuracy.json by the report recipe, rendered
 * by src/report/. Bump REPORT_FORMAT when a field changes meaning or disappears.
 *
 * Version 2 replaces `version` by `producer`.
 */
export const REPORT_FORMAT = 'patch-atlas-report/2';
export const REPORT_DATA_FILE = 'report-data.json';

/** A data: URI of a PNG/JPEG made by the builder (never a user-supplied string). */
export type DataUri = string;

export interface ClassName {
  wnid: string;
  name: string;
}

/** A binomial rate with its Wilson 95 % interval; `p` is null when there were no trials. */
export interface Rate {
  k: number;
  n: number;
  p: number | null;
  lo: number;
  hi: number;
}

/** Mean target probability before/after and the mean per-image change with its interval (null: no images). */
export interface ProbChange {
  n: number;
  before: number | null;
  after: number | null;
  change: number | null;
  lo: number | null;
  hi: number | null;
}

export interface ReportData {
  format: typeof REPORT_FORMAT;
  /** The patch-atlas that built the report (the model of its evaluation, else of its atlas). */
  producer: Producer;
  created: string;
  title: string;
  /** Plain-language findings, generated from the numbers below (summary.ts). */
  summary: ReportSummary;
  settings: ReportSettings;
  /** What was missing or skipped while building (absent inputs, icons, thumbnails, patch images). */
  notes: string[];
  accuracy: ReportAccuracy | null;
  atlas: ReportAtlas | null;
  patches: ReportPatches | null;
  /** The screen over many class pairs, when one was given. */
  screen: ReportScreen | null;
}

/** A median with its interval (null: nothing to summarise). */
export interface ReportMedian {
  n: number;
  median: number | null;
  lo: number | null;
  hi: number | null;
}

export interface ReportScreen {
  file: string;
  model: string;
  layer: string;
  /** The static placement and the primary comparison, as declared before any result. */
  staticPlacement: string;
  primary: { kind: string; control: string };
  sets: ReportScreenSet[];
}

export interface ReportScreenSet {
  name: string;
  pairs: number;
  withBridge: number;
  noBridge: number;
  distinctB: number;
  kinds: Array<{ kind: string; description: string; control: boolean; n: number; flipDynamic: Rate; flipStatic: Rate; deltaDynamic: ReportMedian; deltaStatic: ReportMedian }>;
  primary: { sentence: string; n: number; p: number | null; median: ReportMedian | null; detectable: number | null };
  onePerB: { n: number; p: number | null; median: ReportMedian | null };
  /** Every secondary test, lowest Holm-adjusted p first. */
  secondary: Array<{ kind: string; control: string; outcome: string; test: string; n: number; p: number | null; pHolm: number | null; effect: string }>;
  strata: Array<{ name: string; pB: [number, number]; n: number; icon: Rate; noise: Rate; primaryP: number | null }>;
  /** The pairs whose bridge patches moved p(B) the most, with pictures. */
  vulnerable: Array<{ id: string; source: string; target: string; pB: number | null; flippedBy: string[]; icon: DataUri | null; exemplar: DataUri | null; before: DataUri | null; after: DataUri | null; afterKind: string; afterPlacement: string; afterLabel: string }>;
}

export interface ReportSummary {
  /** The one sentence at the top. */
  headline: string;
  /** Further sentences (dynamic placement, controls, accuracy, atlas). */
  details: string[];
}

export interface ReportSettings {
  /** The command that rebuilds this report, when known. */
  command: string | null;
  inputs: { atlas: string | null; evaluation: string | null; accuracy: string | null; patches: string[] };
  /** Name/value rows shown in the settings table (model, layer, classes, sizes, ...). */
  rows: Array<{ name: string; value: string }>;
}

export interface ReportAccuracy {
  model: string;
  source: string;
  images: number;
  top1: number;
  top5: number;
  correctTop1: number;
  correctTop5: number;
  unlabelled: number;
  skipped: number;
  /** Per class, lowest top-1 first. */
  perClass: Array<{ wnid: string; name: string; images: number; top1: number; top5: number }>;
}

export interface ReportAtlas {
  file: string;
  kind: 'pair' | 'class' | 'layer';
  model: string;
  layer: string;
  run: string;
  /** Classes of interest: [A, B] for a pair atlas. */
  classes: ClassName[];
  /** Grid side; cell (i, j) is column i from the left, row j from the top (lucid's render order). */
  grid: number;
  /** Points laid out (the filtered activations). */
  points: number;
  /** atlas.png beside atlas.json, when the icons stage drew one. */
  picture: DataUri | null;
  cells: ReportCell[];
  /** Best bridges first (pair atlases only; empty otherwise). */
  bridges: ReportBridge[];
  /** Cells with an icon file; 0 means the grid is drawn without icons. */
  icons: number;
}

export interface ReportCell {
  i: number;
  j: number;
  count: number;
  /** Mean attribution to each class of interest, in `ReportAtlas.classes` order. */
  attr: Array<{ wnid: string; name: string; value: number | null }>;
  /** Fraction of the cell's points whose image is labelled each class of interest / another / none. */
  composition: { classes: Array<{ name: string; value: number }>; other: number; unlabelled: number } | null;
  topClasses: Array<{ wnid: string; name: string; value: number | null }>;
  icon: DataUri | null;
  /** Set when the cell is one of the highlighted bridges. */
  bridge: { rank: number; score: number | null } | null;
  examples: CellExample[];
}

export interface CellExample {
  path: string;
  label: string | null;
  /** Points of the cell from this image. */
  count: number;
  thumb: DataUri | null;
}

export interface ReportBridge {
  rank: number;
  i: number;
  j: number;
  count: number;
  score: number | null;
  towardB: number | null;
  fromA: number | null;
  between: number | null;
  reason: string;
  icon: DataUri | null;
  examples: CellExample[];
}

export type PatchKind = 'noise' | 'photo' | 'atlas' | 'unknown';

export interface ReportPatches {
  file: string;
  /** targeted: images of `source` flipped to `target`; universal: images of other classes flipped to `target`. */
  mode: 'targeted' | 'universal';
  model: string;
  source: ClassName | null;
  target: ClassName;
  sizes: number[];
  positions: string[];
  circular: boolean;
  images: number;
  skipped: number;
  patches: ReportPatch[];
}

export interface ReportPatch {
  name: string;
  /** noise: the random control; photo: a photo patch (no sidecar, or one saying 'photo'); atlas: made by `patch-atlas patch`; unknown: no file given. */
  kind: PatchKind;
  /** For atlas-made patches, how the sidecar says it was made ('icon', 'eot', ...). */
  made: string | null;
  /** Noise and photo patches are controls for the atlas patches. */
  control: boolean;
  file: string | null;
  image: DataUri | null;
  /** Images in the rate's denominator (correct before, or not the target before when universal). */
  denominator: number;
  /** The headline rate of the report's mode at the best single placement... */
  static: { placement: string; rate: Rate };
  /** ...and with the best placement chosen per image. */
  dynamic: Rate;
  /** Images moved off their class (targeted mode's denominator). */
  untargeted: { static: Rate; dynamic: Rate };
  pTarget: { static: ProbChange; dynamic: ProbChange };
  placements: Array<{ placement: string; position: string | null; size: number | null; rate: Rate; pTarget: ProbChange }>;
  /** Best position per patch size. */
  bySize: Array<{ size: number; placement: string; rate: Rate }>;
  /** Position × size table of the headline rate; null when no placement is a grid placement. */
  heat: { positions: string[]; sizes: number[]; rates: Array<Array<Rate | null>> } | null;
  example: PatchExample | null;
}

/** One test image before and after pasting the patch at its static placement. */
export interface PatchExample {
  image: string;
  placement: string;
  before: { src: DataUri; label: string };
  after: { src: DataUri; label: string };
}

// The sections are typed above and built by code; the reader checks the frame and each section's kind.
const section = z.record(z.string(), z.unknown()).nullable();
const reportSchema = z.object({
  format: z.literal(REPORT_FORMAT),
  producer: producerSchema,
  created: z.string(),
  title: z.string(),
  summary: z.object({ headline: z.string(), details: z.array(z.string()) }),
  settings: z.object({ command: z.string().nullable(), inputs: z.record(z.string(), z.unknown()), rows: z.array(z.object({ name: z.string(), value: z.string() })) }),
  notes: z.array(z.string()),
  accuracy: section,
  atlas: section,
  patches: section,
  screen: section.optional(),
});

export const reportFormat: Format<ReportData> = {
  what: 'a report-data.json written by `patch-atlas report`',
  file: REPORT_DATA_FILE,
  version: REPORT_FORMAT,
  schema: reportSchema as unknown as z.ZodType<ReportData>,
  hint: 'write one with `patch-atlas report`',
};

export function readReportData(path: string, o: ReadOptions = {}): ReportData {
  return readFormat(reportFormat, path, o);
}

export async function writeReportData(path: string, data: ReportData): Promise<void> {
  await writeFormat(reportFormat, path, data);
}

/** What report.html is made of besides the data: the template and page script (kept in src/report/) and chart.js. */
export interface ReportAssets {
  template: string;
  clientJs: string;
  chartJs: string;
}

let assets: ReportAssets | undefined;

/** The report's assets, read once, whether running from src/ (tests) or dist/src/ (the CLI). */
export function reportAssets(): ReportAssets {
  if (assets) return assets;
  const own = (name: string) => readFileSync(join(packageRoot(), 'src', 'report', name), 'utf8');
  // chart.js's UMD build; its package only exports the module builds, so it is found beside them.
  const chartJs = readFileSync(join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js'), 'utf8');
  return (assets = { template: own('template.hbs'), clientJs: own('client.js'), chartJs });
}

export interface WrittenReport {
  html: string;
  json: string;
  charts: string[];
}

/** Writes `<dir>/report.html`, `<dir>/report-data.json` and the chart PNGs as `<dir>/charts/<name>`, each atomically. */
export async function writeReportFiles(dir: string, data: ReportData, html: string, charts: ReadonlyArray<{ name: string; png: Uint8Array }>): Promise<WrittenReport> {
  const json = join(dir, REPORT_DATA_FILE);
  await writeReportData(json, data);
  const written: string[] = [];
  for (const c of charts) {
    const file = join(dir, 'charts', c.name);
    await writeFileAtomic(file, c.png);
    written.push(file);
  }
  const page = join(dir, 'report.html');
  await writeFileAtomic(page, html);
  return { html: page, json, charts: written };
}
