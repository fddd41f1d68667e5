/**
 * Reads whatever results exist (atlas.json, results.json, accuracy JSON, patch files) and assembles
 * the ReportData. Each input is optional; what is absent becomes a note in the report, not an error.
 * An input that is named but unreadable is an error: a typo should not yield a silently thinner report.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { PatchAtlasError } from '../errors.js';
import type { AccuracyReport } from '../evaluate/accuracy.js';
import { loadPatches } from '../patch/load.js';
import type { PatchPixels } from '../patch/paste.js';
import { packageVersion } from '../util/paths.js';
import { atlasSection, checkAtlas } from './atlas.js';
import { REPORT_FORMAT, type PatchExample, type ReportAccuracy, type ReportAtlas, type ReportData, type ReportPatches, type ReportSettings } from './data.js';
import { patchExamples } from './examples.js';
import { quotedList } from './format.js';
import { rgbUri } from './images.js';
import { checkEvaluation, isNoiseName, patchesSection, type EvaluationFile } from './patches.js';
import { summarise } from './summary.js';

export interface BuildReportOptions {
  /** atlas.json, or the folder holding it. */
  atlas?: string;
  /** results.json from `evaluate`, or the folder holding it. */
  evaluation?: string;
  /** JSON from `accuracy --json`. */
  accuracy?: string;
  /** The patch files or folders given to `evaluate`, for the gallery, the kind of each patch and the examples. */
  patches?: string[];
  /**
   * Before/after examples by patch name, when computed elsewhere; `false` skips them. Otherwise they are
   * drawn from the patch files and results.json (no model needed, see examples.ts).
   */
  examples?: Record<string, PatchExample> | false;
  /** Seed of the `noise` control when results.json does not record it (evaluate's default: 0). */
  noiseSeed?: number;
  /** The command that rebuilds the report, shown under Settings. */
  command?: string;
  title?: string;
  onNote?: (note: string) => void;
}

export async function buildReportData(opts: BuildReportOptions): Promise<ReportData> {
  const notes: string[] = [];
  const note = (n: string) => {
    notes.push(n);
    opts.onNote?.(n);
  };
  if (!opts.atlas && !opts.evaluation && !opts.accuracy) {
    throw new PatchAtlasError('BAD_FLAG', 'nothing to report', 'give at least one of --atlas, --evaluation, --accuracy');
  }
  const atlasPath = opts.atlas ? inFolder(opts.atlas, 'atlas.json', '--atlas') : null;
  const evalPath = opts.evaluation ? inFolder(opts.evaluation, 'results.json', '--evaluation') : null;
  const accPath = opts.accuracy ? inFolder(opts.accuracy, 'accuracy.json', '--accuracy') : null;

  let atlas: ReportAtlas | null = null;
  if (atlasPath) atlas = await atlasSection(checkAtlas(await readJson(atlasPath), atlasPath), atlasPath, { onNote: note });
  else note('no atlas given (--atlas): the atlas and bridge sections are empty');

  let patches: ReportPatches | null = null;
  if (evalPath) patches = await patchGallery(checkEvaluation(await readJson(evalPath), evalPath), evalPath, opts, note);
  else note('no evaluation given (--evaluation): the patch sections are empty');

  let accuracy: ReportAccuracy | null = null;
  if (accPath) accuracy = accuracySection(checkAccuracy(await readJson(accPath), accPath));
  else note('no accuracy report given (--accuracy)');

  const title = opts.title?.trim() || defaultTitle(atlas, patches);
  return {
    format: REPORT_FORMAT,
    version: packageVersion(),
    created: new Date().toISOString(),
    title,
    summary: summarise({ patches, accuracy, atlas }),
    settings: settings(opts, { atlas: atlasPath, evaluation: evalPath, accuracy: accPath }, atlas, patches, accuracy),
    notes,
    accuracy,
    atlas,
    patches,
  };
}

async function patchGallery(ev: EvaluationFile, path: string, opts: BuildReportOptions, note: (n: string) => void): Promise<ReportPatches> {
  const files = opts.patches?.length ? await patchFiles(opts.patches) : [];
  // loadPatches names files exactly as `evaluate` did for the same list, so names match results.json.
  const loaded = files.length ? await loadPatches(files) : [];
  const kinds = new Map(await Promise.all(loaded.map(async (p, k) => [p.name, { path: files[k]!, sidecar: await sidecarKind(files[k]!) }] as const)));
  const pixels = new Map<string, PatchPixels>(loaded.map((p) => [p.name, { data: p.rgb, size: p.size }]));
  const section = patchesSection(ev, path, kinds);

  const noise = section.patches.find((p) => p.name === 'noise' && !pixels.has(p.name));
  if (noise) {
    // `evaluate` generates its control as noisePatch(64, --seed); the seed is not in older results.json.
    const seed = ev.seed ?? opts.noiseSeed ?? 0;
    if (ev.seed === undefined && opts.noiseSeed === undefined) note(`the noise patch is redrawn with seed 0 (results.json does not record --seed)`);
    const { noisePatch } = await import('../evaluate/evaluate-patches.js');
    const n = noisePatch(64, seed);
    pixels.set('noise', { data: n.rgb, size: n.size });
  }
  const missing = section.patches.filter((p) => !pixels.has(p.name)).map((p) => p.name);
  if (missing.length) note(`no image for patch ${quotedList(missing)}${opts.patches?.length ? ' among --patches' : ' (pass the patch files with --patches)'}`);
  const unused = loaded.filter((p) => !section.patches.some((q) => q.name === p.name)).map((p) => p.name);
  if (unused.length) note(`patch files ${quotedList(unused)} are not in ${path}`);

  for (const p of section.patches) {
    const px = pixels.get(p.name);
    if (px) p.image = await rgbUri(px.data as Uint8Array, px.size, px.size, { format: 'png', max: 160 });
  }
  const examples =
    opts.examples === false ? new Map<string, PatchExample>()
    : opts.examples ? new Map(Object.entries(opts.examples))
    : await patchExamples(ev, pixels, note);
  for (const p of section.patches) p.example = examples.get(p.name) ?? null;
  if (!section.patches.some((p) => isNoiseName(p.name))) note('no noise control in the evaluation (evaluate --noise)');
  return section;
}

/**
 * The `kind` in the JSON sidecar `patch-atlas patch` writes beside a patch (x.png → x.json, other
 * formats x.jpg.json): '' for a sidecar without one, null when there is no readable sidecar.
 */
async function sidecarKind(file: string): Promise<string | null> {
  const ext = extname(file);
  for (const f of [join(dirname(file), `${basename(file, ext)}.json`), `${file}.json`]) {
    const text = await readFile(f, 'utf8').catch(() => null);
    if (text === null) continue;
    try {
      const kind = (JSON.parse(text) as { kind?: unknown }).kind;
      return typeof kind === 'string' ? kind : '';
    } catch {
      return null;
    }
  }
  return null;
}

/** The files `loadPatches` would read for these arguments, in its order (folders: image files, sorted). */
async function patchFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new PatchAtlasError('NOT_FOUND', `--patches ${p} does not exist`);
    if (s.isDirectory()) files.push(...(await readdir(p)).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort().map((f) => join(p, f)));
    else files.push(p);
  }
  return files;
}

function accuracySection(a: AccuracyReport): ReportAccuracy {
  return {
    model: a.model,
    source: a.source,
    images: a.images,
    top1: a.top1,
    top5: a.top5,
    correctTop1: a.correctTop1,
    correctTop5: a.correctTop5,
    unlabelled: a.unlabelled ?? 0,
    skipped: a.skipped?.length ?? 0,
    perClass: [...(a.perClass ?? [])].sort((x, y) => x.top1 - y.top1 || x.name.localeCompare(y.name)).map((c) => ({ wnid: c.wnid, name: c.name, images: c.images, top1: c.top1, top5: c.top5 })),
  };
}

function checkAccuracy(raw: unknown, path: string): AccuracyReport {
  const a = raw as Partial<AccuracyReport> | null;
  if (!a || typeof a !== 'object' || typeof a.top1 !== 'number' || typeof a.images !== 'number') {
    throw new PatchAtlasError('BAD_CONFIG', `${path} is not the JSON of \`patch-atlas accuracy --json\`: no top1/images`);
  }
  return a as AccuracyReport;
}

function settings(opts: BuildReportOptions, inputs: Omit<ReportSettings['inputs'], 'patches'>, atlas: ReportAtlas | null, p: ReportPatches | null, acc: ReportAccuracy | null): ReportSettings {
  const rows: ReportSettings['rows'] = [];
  const row = (name: string, value: unknown) => rows.push({ name, value: String(value) });
  if (atlas) {
    row('atlas', `${atlas.kind}${atlas.classes.length ? `: ${atlas.classes.map((c) => `${c.name} (${c.wnid})`).join(' vs ')}` : ''}`);
    row('atlas model / layer', `${atlas.model} / ${atlas.layer}`);
    row('atlas run', atlas.run);
    row('atlas grid / points / cells', `${atlas.grid}×${atlas.grid} / ${atlas.points} / ${atlas.cells.length}`);
  }
  if (p) {
    row('evaluation', p.mode === 'targeted' ? `targeted: ${p.source!.name} (${p.source!.wnid}) → ${p.target.name} (${p.target.wnid})` : `universal: any class → ${p.target.name} (${p.target.wnid})`);
    row('evaluation model', p.model);
    row('patch sizes', p.sizes.join(', '));
    row('patch positions', p.positions.join(', '));
    row('patch shape', p.circular ? 'circular' : 'square');
    row('test images (skipped)', `${p.images} (${p.skipped})`);
    row('patches', p.patches.map((x) => x.name).join(', '));
  }
  if (acc) {
    row('accuracy model', acc.model);
    row('accuracy images', `${acc.images} from ${acc.source}`);
  }
  return { command: opts.command ?? null, inputs: { ...inputs, patches: opts.patches ?? [] }, rows };
}

function defaultTitle(atlas: ReportAtlas | null, p: ReportPatches | null): string {
  if (p) return p.source ? `${p.source.name} → ${p.target.name}` : `any class → ${p.target.name}`;
  if (atlas?.classes.length) return atlas.classes.map((c) => c.name).join(' vs ');
  return 'patch-atlas report';
}

/** A file, or the named file inside a folder. */
function inFolder(p: string, file: string, flag: string): string {
  if (!existsSync(p)) throw new PatchAtlasError('NOT_FOUND', `${flag} ${p} does not exist`);
  if (statSync(p).isDirectory()) {
    const f = join(p, file);
    if (!existsSync(f)) throw new PatchAtlasError('NOT_FOUND', `${flag} ${p} is a folder without ${file}`);
    return f;
  }
  return p;
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PatchAtlasError('BAD_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`);
  }
}
