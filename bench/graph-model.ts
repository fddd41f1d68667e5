/**
 * TensorFlow.js graph models written from JavaScript, as tfjs-converter would write them (no converter runs
 * offline here): a small builder for GraphDef JSON + weights, and a Keras layers model (the default MobileNet,
 * or the tests' tiny one) written as a graph with batch norms folded into fused conv ops, the converter's way.
 * Used by the tests (graph-model fixtures) and by the bench (collect on a graph model vs the same layers model).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { foldedWeights } from '../src/engine/fuse.js';
import { readArtifacts } from '../src/model/weights.js';

type Attr = Record<string, unknown>;
export interface BuiltNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Attr;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const FLOAT = { type: 'DT_FLOAT' };
/** GraphDef attribute values in tfjs-converter's JSON. */
export const attr = {
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (v: string[]) => ({ list: { s: v.map(b64) } }),
  str: (v: string) => ({ s: b64(v) }),
  bool: (b: boolean) => ({ b }),
  float: (f: number) => ({ f }),
  int: (i: number) => ({ i: String(i) }),
};

export class GraphBuilder {
  readonly nodes: BuiltNode[] = [];
  private readonly weights: Array<{ name: string; t: tf.Tensor }> = [];

  /** The image input, NHWC; a size of -1 leaves that dimension open. */
  input(name: string, [h, w]: [number, number]): string {
    const dim = [-1, h, w, 3].map((s) => ({ size: String(s) }));
    this.nodes.push({ name, op: 'Placeholder', attr: { dtype: FLOAT, shape: { shape: { dim } } } });
    return name;
  }

  /** A constant (stored in the weights manifest, as the converter does); the builder owns the tensor. */
  const(name: string, t: tf.Tensor): string {
    const dtype = t.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
    this.nodes.push({ name, op: 'Const', attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: { dim: t.shape.map((s) => ({ size: String(s) })) } } } } });
    this.weights.push({ name, t });
    return name;
  }

  op(name: string, op: string, input: string[], a: Attr = {}): string {
    this.nodes.push({ name, op, input, attr: { T: FLOAT, ...a } });
    return name;
  }

  /** A conv (plain or depthwise) with optional bias and fused activation, as _FusedConv2D / FusedDepthwiseConv2dNative. */
  conv(name: string, x: string, filter: tf.Tensor4D, o: { bias?: tf.Tensor1D; act?: 'Relu' | 'Relu6'; strides?: number; padding?: 'SAME' | 'VALID'; depthwise?: boolean }): string {
    const s = o.strides ?? 1;
    const fused = [...(o.bias ? ['BiasAdd'] : []), ...(o.act ? [o.act] : [])];
    const ins = [x, this.const(`${name}/filter`, filter), ...(o.bias ? [this.const(`${name}/bias`, o.bias)] : [])];
    const common = { strides: attr.ints([1, s, s, 1]), padding: attr.str(o.padding ?? 'SAME'), data_format: attr.str('NHWC'), dilations: attr.ints([1, 1, 1, 1]) };
    if (!fused.length) return this.op(name, o.depthwise ? 'DepthwiseConv2dNative' : 'Conv2D', ins, common);
    if (!o.bias) throw new Error('a fused conv needs a bias');
    return this.op(name, o.depthwise ? 'FusedDepthwiseConv2dNative' : '_FusedConv2D', ins, { ...common, fused_ops: attr.strs(fused), num_args: attr.int(1), epsilon: attr.float(0) });
  }

  /** The model as tf.io artifacts (what tf.loadGraphModel takes). */
  artifacts(): tf.io.ModelArtifacts & { weightData: ArrayBuffer } {
    const parts = this.weights.map(({ t }) => t.dataSync());
    const bytes = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), off);
      off += p.byteLength;
    }
    const weightSpecs = this.weights.map(({ name, t }) => ({ name, shape: t.shape, dtype: t.dtype as 'float32' | 'int32' }));
    return { format: 'graph-model', modelTopology: { node: this.nodes, versions: { producer: 1 } }, weightSpecs, weightData: bytes.buffer };
  }

  /** model.json + one weights shard in `dir`. */
  write(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const a = this.artifacts();
    writeFileSync(join(dir, 'group1-shard1of1.bin'), new Uint8Array(a.weightData));
    const json = { format: a.format, generatedBy: 'patch-atlas bench/graph-model.ts', modelTopology: a.modelTopology, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: a.weightSpecs }] };
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  }

  dispose(): void {
    tf.dispose(this.weights.map((w) => w.t));
  }
}

/**
 * A sequential Keras image model (conv / depthwise conv [+ batch norm] [+ ReLU / ReLU6], zero padding, batch
 * norm, global average pooling, reshape, dropout, softmax) as a graph. A conv's output takes the name of the last
 * layer folded into it (`conv_pw_11_relu`), so the descriptor's layer names hold for both formats.
 */
export function layersAsGraph(model: tf.LayersModel, inputSize?: [number, number]): GraphBuilder {
  const g = new GraphBuilder();
  const [, h, w] = model.inputs[0]!.shape as number[];
  let x = g.input('input', inputSize ?? [h ?? -1, w ?? -1]);
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  for (let k = 0; k < layers.length; k++) {
    const l = layers[k]!;
    const cls = l.getClassName();
    const cfg = l.getConfig() as Record<string, unknown>;
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D') {
      const bn = layers[k + 1]?.getClassName() === 'BatchNormalization' ? layers[++k]! : undefined;
      const next = layers[k + 1];
      const act = next && ['Activation', 'ReLU'].includes(next.getClassName()) ? activationOf(next) : undefined;
      if (act) k++;
      const f = bn ? foldedWeights(l, bn) : { filter: l.getWeights()[0]!.clone() as tf.Tensor4D, bias: l.getWeights()[1]?.clone() as tf.Tensor1D | undefined };
      const bias = f.bias ?? tf.zeros([f.filter.shape[cls === 'Conv2D' ? 3 : 2] * (cls === 'Conv2D' ? 1 : f.filter.shape[3])]);
      const own = activationOf(l);
      x = g.conv(layers[k]!.name, x, f.filter, { bias: bias as tf.Tensor1D, ...((act ?? own) ? { act: act ?? own } : {}), strides: (cfg.strides as number[])[0], padding: cfg.padding === 'same' ? 'SAME' : 'VALID', depthwise: cls === 'DepthwiseConv2D' });
    } else if (cls === 'ZeroPadding2D') {
      const [[t, b], [le, r]] = cfg.padding as [[number, number], [number, number]];
      x = g.op(l.name, 'Pad', [x, g.const(`${l.name}/paddings`, tf.tensor2d([[0, 0], [t, b], [le, r], [0, 0]], [4, 2], 'int32'))], { Tpaddings: { type: 'DT_INT32' } });
    } else if (cls === 'BatchNormalization') {
      const [gamma, beta, mean, variance] = l.getWeights().map((t) => t.clone());
      x = g.op(l.name, 'FusedBatchNormV3', [x, g.const(`${l.name}/gamma`, gamma!), g.const(`${l.name}/beta`, beta!), g.const(`${l.name}/mean`, mean!), g.const(`${l.name}/variance`, variance!)], { epsilon: attr.float(cfg.epsilon as number), data_format: attr.str('NHWC') });
    } else if (cls === 'GlobalAveragePooling2D') {
      x = g.op(l.name, 'Mean', [x, g.const(`${l.name}/axes`, tf.tensor1d([1, 2], 'int32'))], { keep_dims: attr.bool(false), Tidx: { type: 'DT_INT32' } });
    } else if (cls === 'Reshape') {
      x = g.op(l.name, 'Reshape', [x, g.const(`${l.name}/shape`, tf.tensor1d([-1, ...(cfg.targetShape as number[])], 'int32'))], { Tshape: { type: 'DT_INT32' } });
    } else if (cls === 'Dropout') {
      x = g.op(l.name, 'Identity', [x]);
    } else if (cls === 'Activation' || cls === 'ReLU') {
      const a = activationOf(l) ?? ((cfg.activation as string) === 'softmax' ? 'Softmax' : undefined);
      if (!a) throw new Error(`layersAsGraph: activation of ${l.name}`);
      x = g.op(l.name, a, [x]);
    } else throw new Error(`layersAsGraph: layer ${l.name} (${cls})`);
  }
  return g;
}

function activationOf(l: tf.layers.Layer | undefined): 'Relu' | 'Relu6' | undefined {
  if (!l) return undefined;
  const cfg = l.getConfig() as { activation?: string; maxValue?: number | null };
  if (l.getClassName() === 'ReLU') return cfg.maxValue === 6 ? 'Relu6' : cfg.maxValue == null ? 'Relu' : undefined;
  if (l.getClassName() !== 'Activation' && l.getClassName() !== 'Conv2D' && l.getClassName() !== 'DepthwiseConv2D') return undefined;
  return cfg.activation === 'relu6' ? 'Relu6' : cfg.activation === 'relu' ? 'Relu' : undefined;
}

/**
 * A descriptor for a graph model written by `layersAsGraph` from a layers model's descriptor: the same labels,
 * input, logits and layers, format "graph", weights at `weightsDir`. Returns the descriptor's path.
 */
export function graphDescriptor(base: Record<string, unknown>, weightsDir: string, out: string, name: string): string {
  // Load it with `--weights weightsDir` (or a models folder holding weightsDir).
  const d = { ...base, name, description: `${name}: written as a tfjs graph model by bench/graph-model.ts`, format: 'graph', weights: { localName: basename(weightsDir) }, input: { ...(base.input as object), node: 'input' } };
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(d, null, 2));
  return out;
}

/**
 * A tfjs layers model (its model.json) written as a graph model in `dir`/`name`, with a descriptor made from the
 * layers model's (`descriptorPath`) beside it. Load it with { model: descriptor, weights }.
 */
export async function writeAsGraph(modelJson: string, descriptorPath: string, dir: string, name: string): Promise<{ descriptor: string; weights: string }> {
  const artifacts = await readArtifacts(modelJson);
  const model = await tf.loadLayersModel({ load: async () => artifacts });
  const weights = join(dir, name);
  const g = layersAsGraph(model);
  g.write(weights);
  g.dispose();
  model.dispose();
  const descriptor = graphDescriptor(JSON.parse(readFileSync(descriptorPath, 'utf8')) as Record<string, unknown>, weights, join(dir, `${name}.json`), name);
  return { descriptor, weights };
}

