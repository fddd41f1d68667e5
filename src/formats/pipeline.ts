import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readFormat, writeFormat, type Format } from './file.js';
import { producerSchema } from './producer.js';

/**
 * pipeline.json: the state of a `run` folder. Per stage its cache key (settings, the keys of the
 * stages it reads, tool version, model and image list), status, timing and outputs; a re-run reuses a
 * stage whose key and files are unchanged and resumes one left 'running'.
 *
 * Version 2 adds `producer`; a version-1 file is upgraded on read (its keys stay valid).
 */
export const PIPELINE_FORMAT = 'patch-atlas-pipeline/2';
export const STATE_FILE = 'pipeline.json';

/**
 * A stage's outputs: file paths relative to the pipeline folder (so the folder can be moved), plus
 * small facts for the summary. `files` are checked before a finished stage is reused.
 */
const outputsSchema = z.object({
  files: z.record(z.string(), z.string()),
  /** Patch images this stage made, for `evaluate` (relative paths). */
  patches: z.array(z.string()).optional(),
  /** Files read from outside the stage that later stages need too (absolute when outside the pipeline folder); not checked. */
  inputs: z.array(z.string()).optional(),
  /** Anything else worth keeping (counts, rates), shown in pipeline.json only. */
  facts: z.record(z.string(), z.unknown()).optional(),
});
export type StageOutputs = z.infer<typeof outputsSchema>;

const stageSchema = z.object({
  key: z.string(),
  /** 'running' while the stage works: a re-run with the same key resumes (its folder is kept). */
  status: z.enum(['running', 'done']),
  settings: z.unknown(),
  deps: z.record(z.string(), z.string()),
  started: z.string(),
  finished: z.string().optional(),
  seconds: z.number().optional(),
  outputs: outputsSchema.optional(),
});
export type StageRecord = z.infer<typeof stageSchema>;

const stateSchema = z.object({
  format: z.literal(PIPELINE_FORMAT),
  producer: producerSchema,
  /** Tool version and model (with its weights folder) as they enter every stage key. */
  tool: z.string(),
  model: z.string(),
  images: z.object({ source: z.string(), count: z.number().int(), hash: z.string() }),
  stages: z.record(z.string(), stageSchema),
});
export type PipelineState = z.infer<typeof stateSchema>;

export const pipelineFormat: Format<PipelineState> = {
  what: 'a patch-atlas pipeline state',
  file: STATE_FILE,
  version: PIPELINE_FORMAT,
  schema: stateSchema,
  code: 'BAD_RUN',
  hint: 'pick another --out, or delete the folder to start the pipeline afresh',
  upgrades: {
    'patch-atlas-pipeline/1': (raw) => ({
      ...raw,
      format: PIPELINE_FORMAT,
      producer: { tool: 'patch-atlas', version: String(raw.tool ?? 'unknown'), model: typeof raw.model === 'string' ? raw.model : null, engine: 'unknown', threads: 0 },
    }),
  },
};

/** pipeline.json of a folder, or null for a new folder. A file that is not ours is an error, never overwritten. */
export function readPipelineState(dir: string): PipelineState | null {
  const path = join(dir, STATE_FILE);
  return existsSync(path) ? readFormat(pipelineFormat, path) : null;
}

export async function writePipelineState(dir: string, state: PipelineState): Promise<void> {
  await writeFormat(pipelineFormat, join(dir, STATE_FILE), state);
}
