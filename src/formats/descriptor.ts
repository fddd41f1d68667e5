import { PatchAtlasError } from '../errors.js';
import { closest } from '../util/suggest.js';
import { isPlainFileName } from './model-json.js';

/**
 * The model descriptor (models/*.json, or a file of the user's own): what patch-atlas needs to know about a model
 * besides its weights. Every key, its default and an example per model format: docs/models.md. Version 1 is the
 * only one; a descriptor may say so with `"schema": "patch-atlas-model/1"` (absent means 1). Unknown keys are
 * refused with the closest known one, so a typo never silently falls back to a default.
 */
export const DESCRIPTOR_SCHEMA = 'patch-atlas-model/1';

/** The keys of each object in a descriptor (a value of null: the object's keys are free, as aliases and pins). */
const KEYS: Record<string, Record<string, unknown> | null> = {
  '': { schema: 1, name: 1, description: 1, format: 1, weights: 1, input: 1, labels: 1, output: 1, layers: 1 },
  weights: { url: 1, localName: 1, file: 1, mirrors: 1, sha256: 1 },
  input: { size: 1, resizeShorter: 1, range: 1, mean: 1, std: 1, channelOrder: 1, node: 1 },
  labels: { set: 1, offset: 1 },
  output: { kind: 1, logits: 1 },
  layers: { default: 1, aliases: 1 },
};

function unknownKeys(o: Record<string, unknown>, keys: typeof KEYS, at: string, path: string): void {
  const known = keys[at];
  if (!known) return;
  for (const [k, v] of Object.entries(o)) {
    const key = at ? `${at}.${k}` : k;
    if (!(k in known)) {
      const near = closest(k, Object.keys(known), 1);
      throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path}: unknown key "${key}"`, near.length ? `did you mean "${at ? `${at}.` : ''}${near[0]}"? (every key: docs/models.md)` : 'every key: docs/models.md');
    }
    if (!at && v && typeof v === 'object' && !Array.isArray(v) && key in keys) unknownKeys(v as Record<string, unknown>, keys, key, path);
  }
}

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

/** Validate once at the boundary, fill defaults, one message per bad key. */
export function validateDescriptor(raw: unknown, path: string): ModelDescriptor {
  const bad = (key: string, want: string): never => {
    throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${path}: "${key}" ${want}`);
  };
  const o = raw as Record<string, any>;
  if (!o || typeof o !== 'object' || Array.isArray(raw)) bad('(root)', 'must be an object');
  if (o.schema !== undefined && o.schema !== DESCRIPTOR_SCHEMA)
    bad('schema', typeof o.schema === 'string' && o.schema.startsWith('patch-atlas-model/') ? `is ${o.schema}, from a newer patch-atlas; this one reads ${DESCRIPTOR_SCHEMA}` : `must be "${DESCRIPTOR_SCHEMA}" (or left out)`);
  unknownKeys(o, KEYS, '', path);
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

