import { PatchAtlasError } from '../errors.js';
import { closest } from '../util/suggest.js';
import type { Classifier } from './classifier.js';

/** What `models check` resolved, for the user to read back. */
export interface ModelCheck {
  logits: { tensor: string; width: number };
  labels: { set: string; classes: number; offset: number };
  defaultLayer: { name: string; tensor: string; shape: number[] };
  aliases: Array<{ alias: string; tensor: string; shape: Array<number | null> | null }>;
  /** How `collect` will attribute at the atlas layer: one forward-mode pass for every class, or a backward pass per class. */
  attribution: { method: 'jvp' | 'reverse'; why?: string };
  /** Where gradients run: onnxruntime's backward graphs, or the tfjs engine and why. */
  gradients: { engine: string; why?: string };
  /** What the check accepted with a remark (a logits tensor found by the final-Softmax rule). */
  notes: string[];
}

/**
 * Everything the pipeline will ask of a descriptor, checked against its loaded model before any work (loading
 * already checked the weights, the logits tensor and that the label count fits the output width): every alias names
 * a tensor of the model, and the atlas layer is spatial ([H, W, C]). The first problem is one BAD_DESCRIPTOR line
 * naming the key, with the closest names.
 */
export function checkModel(c: Classifier): ModelCheck {
  const d = c.descriptor;
  const names = c.layers.map((l) => l.name);
  const known = new Set(names);
  const bad = (key: string, what: string, given: string): never => {
    const near = closest(given, names, 3);
    throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${d.path}: "${key}" ${what}`, near.length ? `closest: ${near.join(', ')} (all: \`patch-atlas models info ${d.path}\`)` : `list them with \`patch-atlas models info ${d.path}\``);
  };
  const aliases = Object.entries(d.layers.aliases).map(([alias, tensor]) => {
    if (!known.has(tensor)) bad(`layers.aliases.${alias}`, `names "${tensor}", which is not a layer of the model`, tensor);
    return { alias, tensor, shape: c.layers.find((l) => l.name === tensor)!.shape };
  });
  const tensor = d.layers.aliases[d.layers.default] ?? d.layers.default;
  if (!known.has(tensor)) bad('layers.default', `"${d.layers.default}" is neither a layer of the model nor an alias`, d.layers.default);
  const shape = c.layers.find((l) => l.name === tensor)!.shape;
  if (!shape || shape.length !== 3 || shape.some((v) => v === null || v < 1))
    bad('layers.default', `"${d.layers.default}" has output shape [${shape?.join(', ') ?? '?'}]; an atlas layer must be spatial, [height, width, channels]`, d.layers.default);
  return {
    attribution: c.forwardModeAt(tensor) ? { method: 'jvp' } : { method: 'reverse', why: c.noJvp ?? 'a layer on the path from the atlas layer to the logits has no forward-mode rule' },
    gradients: gradientsOf(c),
    notes: c.logitsNote ? [c.logitsNote] : [],
    logits: { tensor: c.logitsLayer, width: c.labels.outputs },
    labels: { set: d.labels.set, classes: c.labels.size, offset: c.labels.offset },
    defaultLayer: { name: d.layers.default, tensor, shape: shape as number[] },
    aliases,
  };
}

function gradientsOf(c: Classifier): ModelCheck['gradients'] {
  const why = c.nativeGradientProblem();
  return why === undefined ? { engine: 'onnxruntime' } : { engine: c.backend, why };
}
