import { z } from 'zod';
import { engineInfo } from '../engine/info.js';
import { packageVersion } from '../util/paths.js';

/**
 * Who made a file: every format records it, so a result can be traced to the tool version, the model
 * and the engine (backend and thread count) that computed it. `model` is null for files no model
 * computed (a split); `engine` is "none" where no engine had started.
 */
export const producerSchema = z.object({
  tool: z.literal('patch-atlas'),
  version: z.string(),
  model: z.string().nullable(),
  engine: z.string(),
  threads: z.number(),
});
export type Producer = z.infer<typeof producerSchema>;

/** The producer record for a file written now, by this process. */
export function producer(model: string | null): Producer {
  const e = engineInfo();
  // "wasm+onnxruntime": gradients on wasm, forward-only passes on onnxruntime.
  return { tool: 'patch-atlas', version: packageVersion(), model, engine: e.forward ? `${e.backend}+${e.forward}` : e.backend, threads: e.threads };
}
