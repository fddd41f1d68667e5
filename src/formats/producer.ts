import { z } from 'zod';
import { engineInfo } from '../engine/info.js';
import { packageVersion } from '../util/paths.js';

/**
 * Who made a file: every format records it, so a result can be traced to the tool version, the model
 * and the engine (backend and thread count) that computed it. `model` is null for files no model
 * computed (a split); `engine` is "none" where no engine had started.
 */
/**
 * Where a model that is not built in was loaded from: its descriptor (or `.onnx`) file, that descriptor's sha256,
 * and the `--weights` given with it, so later commands reload it from a result file without `--model`.
 */
export const modelSourceSchema = z.object({ path: z.string(), sha256: z.string(), weights: z.string().optional() });
export type ModelSource = z.infer<typeof modelSourceSchema>;

export const producerSchema = z.object({
  tool: z.literal('patch-atlas'),
  version: z.string(),
  model: z.string().nullable(),
  /** Absent for built-in models (their name finds them) and in files from before it was recorded. */
  source: modelSourceSchema.optional(),
  engine: z.string(),
  threads: z.number(),
});
export type Producer = z.infer<typeof producerSchema>;

/** Model sources by model name, as this process loaded them (Classifier.load records each). */
const sources = new Map<string, ModelSource>();

export function recordModelSource(name: string, source: ModelSource): void {
  sources.set(name, source);
}

/**
 * The producer record for a file written now, by this process. `from` passes on the source recorded by the file
 * a result was made from (an atlas made from a run, with no model loaded).
 */
export function producer(model: string | null, from?: ModelSource): Producer {
  const e = engineInfo();
  const source = (model ? sources.get(model) : undefined) ?? from;
  // "wasm+onnxruntime": gradients on wasm, forward-only passes on onnxruntime.
  return { tool: 'patch-atlas', version: packageVersion(), model, ...(source ? { source } : {}), engine: e.forward ? `${e.backend}+${e.forward}` : e.backend, threads: e.threads };
}
