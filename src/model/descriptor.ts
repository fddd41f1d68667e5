import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { PatchAtlasError } from '../errors.js';
import { parseJsonText } from '../formats/file.js';
import type { ModelSource } from '../formats/producer.js';
import { validateDescriptor, type ModelDescriptor } from '../formats/descriptor.js';

export { DESCRIPTOR_SCHEMA, validateDescriptor, type ModelDescriptor } from '../formats/descriptor.js';
import { readLabelFile } from '../formats/labels.js';
import { packageRoot } from '../util/paths.js';
import { didYouMean } from '../util/suggest.js';
import { LabelSet } from './labels.js';

export function modelsDir(): string {
  return join(packageRoot(), 'models');
}

/** Names of the built-in descriptors. */
export function listDescriptors(): string[] {
  return readdirSync(modelsDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

export const DEFAULT_MODEL = 'mobilenet_v1_0.75';

/** A built-in model name, or a path to a descriptor JSON of the user's own. */
export function loadDescriptor(nameOrPath: string = DEFAULT_MODEL): ModelDescriptor {
  if (nameOrPath.endsWith('.onnx')) return descriptorBeside(nameOrPath);
  const looksLikePath = nameOrPath.endsWith('.json') || nameOrPath.includes('/') || nameOrPath.includes('\\');
  let path: string;
  if (looksLikePath) {
    path = resolve(nameOrPath);
    if (!existsSync(path)) throw new PatchAtlasError('NOT_FOUND', `model descriptor ${nameOrPath} does not exist`, 'pass a built-in model name (`patch-atlas models list`) or a descriptor .json');
  } else {
    path = join(modelsDir(), `${nameOrPath}.json`);
    if (!existsSync(path)) {
      const hint = didYouMean(nameOrPath, listDescriptors());
      throw new PatchAtlasError('UNKNOWN_MODEL', `unknown model "${nameOrPath}"`, hint || `built-in models: ${listDescriptors().join(', ')}`);
    }
  }
  const raw = parseJsonText(readFileSync(path, 'utf8'), (where) => new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path} is not valid JSON: ${where}`));
  return validateDescriptor(raw, path);
}

/** Whether the descriptor is one of the built-in ones (its name alone finds it again). */
export function isBuiltIn(d: ModelDescriptor): boolean {
  return resolve(dirname(d.path)) === resolve(modelsDir()) && !d.weights.path;
}

/** What reloads a model that is not built in: its descriptor (or `.onnx`) file, the file's hash and the --weights given. */
export function sourceOf(d: ModelDescriptor, weights?: string): ModelSource {
  const path = d.weights.path ?? d.path;
  return { path, sha256: createHash('sha256').update(readFileSync(d.path)).digest('hex'), ...(weights ? { weights: resolve(weights) } : {}) };
}

/**
 * The --model (and --weights) that reload the model a result file records: the recorded descriptor file of a model
 * that is not built in, else its name. `what` names the file for the message when the descriptor has gone.
 */
export function recordedModel(model: string, source: ModelSource | undefined, what: string): { model: string; weights?: string } {
  if (!source) return { model };
  if (!existsSync(source.path))
    throw new PatchAtlasError('NOT_FOUND', `${what} was made with model "${model}" from ${source.path}, which no longer exists`, 'pass --model with its descriptor (and --weights if it needed them)');
  return { model: source.path, ...(source.weights ? { weights: source.weights } : {}) };
}

/**
 * `--model path/model.onnx`: the descriptor beside it (model.json next to model.onnx), whose weights are then that
 * file whatever its folder and file name say.
 */
function descriptorBeside(onnxPath: string): ModelDescriptor {
  const file = resolve(onnxPath);
  if (!existsSync(file)) throw new PatchAtlasError('NOT_FOUND', `--model ${onnxPath} does not exist`, 'pass an ONNX file, a descriptor .json or a built-in model name');
  const path = file.replace(/\.onnx$/, '.json');
  if (!existsSync(path))
    throw new PatchAtlasError('BAD_DESCRIPTOR', `${onnxPath} has no descriptor beside it: write ${path}`, 'it says how images are preprocessed and which labels the outputs are; docs/models.md has every key (copy models/googlenet.json to start)');
  const raw = parseJsonText(readFileSync(path, 'utf8'), (where) => new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path} is not valid JSON: ${where}`));
  const d = validateDescriptor(raw, path);
  if (d.format !== 'onnx') throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path}: "format" must be "onnx" for ${onnxPath}`);
  return { ...d, weights: { ...d.weights, path: file } };
}

const labelCache = new Map<string, LabelSet>();

/** The descriptor's label set: a built-in name (models/labels/NAME.json) or a path relative to the descriptor. */
export function loadLabels(d: ModelDescriptor): LabelSet {
  const key = `${d.labels.set}@${d.labels.offset}@${dirname(d.path)}`;
  const hit = labelCache.get(key);
  if (hit) return hit;
  const file = d.labels.set.endsWith('.json')
    ? isAbsolute(d.labels.set) ? d.labels.set : resolve(dirname(d.path), d.labels.set)
    : join(modelsDir(), 'labels', `${d.labels.set}.json`);
  if (!existsSync(file)) throw new PatchAtlasError('BAD_DESCRIPTOR', `label set ${file} (from ${d.path}) does not exist`);
  const set = new LabelSet(readLabelFile(file), d.labels.offset);
  labelCache.set(key, set);
  return set;
}
