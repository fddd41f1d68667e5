/**
 * The report's data model from the results it is given (atlas.json, results.json, accuracy.json and
 * the patch images, already read by the report recipe). Each input is optional; what is absent becomes
 * a note in the report. Pictures come through `Media`, so this module never touches the disk.
 */
import type { Media } from '../data/media.js';
import type { PatchImage } from '../data/patches.js';
import type { Preprocess } from '../data/pixels.js';
import type { AccuracyReport } from '../formats/accuracy.js';
import type { AtlasFile } from '../formats/atlas.js';
import type { EvaluationFile } from '../formats/evaluation.js';
import type { ScreenFile } from '../formats/screen.js';
import type { PatchExample, ReportAccuracy, ReportAtlas, ReportData, ReportPatches, ReportScreen, ReportSettings } from '../formats/report.js';
import type { LabelSet } from '../model/labels.js';
import type { PatchPixels } from '../patch/paste.js';
import { atlasSection } from './atlas.js';
import { patchExamples } from './examples.js';
import { screenSection } from './screen.js';
import { quotedList } from './format.js';
import { patchesSection } from './patches.js';
import { summarise } from './summary.js';

export interface ReportInputs {
  atlas: { file: AtlasFile; path: string } | null;
  evaluation: { file: EvaluationFile; path: string } | null;
  accuracy: { file: AccuracyReport; path: string } | null;
  screen: { file: ScreenFile; path: string } | null;
  /** The patch images given (in `loadPatches` order, so names match results.json), each with its file and its sidecar's kind (null: none). */
  patches: Array<{ image: PatchImage; path: string; sidecarKind: string | null }>;
  /** The --patches arguments as given, for the settings table. */
  patchArgs: string[];
  /** The evaluation's model, for before/after examples: its labels and preprocessing, or why it is unknown. */
  model: { labels: LabelSet; pre: Preprocess; inputSize: [number, number] } | { unknown: string };
  /** Before/after examples by patch name when computed elsewhere; `false` skips them; absent: drawn here. */
  examples?: Record<string, PatchExample> | false;
  /** Seed of the `noise` control when results.json does not record it (evaluate's default: 0). */
  noiseSeed?: number;
  /** The command that rebuilds the report, shown under Settings. */
  command?: string;
  title?: string;
  onNote?: (note: string) => void;
}

/** ReportData but its file header (format, producer), which the report recipe adds. */
export type ReportBody = Omit<ReportData, 'format' | 'producer'>;

export async function reportData(inputs: ReportInputs, media: Media): Promise<ReportBody> {
  const notes: string[] = [];
  const note = (n: string) => {
    notes.push(n);
    inputs.onNote?.(n);
  };
  let atlas: ReportAtlas | null = null;
  if (inputs.atlas) atlas = await atlasSection(inputs.atlas.file, inputs.atlas.path, media, { onNote: note });
  else note('no atlas given (--atlas): the atlas and bridge sections are empty');

  let patches: ReportPatches | null = null;
  if (inputs.evaluation) patches = await patchGallery(inputs.evaluation.file, inputs.evaluation.path, inputs, media, note);
  else note('no evaluation given (--evaluation): the patch sections are empty');

  let accuracy: ReportAccuracy | null = null;
  if (inputs.accuracy) accuracy = accuracySection(inputs.accuracy.file);
  else note('no accuracy report given (--accuracy)');

  const screen = inputs.screen ? await screenSection(inputs.screen.file, inputs.screen.path, media, { model: 'unknown' in inputs.model ? null : inputs.model }) : null;

  const title = inputs.title?.trim() || defaultTitle(atlas, patches, screen);
  return {
    created: new Date().toISOString(),
    title,
    summary: summarise({ patches, accuracy, atlas, screen }),
    settings: settings(inputs, { atlas: inputs.atlas?.path ?? null, evaluation: inputs.evaluation?.path ?? null, accuracy: inputs.accuracy?.path ?? null }, atlas, patches, accuracy),
    notes,
    accuracy,
    atlas,
    patches,
    screen,
  };
}

async function patchGallery(ev: EvaluationFile, path: string, inputs: ReportInputs, media: Media, note: (n: string) => void): Promise<ReportPatches> {
  const kinds = new Map(inputs.patches.map((p) => [p.image.name, { path: p.path, sidecar: p.sidecarKind }] as const));
  const pixels = new Map<string, PatchPixels>(inputs.patches.map((p) => [p.image.name, { data: p.image.rgb, size: p.image.px }]));
  const section = patchesSection(ev, path, kinds);

  const noiseName = ev.noise?.name ?? 'noise';
  const noise = section.patches.find((p) => p.name === noiseName && !pixels.has(p.name));
  if (noise) {
    // The generated control is redrawn from its recorded side and seed (older results.json: seed 0 unless told).
    const seed = ev.noise?.seed ?? inputs.noiseSeed ?? 0;
    if (!ev.noise && inputs.noiseSeed === undefined) note(`the noise patch is redrawn with seed 0 (results.json does not record --seed)`);
    const { noisePatch } = await import('../evaluate/evaluate-patches.js');
    const n = noisePatch(ev.noise?.patchPx ?? 64, seed);
    pixels.set(noiseName, { data: n.rgb, size: n.px });
  }
  const missing = section.patches.filter((p) => !pixels.has(p.name)).map((p) => p.name);
  if (missing.length) note(`no image for patch ${quotedList(missing)}${inputs.patchArgs.length ? ' among --patches' : ' (pass the patch files with --patches)'}`);
  const unused = inputs.patches.filter((p) => !section.patches.some((q) => q.name === p.image.name)).map((p) => p.image.name);
  if (unused.length) note(`patch files ${quotedList(unused)} are not in ${path}`);

  for (const p of section.patches) {
    const px = pixels.get(p.name);
    if (px) p.image = await media.rgb(px.data as Uint8Array, px.size, px.size, { format: 'png', max: 160 });
  }
  const examples =
    inputs.examples === false ? new Map<string, PatchExample>()
    : inputs.examples ? new Map(Object.entries(inputs.examples))
    : 'unknown' in inputs.model ? (note(`no before/after examples: ${inputs.model.unknown}`), new Map<string, PatchExample>())
    : await patchExamples(ev, pixels, inputs.model, media, note);
  for (const p of section.patches) p.example = examples.get(p.name) ?? null;
  if (!section.patches.some((p) => p.kind === 'noise')) note('no noise control in the evaluation (evaluate --noise)');
  return section;
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

function settings(opts: ReportInputs, inputs: Omit<ReportSettings['inputs'], 'patches'>, atlas: ReportAtlas | null, p: ReportPatches | null, acc: ReportAccuracy | null): ReportSettings {
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
  return { command: opts.command ?? null, inputs: { ...inputs, patches: opts.patchArgs }, rows };
}

function defaultTitle(atlas: ReportAtlas | null, p: ReportPatches | null, screen: ReportScreen | null): string {
  if (p) return p.source ? `${p.source.name} → ${p.target.name}` : `any class → ${p.target.name}`;
  if (atlas?.classes.length) return atlas.classes.map((c) => c.name).join(' vs ');
  if (screen?.sets.length) return `Screen of ${screen.sets.map((s) => `${s.pairs} ${s.name}`).join(' + ')} class pairs, ${screen.model}`;
  return 'patch-atlas report';
}
