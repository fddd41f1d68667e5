import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { PatchAtlasError } from '../errors.js';
import { isPlainFileName } from '../formats/model-json.js';
import { parseJsonText } from '../formats/file.js';
import type { ModelSource } from '../formats/producer.js';
import { readLabelFile } from '../formats/labels.js';
import { packageRoot } from '../util/paths.js';
import { didYouMean } from '../util/suggest.js';
import { LabelSet } from './labels.js';

/** What patch-atlas needs to know about a model besides its weights (models/*.json). */
export interface ModelDescriptor {
  name: string;
  description: string;
  format: 'layers' | 'graph' | 'onnx';
  weights: {
    /** Official model URL (model.json, or the .onnx file), downloaded into the cache by `models pull`. */
    url?: string;
    /** ONNX: the model file's name in its folder (default model.onnx). */
    file?: string;
    /** The model file itself, when the user named it (`--model path/model.onnx`); not a descriptor key. */
    path?: string;
    /** sha256 (hex) of every weight file by name: checked before a download is taken as complete, and at every load. */
    sha256?: Record<string, string>;
    /** Origins a download may be redirected to besides the URL's own (e.g. GitHub's media host). */
    mirrors?: string[];
    /** Folder name under PATCH_ATLAS_MODELS (and in the cache). */
    localName: string;
  };
  input: {
    size: [number, number];
    /** Resize the shorter side to this before centre-cropping to `size`; null resizes straight to size. */
    resizeShorter: number | null;
    /** Pixel values [0,1] map linearly onto this range (e.g. [-1,1]) ... */
    range?: [number, number];
    /** ... or, instead, are normalised per channel: (x - mean) / std, in [0,1] units. */
    mean?: [number, number, number];
    std?: [number, number, number];
    channelOrder?: 'rgb' | 'bgr';
    /** Graph and ONNX models: the input node name (layers models use their only input). */
    node?: string;
    /** How the model's own input is laid out: ONNX models take NCHW (converted once at load), tfjs models NHWC. */
    layout: 'nhwc' | 'nchw';
  };
  labels: { set: string; offset: number };
  output: {
    /** What the model's final output is; attribution always uses pre-softmax logits. */
    kind: 'softmax' | 'logits';
    /** Layer (or graph node) whose output is the logits; default: the model's output. */
    logits?: string;
  };
  layers: { default: string; aliases: Record<string, string> };
  /** Where the descriptor file lives (filled in on load). */
  path: string;
}

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

/** Validate once at the boundary, fill defaults, one message per bad key. */
export function validateDescriptor(raw: unknown, path: string): ModelDescriptor {
  const bad = (key: string, want: string): never => {
    throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path}: "${key}" ${want}`);
  };
  const o = raw as Record<string, any>;
  if (!o || typeof o !== 'object') bad('(root)', 'must be an object');
  if (typeof o.name !== 'string' || !o.name) bad('name', 'must be a non-empty string');
  if (o.format !== 'layers' && o.format !== 'graph' && o.format !== 'onnx') bad('format', 'must be "layers", "graph" (tfjs) or "onnx"');
  const w = o.weights ?? {};
  if (w.mirrors !== undefined && (!Array.isArray(w.mirrors) || w.mirrors.some((m: unknown) => typeof m !== 'string' || !/^https:\/\/[^/]+\/?$/.test(m))))
    bad('weights.mirrors', 'must be a list of https origins, e.g. ["https://media.githubusercontent.com"]');
  if (w.sha256 !== undefined && (typeof w.sha256 !== 'object' || w.sha256 === null || Array.isArray(w.sha256) || Object.entries(w.sha256).some(([f, h]) => !isPlainFileName(f) || typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h))))
    bad('weights.sha256', 'must map weight file names to sha256 hashes (64 lowercase hex digits); `patch-atlas models pin` writes it');
  // A plain folder name: it is joined to the models folder and the cache, and a download replaces that folder.
  if (typeof w.localName !== 'string' || !isPlainFileName(w.localName)) bad('weights.localName', 'must be a plain folder name (no "/", "\\" or "..")');
  if (w.url !== undefined && (typeof w.url !== 'string' || !(o.format === 'onnx' ? /^https?:\/\/.+\.onnx$/ : /^https?:\/\/.+\/model\.json$/).test(w.url)))
    bad('weights.url', o.format === 'onnx' ? 'must be an http(s) URL ending in .onnx' : 'must be an http(s) URL ending in model.json');
  if (w.file !== undefined && (o.format !== 'onnx' || typeof w.file !== 'string' || !/^[^/\\]+\.onnx$/.test(w.file) || w.file.startsWith('.')))
    bad('weights.file', 'is for ONNX models only and must be a plain file name ending in .onnx');
  const i = o.input ?? {};
  const pair = (v: unknown) => Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  const triple = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!pair(i.size) || i.size.some((x: number) => !Number.isInteger(x) || x < 8)) bad('input.size', 'must be [height, width], integers >= 8');
  const resizeShorter = i.resizeShorter === undefined ? Math.round(Math.min(...(i.size as number[])) * 256 / 224) : i.resizeShorter;
  if (resizeShorter !== null && (!Number.isInteger(resizeShorter) || resizeShorter < Math.max(...(i.size as number[])))) bad('input.resizeShorter', 'must be null or an integer >= the input size');
  if (i.range !== undefined && (!pair(i.range) || i.range[0] >= i.range[1])) bad('input.range', 'must be [low, high] with low < high');
  if ((i.mean === undefined) !== (i.std === undefined)) bad(i.mean === undefined ? 'input.mean' : 'input.std', 'must be given together with input.std / input.mean');
  if (i.mean !== undefined && (!triple(i.mean) || !triple(i.std) || i.std.some((s: number) => s <= 0))) bad('input.mean', 'and input.std must be three numbers each (std > 0)');
  if (i.range !== undefined && i.mean !== undefined) bad('input.range', 'cannot be combined with input.mean/std');
  if (i.channelOrder !== undefined && i.channelOrder !== 'rgb' && i.channelOrder !== 'bgr') bad('input.channelOrder', 'must be "rgb" or "bgr"');
  const l = o.labels ?? {};
  if (typeof l.set !== 'string') bad('labels.set', 'must name a label set in models/labels/ or a path to one');
  const offset = l.offset ?? 0;
  if (offset !== 0 && offset !== 1) bad('labels.offset', 'must be 0, or 1 for models with a leading background class');
  const out = o.output ?? {};
  if (out.kind !== 'softmax' && out.kind !== 'logits') bad('output.kind', 'must be "softmax" or "logits"');
  if (out.kind === 'softmax' && typeof out.logits !== 'string') bad('output.logits', 'must name the pre-softmax layer when output.kind is "softmax"');
  const ly = o.layers ?? {};
  if (typeof ly.default !== 'string') bad('layers.default', 'must name the default layer for atlases');
  const aliases = ly.aliases ?? {};
  if (typeof aliases !== 'object' || Object.values(aliases).some((v) => typeof v !== 'string')) bad('layers.aliases', 'must map alias names to layer names');
  return {
    name: o.name,
    description: typeof o.description === 'string' ? o.description : '',
    format: o.format,
    weights: { localName: w.localName, ...(w.url ? { url: w.url } : {}), ...(w.file ? { file: w.file } : {}), ...(w.sha256 ? { sha256: w.sha256 } : {}), ...(w.mirrors ? { mirrors: w.mirrors } : {}) },
    input: {
      size: [i.size[0], i.size[1]],
      resizeShorter,
      ...(i.mean ? { mean: i.mean, std: i.std } : { range: i.range ?? [0, 1] }),
      channelOrder: i.channelOrder ?? 'rgb',
      ...(i.node ? { node: i.node } : {}),
      layout: o.format === 'onnx' ? 'nchw' : 'nhwc',
    },
    labels: { set: l.set, offset },
    output: { kind: out.kind, ...(out.logits ? { logits: out.logits } : {}) },
    layers: { default: ly.default, aliases },
    path,
  };
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
