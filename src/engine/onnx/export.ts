import * as tf from '@tensorflow/tfjs';
import { foldedWeights } from '../fuse.js';
import { attr, DataType, encodeModel, floatTensor, int64Tensor, type AttributeProto, type NodeProto, type TensorProto } from './proto.js';

/**
 * A tfjs layers model (Keras: conv / depthwise conv / batch norm / ReLU / padding / pooling / dense …) written as an
 * ONNX graph, so that onnxruntime-node can run its forward passes. ONNX order throughout: the input is NCHW
 * [N, 3, H, W] named `input`, 4-D tensors NCHW, weights converted from HWIO. Each layer's output tensor is named
 * after the layer, so any layer (the logits layer above all) can be fetched by its Keras name.
 */
export interface ExportResult {
  bytes: Uint8Array;
  input: string;
}

/** Changes whenever the exporter writes a different graph for the same model (it keys the cache of exports). */
export const EXPORT_VERSION = 2;

/** Why a model cannot be exported (the first layer that has no ONNX form here). */
export class ExportUnsupported extends Error {}

type Pair = [number, number];
/** Keras activations that are one attribute-free ONNX operator. */
const PLAIN_ACTIVATIONS: Record<string, string> = { linear: 'Identity', relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };
const pair = (v: number | number[] | undefined, d: number): Pair => (v === undefined ? [d, d] : Array.isArray(v) ? [v[0]!, v[1] ?? v[0]!] : [v, v]);

export function exportLayersModel(model: tf.LayersModel): ExportResult {
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const nameOf = new Map<number, string>();
  const input = 'input';
  if (model.inputs.length !== 1) throw new ExportUnsupported('the model has more than one input');
  nameOf.set((model.inputs[0] as unknown as { id: number }).id, input);
  const [, H, W, C] = model.inputs[0]!.shape as number[];
  let k = 0;
  const fresh = (base: string) => `${base}/${k++}`;
  const node = (op_type: string, inputs: string[], output: string, attribute: AttributeProto[] = []) => nodes.push({ op_type, input: inputs, output: [output], name: output, attribute });
  const weight = (name: string, t: tf.Tensor, dtype: 'float32' | 'int64' = 'float32') => {
    inits.push(tensorInit(name, t, dtype));
    return name;
  };
  const { ints, int, float } = attr;

  /** Append an activation after `x`, writing `out`. */
  const activate = (act: string | undefined, x: string, out: string): void => {
    const a = act ?? 'linear';
    if (a === 'relu6') node('Clip', [x, weight(fresh(`${out}/min`), tf.scalar(0)), weight(fresh(`${out}/max`), tf.scalar(6))], out);
    else if (a === 'softmax') node('Softmax', [x], out, [int('axis', -1)]);
    else if (a in PLAIN_ACTIVATIONS) node(PLAIN_ACTIVATIONS[a]!, [x], out);
    else throw new ExportUnsupported(`activation "${act}"`);
  };

  /** Explicit [top, left, bottom, right] pads for TF 'same' at a known input size. */
  const samePads = (size: Pair, kernel: Pair, strides: Pair, dil: Pair): number[] => {
    const p = [0, 1].map((i) => {
      const out = Math.ceil(size[i]! / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dil[i]! + 1 - size[i]!);
      return [Math.floor(total / 2), total - Math.floor(total / 2)];
    });
    return [p[0]![0]!, p[1]![0]!, p[0]![1]!, p[1]![1]!];
  };

  // Folding, as PyTorch's exporter does: a batch norm into the convolution it alone follows, a zero padding into the
  // 'valid' convolution it alone feeds (onnxruntime then sees plain Conv → Clip chains; measured faster).
  type Inbound = { inputTensors: Array<{ id: number; shape: number[] }>; outputTensors: Array<{ id: number }> };
  const inboundOf = (l: tf.layers.Layer) => (l as unknown as { inboundNodes: Inbound[] }).inboundNodes[0]!;
  const consumers = new Map<number, tf.layers.Layer[]>();
  for (const l of model.layers) if (l.getClassName() !== 'InputLayer') for (const t of inboundOf(l).inputTensors) consumers.set(t.id, [...(consumers.get(t.id) ?? []), l]);
  const outputIds = new Set(model.outputs.map((o) => (o as unknown as { id: number }).id));
  const soleConsumer = (l: tf.layers.Layer) => {
    const id = inboundOf(l).outputTensors[0]!.id;
    const c = consumers.get(id);
    return c?.length === 1 && !outputIds.has(id) ? c[0] : undefined;
  };
  const isConv = (l: tf.layers.Layer | undefined) => !!l && (l.getClassName() === 'Conv2D' || l.getClassName() === 'DepthwiseConv2D') && ((l.getConfig() as { activation?: string }).activation ?? 'linear') === 'linear';
  const foldedBn = new Map<tf.layers.Layer, tf.layers.Layer>(); // conv → its batch norm
  const foldedPad = new Map<tf.layers.Layer, [Pair, Pair]>(); // conv → the padding before it
  const skipped = new Set<tf.layers.Layer>();
  for (const l of model.layers) {
    const next = soleConsumer(l);
    if (isConv(l) && next?.getClassName() === 'BatchNormalization' && [-1, 3].includes((next.getConfig() as { axis: number }).axis)) {
      foldedBn.set(l, next);
      skipped.add(next);
    }
    if (l.getClassName() === 'ZeroPadding2D' && isConv(next) && (next!.getConfig() as { padding: string }).padding === 'valid') {
      foldedPad.set(next!, (l.getConfig() as { padding: [Pair, Pair] }).padding);
      skipped.add(l);
    }
  }

  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'InputLayer') continue;
    const inbound = inboundOf(layer);
    if (skipped.has(layer)) {
      // Its output is named after the layer that absorbed it: the conv's output takes the batch norm's name.
      if (cls === 'ZeroPadding2D') nameOf.set(inbound.outputTensors[0]!.id, nameOf.get(inbound.inputTensors[0]!.id)!);
      continue;
    }
    const ins = inbound.inputTensors.map((t) => nameOf.get(t.id) ?? fail(`layer ${layer.name} reads a tensor no earlier layer produced`));
    const bn = foldedBn.get(layer);
    const pad = foldedPad.get(layer);
    // A folded padding's input shape is the one before the padding.
    const inShape = pad ? (soleConsumerInput(layer, inboundOf) ?? inbound.inputTensors[0]!.shape) : inbound.inputTensors[0]!.shape;
    const out = bn ? bn.name : layer.name;
    nameOf.set(inbound.outputTensors[0]!.id, out);
    if (bn) nameOf.set(inboundOf(bn).outputTensors[0]!.id, out);
    const cfg = layer.getConfig() as Record<string, unknown>;
    const ws = layer.getWeights();
    if ((cfg.dataFormat ?? 'channelsLast') !== 'channelsLast') throw new ExportUnsupported(`layer ${layer.name}: channels-first data`);
    switch (cls) {
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        const depthwise = cls === 'DepthwiseConv2D';
        const folded = bn ? foldedWeights(layer, bn) : undefined;
        const [kernel, bias] = (folded ? [folded.filter, folded.bias] : ws) as [tf.Tensor4D, tf.Tensor1D | undefined];
        const [kh, kw, cin, m] = kernel.shape;
        const strides = pair(cfg.strides as number[], 1);
        const dil = pair(cfg.dilationRate as number[], 1);
        const pads = pad ? [pad[0][0], pad[1][0], pad[0][1], pad[1][1]] : cfg.padding === 'same' ? samePads([inShape[1]!, inShape[2]!], [kh, kw], strides, dil) : [0, 0, 0, 0];
        // HWIO → OIHW; depthwise [kh, kw, in, mult] → [in·mult, 1, kh, kw] with group = in.
        const w = tf.tidy(() => (depthwise ? tf.reshape(tf.transpose(kernel, [2, 3, 0, 1]), [cin * m, 1, kh, kw]) : tf.transpose(kernel, [3, 2, 0, 1])));
        const wName = weight(`${out}/kernel`, w);
        w.dispose();
        const conv = cfg.activation && cfg.activation !== 'linear' ? fresh(`${out}/conv`) : out;
        node('Conv', [ins[0]!, wName, ...(bias ? [weight(`${out}/bias`, bias)] : [])], conv, [
          ints('kernel_shape', [kh, kw]), ints('strides', strides), ints('dilations', dil), ints('pads', pads), int('group', depthwise ? cin : 1),
        ]);
        if (conv !== out) activate(cfg.activation as string, conv, out);
        if (folded) tf.dispose([folded.filter, ...(folded.bias ? [folded.bias] : [])]);
        break;
      }
      case 'BatchNormalization': {
        const axis = cfg.axis as number;
        if (axis !== -1 && axis !== inShape.length - 1) throw new ExportUnsupported(`layer ${layer.name}: batch norm over axis ${axis}`);
        const list = [...ws];
        const C2 = list.at(-1)!.shape[0]!;
        const gamma = cfg.scale !== false ? list.shift()! : undefined;
        const beta = cfg.center !== false ? list.shift()! : undefined;
        const [mean, variance] = list as [tf.Tensor, tf.Tensor];
        const ones = tf.ones([C2]);
        const zeros = tf.zeros([C2]);
        node('BatchNormalization', [ins[0]!, weight(`${out}/gamma`, gamma ?? ones), weight(`${out}/beta`, beta ?? zeros), weight(`${out}/mean`, mean), weight(`${out}/variance`, variance)], out, [float('epsilon', (cfg.epsilon as number) ?? 1e-3)]);
        tf.dispose([ones, zeros]);
        if (inShape.length !== 4 && inShape.length !== 2) throw new ExportUnsupported(`layer ${layer.name}: batch norm on rank ${inShape.length}`);
        break;
      }
      case 'ReLU': {
        if (cfg.negativeSlope || cfg.threshold) throw new ExportUnsupported(`layer ${layer.name}: ReLU with a slope or threshold`);
        activate(cfg.maxValue == null ? 'relu' : cfg.maxValue === 6 ? 'relu6' : fail(`ReLU max ${String(cfg.maxValue)}`), ins[0]!, out);
        break;
      }
      case 'Activation':
        activate(cfg.activation as string, ins[0]!, out);
        break;
      case 'ZeroPadding2D': {
        const [[t, b], [l, r]] = cfg.padding as [Pair, Pair];
        node('Pad', [ins[0]!, weight(`${out}/pads`, tf.tensor1d([0, 0, t, l, 0, 0, b, r]), 'int64')], out, [attr.string('mode', 'constant')]);
        break;
      }
      case 'GlobalAveragePooling2D': {
        const pooled = fresh(`${out}/pool`);
        node('GlobalAveragePool', [ins[0]!], pooled);
        node('Flatten', [pooled], out, [int('axis', 1)]);
        break;
      }
      case 'Reshape':
      case 'Flatten': {
        // Keras reshapes in NHWC order: to NHWC first, reshape, and back to NCHW if the result is an image tensor.
        let x = ins[0]!;
        if (inShape.length === 4) {
          x = fresh(`${out}/nhwc`);
          node('Transpose', [ins[0]!], x, [ints('perm', [0, 2, 3, 1])]);
        }
        const target = cls === 'Flatten' ? [-1] : (cfg.targetShape as number[]);
        const shape = weight(`${out}/shape`, tf.tensor1d([0, ...target]), 'int64');
        if (target.length === 3) {
          const y = fresh(`${out}/nhwc`);
          node('Reshape', [x, shape], y);
          node('Transpose', [y], out, [ints('perm', [0, 3, 1, 2])]);
        } else node('Reshape', [x, shape], out);
        break;
      }
      case 'Dropout':
        node('Identity', [ins[0]!], out);
        break;
      case 'Dense': {
        const [kernel, bias] = ws as [tf.Tensor2D, tf.Tensor1D | undefined];
        if (inShape.length !== 2) throw new ExportUnsupported(`layer ${layer.name}: dense on rank ${inShape.length}`);
        const y = cfg.activation && cfg.activation !== 'linear' ? fresh(`${out}/gemm`) : out;
        node('Gemm', [ins[0]!, weight(`${out}/kernel`, kernel), ...(bias ? [weight(`${out}/bias`, bias)] : [])], y);
        if (y !== out) activate(cfg.activation as string, y, out);
        break;
      }
      case 'Add':
        if (ins.length !== 2) throw new ExportUnsupported(`layer ${layer.name}: Add of ${ins.length} inputs`);
        node('Add', ins, out);
        break;
      case 'Concatenate': {
        const axis = (cfg.axis as number) ?? -1;
        if (axis !== -1 && axis !== inShape.length - 1) throw new ExportUnsupported(`layer ${layer.name}: concatenation over axis ${axis}`);
        node('Concat', ins, out, [int('axis', inShape.length === 4 ? 1 : -1)]);
        break;
      }
      default:
        throw new ExportUnsupported(`layer ${layer.name} (${cls})`);
    }
  }
  const outputs = model.outputs.map((o) => nameOf.get((o as unknown as { id: number }).id)!);
  const bytes = encodeModel({
    ir_version: 7,
    producer_name: 'patch-atlas',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: model.name,
      node: nodes,
      initializer: inits,
      input: [{ name: input, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'N' }, { dim_value: C! }, { dim_value: H! }, { dim_value: W! }] } } } }],
      output: outputs.map((name) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } })),
    },
  });
  return { bytes, input };
}

/** The shape a folded ZeroPadding2D received (the input of the padding feeding `conv`). */
function soleConsumerInput(conv: tf.layers.Layer, inboundOf: (l: tf.layers.Layer) => { inputTensors: Array<{ shape: number[] }> }): number[] | undefined {
  const padLayer = (inboundOf(conv).inputTensors[0] as unknown as { sourceLayer?: tf.layers.Layer }).sourceLayer;
  return padLayer ? inboundOf(padLayer).inputTensors[0]?.shape : undefined;
}

/** A tfjs tensor as an initializer (float32, or int64 for shapes, axes and pads). */
export function tensorInit(name: string, t: tf.Tensor, dtype: 'float32' | 'int64' = 'float32'): TensorProto {
  return dtype === 'float32' ? floatTensor(name, t.dataSync(), [...t.shape]) : int64Tensor(name, t.dataSync(), [...t.shape]);
}

function fail(what: string): never {
  throw new ExportUnsupported(what);
}
