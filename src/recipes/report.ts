import { listPatchFiles, loadPatches } from '../data/patches.js';
import { diskMedia } from '../data/media.js';
import { PatchAtlasError } from '../errors.js';
import { readAccuracy } from '../formats/accuracy.js';
import { ATLAS_FILE, readAtlas } from '../formats/atlas.js';
import { EVALUATION_FILE, readEvaluation } from '../formats/evaluation.js';
import { inFolder } from '../formats/file.js';
import { sidecarOf } from '../formats/patch.js';
import { readScreen, SCREEN_FILE } from '../formats/screen.js';
import { producer } from '../formats/producer.js';
import { REPORT_FORMAT, reportAssets, writeReportFiles, type PatchExample, type ReportData, type WrittenReport } from '../formats/report.js';
import { loadDescriptor, loadLabels } from '../model/descriptor.js';
import type { ReportInputs } from '../report/build.js';

/**
 * `report`: one self-contained HTML report (plus report-data.json and PNG charts) from whatever results
 * exist: atlas.json, results.json, accuracy.json, the patch files. Each input is optional; what is
 * absent becomes a note. An input that is named but unreadable is an error: a typo should not yield a
 * silently thinner report. The `report` command and `run`'s report stage call this.
 */

export interface ReportRequest {
  /** atlas.json, or the folder holding it. */
  atlas?: string;
  /** results.json from `evaluate`, or the folder holding it. */
  evaluation?: string;
  /** accuracy.json (`accuracy --json`), or the folder holding it. */
  accuracy?: string;
  /** screen.json from `screen`, or its folder. */
  screen?: string;
  /** The patch files or folders given to `evaluate`, for the gallery, the kind of each patch and the examples. */
  patches?: string[];
  /** The model (name or descriptor .json) whose labels name the examples' predictions (default: the evaluation's). */
  model?: string;
  /** Before/after examples when computed elsewhere; `false` skips them. */
  examples?: Record<string, PatchExample> | false;
  /** Seed of the `noise` control when results.json does not record it. */
  noiseSeed?: number;
  /** The command that rebuilds the report, shown under Settings. */
  command?: string;
  title?: string;
  onNote?: (note: string) => void;
}

/** The report's data model from the files named (read through the formats, rendered nowhere yet). */
export async function buildReportData(req: ReportRequest): Promise<ReportData> {
  if (!req.atlas && !req.evaluation && !req.accuracy && !req.screen) {
    throw new PatchAtlasError('BAD_FLAG', 'nothing to report', 'give at least one of --atlas, --evaluation, --accuracy, --screen');
  }
  const atlasPath = req.atlas ? inFolder(req.atlas, ATLAS_FILE) : null;
  const evalPath = req.evaluation ? inFolder(req.evaluation, EVALUATION_FILE) : null;
  const accPath = req.accuracy ? inFolder(req.accuracy, 'accuracy.json') : null;
  const atlas = atlasPath ? { file: readAtlas(atlasPath, { label: '--atlas' }), path: atlasPath } : null;
  const evaluation = evalPath ? { file: readEvaluation(evalPath, { label: '--evaluation' }), path: evalPath } : null;
  const accuracy = accPath ? { file: readAccuracy(accPath, { label: '--accuracy' }), path: accPath } : null;
  const screenPath = req.screen ? inFolder(req.screen, SCREEN_FILE) : null;
  const screen = screenPath ? { file: readScreen(screenPath, { label: '--screen' }), path: screenPath } : null;

  // loadPatches names files exactly as `evaluate` did for the same list, so names match results.json.
  const files = req.patches?.length ? await listPatchFiles(req.patches) : [];
  const images = files.length ? await loadPatches(files) : [];
  const patches = await Promise.all(images.map(async (image, k) => ({ image, path: files[k]!, sidecarKind: (await sidecarOf(files[k]!))?.kind ?? null })));

  // The model that made the results: its descriptor file where it was not built in (recorded by producer()).
  const made = [evaluation?.file, screen?.file, atlas?.file].find((f) => f?.model);
  const modelName = req.model ?? (made ? (made.producer.source?.path ?? made.model) : null);
  const inputs: ReportInputs = {
    atlas,
    evaluation,
    accuracy,
    screen,
    patches,
    patchArgs: req.patches ?? [],
    model: modelInfo(modelName),
    ...(req.examples !== undefined ? { examples: req.examples } : {}),
    ...(req.noiseSeed !== undefined ? { noiseSeed: req.noiseSeed } : {}),
    ...(req.command !== undefined ? { command: req.command } : {}),
    ...(req.title !== undefined ? { title: req.title } : {}),
    ...(req.onNote ? { onNote: req.onNote } : {}),
  };
  // Loaded here, not at the top: chart.js and the canvas binding should not slow every other command.
  const { reportData } = await import('../report/build.js');
  return { format: REPORT_FORMAT, producer: producer(made?.model ?? modelName, made?.producer.source), ...(await reportData(inputs, diskMedia)) };
}

/** report.html, report-data.json and, unless `png: false`, charts/*.png in `dir`. */
export async function writeReport(data: ReportData, dir: string, opts: { png?: boolean } = {}): Promise<WrittenReport> {
  const [{ renderReport }, { chartPngs }] = await Promise.all([import('../report/render.js'), import('../report/charts-png.js')]);
  const assets = reportAssets();
  const charts = opts.png === false ? [] : await chartPngs(data, assets.clientJs);
  return writeReportFiles(dir, data, renderReport(data, assets), charts);
}

/** The labels and preprocessing of a model known here (built in, or a descriptor file), or why not. */
function modelInfo(model: string | null): ReportInputs['model'] {
  if (!model) return { unknown: 'no model is named by the evaluation' };
  try {
    const d = loadDescriptor(model);
    return { labels: loadLabels(d), pre: { size: d.input.size, resizeShorter: d.input.resizeShorter }, inputSize: d.input.size };
  } catch (e) {
    return { unknown: `model ${model} is not known here (${(e as Error).message}); pass --model with its descriptor` };
  }
}
