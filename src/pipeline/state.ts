import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PatchAtlasError } from '../errors.js';
import { writeJsonAtomic } from '../util/atomic.js';

export const PIPELINE_FORMAT = 'patch-atlas-pipeline/1';
export const STATE_FILE = 'pipeline.json';

/**
 * A stage's outputs: file paths relative to the pipeline folder (so the folder can be moved), plus
 * small facts for the summary. `files` are checked before a finished stage is reused.
 */
export interface StageOutputs {
  files: Record<string, string>;
  /** Patch images this stage made, for `evaluate` (relative paths). */
  patches?: string[];
  /** Files read from outside the stage that later stages need too (absolute when outside the pipeline folder); not checked. */
  inputs?: string[];
  /** Anything else worth keeping (counts, rates), shown in pipeline.json only. */
  facts?: Record<string, unknown>;
}

export interface StageRecord {
  key: string;
  /** 'running' while the stage works: a re-run with the same key resumes (its folder is kept). */
  status: 'running' | 'done';
  settings: unknown;
  deps: Record<string, string>;
  started: string;
  finished?: string;
  seconds?: number;
  outputs?: StageOutputs;
}

export interface PipelineState {
  format: typeof PIPELINE_FORMAT;
  tool: string;
  model: string;
  images: { source: string; count: number; hash: string };
  stages: Record<string, StageRecord>;
}

/** pipeline.json of a folder, or null for a new folder. A file that is not ours is an error, never overwritten. */
export async function readState(dir: string): Promise<PipelineState | null> {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new PatchAtlasError('BAD_RUN', `${path} is not valid JSON (${(e as Error).message})`, 'delete it to start the pipeline afresh');
  }
  const s = raw as Partial<PipelineState> | null;
  if (!s || s.format !== PIPELINE_FORMAT || typeof s.stages !== 'object' || s.stages === null) {
    throw new PatchAtlasError('BAD_RUN', `${path} is not a patch-atlas pipeline state (${PIPELINE_FORMAT})`, 'pick another --out, or delete the folder');
  }
  return s as PipelineState;
}

export async function writeState(dir: string, state: PipelineState): Promise<void> {
  await writeJsonAtomic(join(dir, STATE_FILE), state);
}

/** A finished stage whose key matches and whose files are all still there. */
export function reusable(rec: StageRecord | undefined, key: string, dir: string): rec is StageRecord & { outputs: StageOutputs } {
  if (!rec || rec.key !== key || rec.status !== 'done' || !rec.outputs) return false;
  const files = [...Object.values(rec.outputs.files), ...(rec.outputs.patches ?? [])];
  return files.every((f) => existsSync(join(dir, f)));
}
