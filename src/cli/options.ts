import type { Argv } from 'yargs';
import { ENGINE_CHOICES, type EngineChoice } from '../engine/index.js';
import { Classifier } from '../model/classifier.js';
import { DEFAULT_MODEL } from '../model/descriptor.js';
import { PatchAtlasError } from '../errors.js';
import { flagFail, type ParamFail } from '../recipes/params.js';
import { lazyProgress } from '../util/progress.js';
import type { CliIO } from './io.js';

export interface ModelArgs {
  /** Absent when not given: the model a result file records, else the default model. */
  model?: string;
  weights?: string;
  backend: EngineChoice;
  offline: boolean;
}

/** The flags every command that loads a model shares. */
export function withModel<T>(y: Argv<T>) {
  return y
    .option('model', { alias: 'm', type: 'string', describe: `built-in model name (see \`models list\`), a descriptor .json, or an .onnx file with its descriptor (same name, .json) beside it (default: the model that made the --atlas / --run / patches given, else ${DEFAULT_MODEL})` })
    .option('weights', { type: 'string', describe: 'folder holding the model file (model.json, or model.onnx), or the file itself; overrides PATCH_ATLAS_MODELS and the cache' })
    .option('backend', { alias: 'engine', type: 'string', choices: ENGINE_CHOICES as EngineChoice[], default: 'auto' as EngineChoice, describe: 'engine: auto (onnxruntime when installed for forward passes, and for the network in EOT patch steps, in icon steps where measured faster and in reverse-mode attribution; else wasm), wasm, onnxruntime (the network in every optimisation step), cpu, tensorflow (needs @tensorflow/tfjs-node)' })
    .option('offline', { type: 'boolean', default: false, describe: 'never download weights' });
}

/**
 * The classifier the flags name; without --model, the one `recorded` names (the model that made the result file
 * the command reads: see recordedModel), else the default model.
 */
export async function loadFromArgs(a: ModelArgs, io: CliIO, quiet = false, recorded?: { model: string; weights?: string }): Promise<Classifier> {
  let announced = false;
  const model = a.model ?? recorded?.model ?? DEFAULT_MODEL;
  const weights = a.weights ?? (a.model === undefined ? recorded?.weights : undefined);
  return Classifier.load({
    model,
    backend: a.backend,
    download: !a.offline,
    ...(weights ? { weights } : {}),
    onNote: (line) => {
      if (!quiet) io.err(line);
    },
    onDownload: (done, total, file) => {
      if (quiet) return;
      if (!announced) io.err(`downloading weights for ${model} (${total} files) ...`);
      announced = true;
      if (file && io.errStream.isTTY) io.errStream.write(`\r  ${done + 1}/${total} ${file}\x1b[K`);
      if (!file && io.errStream.isTTY) io.errStream.write('\n');
    },
  });
}

/** "0.2,0.3" → [0.2, 0.3], or one line naming the flag. */
export function numberList(flag: string, v: string): number[] {
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!s.trim() || !Number.isFinite(n)) throw new PatchAtlasError('BAD_FLAG', `--${flag} "${v}" must be comma-separated numbers`, 'e.g. --sizes 0.2,0.3,0.4');
    return n;
  });
}

/** A progress bar on the command's stderr, made on the first update; `update` fits recipes' onProgress. */
export function progressBar(io: CliIO, label: string, enabled: boolean, unit?: string) {
  return lazyProgress(label, { enabled, stream: io.errStream, ...(unit ? { unit } : {}) });
}

/** Flag-named parameter errors where a command's flag is not the recipe's parameter name ({ cossimPower: 'power' }). */
export function flagsNamed(names: Record<string, string>): ParamFail {
  return (key, value, problem, hint) => flagFail(names[key] ?? key, value, problem, hint);
}
