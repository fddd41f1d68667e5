/**
 * The report data model: everything `report.html` shows, as plain JSON (written beside the page as
 * report-data.json). Built from atlas.json, results.json and accuracy JSON by build.ts, rendered by
 * render.ts. Bump REPORT_FORMAT when a field changes meaning or disappears.
 */

export const REPORT_FORMAT = 'patch-atlas-report/1';

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
  /** patch-atlas version that built the report. */
  version: string;
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
  attr: Array<{ wnid: string; name: string; value: number }>;
  /** Fraction of the cell's points whose image is labelled each class of interest / another / none. */
  composition: { classes: Array<{ name: string; value: number }>; other: number; unlabelled: number } | null;
  topClasses: Array<{ wnid: string; name: string; value: number }>;
  icon: DataUri | null;
  /** Set when the cell is one of the highlighted bridges. */
  bridge: { rank: number; score: number } | null;
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
  score: number;
  towardB: number;
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
