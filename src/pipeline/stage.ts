import type { Dataset, ImageItem } from '../data/dataset.js';
import type { Split } from '../data/split.js';
import type { Classifier } from '../model/classifier.js';
import type { ModelDescriptor } from '../model/descriptor.js';
import type { ClassRef, LabelSet } from '../model/labels.js';
import type { RunOptions } from './options.js';
import type { StageOutputs } from '../formats/pipeline.js';

/** What every stage can see before anything runs (no model loaded): enough to compute settings and keys. */
export interface PipelineContext {
  /** Absolute pipeline folder. */
  dir: string;
  opts: RunOptions;
  descriptor: ModelDescriptor;
  labels: LabelSet;
  source: ClassRef;
  target: ClassRef;
  /** The collect layer, aliases resolved through the descriptor. */
  layer: string;
  dataset: Dataset;
  /** train → collect, atlas, icons (and patch optimisation); test → evaluation. */
  split: Split<ImageItem>;
  /** Photo patch files (folders expanded, absolute) with their content hashes. */
  photoPatches: Array<{ path: string; name: string; sha256: string }>;
}

/** A stage's own progress, drawn as one bar labelled "[k/N] stage". */
export interface StageProgress {
  /** Set the count done so far (of `total`). */
  update(done: number, total: number): void;
  done(): void;
}

export interface StageRunContext extends PipelineContext {
  /** Absolute folder of this stage (DIR/<name>); emptied before a fresh run, kept for a resumed one. */
  stageDir: string;
  /** True when this run continues an interrupted one with the same key. */
  resuming: boolean;
  /** The model, loaded on first use (a fully cached re-run never loads it). */
  classifier(): Promise<Classifier>;
  /** Outputs of a stage this one depends on. */
  outputs(stage: string): StageOutputs;
  /** Absolute path of an output path relative to the pipeline folder, and back. */
  abs(rel: string): string;
  rel(abs: string): string;
  progress(unit?: string): StageProgress;
  signal: AbortSignal;
  note(message: string): void;
}

export interface StageResult extends StageOutputs {
  /** One line for the terminal. */
  summary: string;
  /** Set when the stage stopped early (Ctrl-C); the pipeline stops and a re-run resumes. */
  interrupted?: boolean;
}

/**
 * One step of `run`. Its cache key hashes `settings(ctx)` with the keys of `deps`, the tool version,
 * the model and the image list; a stage whose key and files are unchanged is reused as is.
 */
export interface Stage {
  name: string;
  deps: readonly string[];
  /** Stages whose `patches` outputs the evaluation pastes (icons, EOT patches). */
  makesPatches?: boolean;
  /** Stops cleanly at its next safe point when the run's signal fires (collect); others are simply rerun. */
  stopsOnSignal?: boolean;
  /** Everything that changes this stage's result, as plain JSON. */
  settings(ctx: PipelineContext): unknown;
  /** One line on what this stage will do with the chosen budget (printed before the run). */
  budget(ctx: PipelineContext): string;
  run(ctx: StageRunContext): Promise<StageResult>;
}
