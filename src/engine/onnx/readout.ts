import { EngineError } from '../errors.js';
import { COS_FLOOR, NORM_EPS, positionOf, readoutWidths, type Readout, type Rows } from '../readout.js';
import { attr, DataType, decodeModel, encodeModel, floatTensor, int64Tensor, type NodeProto, type TensorProto } from './proto.js';
import { batchSymbol } from './runtime.js';

/** The readout's output in a graph withReadout made. */
export const READOUT = 'patch_atlas_readout';

/**
 * `bytes` with a readout (engine/readout.ts) appended as ONNX nodes: from the tensors it reads (NCHW activations,
 * [N, C] logits; `dims` gives each one's shape at batch 1 for the input size the graph is for) to `READOUT`, [N].
 * Weight k becomes the graph input `weights[k]`, [N, widths[k]] (a row per item; N named as `input` names its
 * batch). Every operator used has a backward rule,
 * so buildBackward differentiates the network and the readout as one graph.
 */
export function withReadout(bytes: Uint8Array, r: Readout, dims: ReadonlyMap<string, readonly number[]>, input: string): { bytes: Uint8Array; weights: string[]; widths: number[] } {
  const shape = (read: string) => {
    const d = dims.get(read);
    if (!d) throw new EngineError('MODEL_INVALID', `readout: no shape for ${read}`);
    return d;
  };
  const widths = readoutWidths(r, (read) => shape(read)[1]!);
  const model = decodeModel(bytes);
  const g = model.graph!;
  const batch = batchSymbol(g, input);
  const opset = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let k = 0;
  const fresh = (base: string) => `${READOUT}/${base}/${k++}`;
  const node = (op_type: string, input: string[], base: string, attribute: NodeProto['attribute'] = [], output = fresh(base)): string => {
    nodes.push({ op_type, input, output: [output], name: output, attribute });
    return output;
  };
  const f32 = (v: number) => {
    const name = fresh('c');
    inits.push(floatTensor(name, [v], []));
    return name;
  };
  const i64 = (v: number[]) => {
    const name = fresh('i');
    inits.push(int64Tensor(name, v));
    return name;
  };
  const names = widths.map((_, i) => `${READOUT}/w${i}`);
  const weight = (i: number): string => {
    if (!names[i]) throw new EngineError('MODEL_INVALID', `readout: no weight ${i}`);
    return names[i]!;
  };
  // ReduceSum takes its axes as an input from opset 13, ReduceMax from 18.
  const reduce = (op: 'ReduceSum' | 'ReduceMax', x: string) =>
    op === 'ReduceSum' || opset >= 18 ? node(op, [x, i64([1])], op, [attr.int('keepdims', 0)]) : node(op, [x], op, [attr.ints('axes', [1]), attr.int('keepdims', 0)]);
  const rows = (x: Rows): string => {
    if ('logSoftmax' in x) return node('LogSoftmax', [rows(x.logSoftmax)], 'logsoftmax', [attr.int('axis', 1)]);
    const d = shape(x.read);
    if (d.length === 2) return x.read;
    if (d.length !== 4) throw new EngineError('MODEL_INVALID', `readout: ${x.read} has rank ${d.length} (4 or 2 are read)`);
    if (x.at === 'mean') return node('Flatten', [node('GlobalAveragePool', [x.read], 'mean')], 'rows', [attr.int('axis', 1)]);
    const [y, xx] = positionOf(x.at, d[2]!, d[3]!);
    const at = node('Slice', [x.read, i64([y, xx]), i64([y + 1, xx + 1]), i64([2, 3])], 'at');
    return node('Flatten', [at], 'rows', [attr.int('axis', 1)]);
  };
  const value = (x: Readout): string => {
    if ('sum' in x) {
      if (!x.sum.length) throw new EngineError('MODEL_INVALID', 'readout: a sum of nothing');
      const terms = x.sum.map(([c, t]) => (c === 1 ? value(t) : node('Mul', [value(t), f32(c)], 'k')));
      return terms.reduce((a, t) => node('Add', [a, t], 'sum'));
    }
    if ('dot' in x) return reduce('ReduceSum', node('Mul', [rows(x.dot), weight(x.w)], 'hw'));
    if ('maxPlus' in x) return reduce('ReduceMax', node('Add', [rows(x.maxPlus), weight(x.w)], 'hpw'));
    const h = rows(x.dotCossim);
    const v = weight(x.w);
    const dot = reduce('ReduceSum', node('Mul', [h, v], 'hv'));
    const norm = (t: string) => node('Sqrt', [node('Add', [reduce('ReduceSum', node('Mul', [t, t], 'sq')), f32(NORM_EPS)], 'eps')], 'norm');
    const cos = node('Div', [dot, node('Mul', [norm(h), norm(v)], 'norms')], 'cos');
    const floor = node('Max', [cos, f32(COS_FLOOR)], 'floor');
    return node('Mul', [dot, node('Pow', [floor, f32(x.p)], 'pow')], 'value');
  };
  const out = value(r);
  nodes.push({ op_type: 'Identity', input: [out], output: [READOUT], name: READOUT });
  g.node = [...(g.node ?? []), ...nodes];
  g.initializer = [...(g.initializer ?? []), ...inits];
  // A row per item, declared with the image's batch symbol: onnxruntime then proves the gradients' shapes equal to the
  // activations' (an unknown batch kept MobileNet's masks off the NCHWc layout: 53 against 41 ms a run).
  const declared = (name: string, cols: number) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: batch }, { dim_value: cols }] } } } });
  g.input = [...(g.input ?? []), ...widths.map((c, i) => declared(names[i]!, c))];
  g.output = [...(g.output ?? []), { name: READOUT, type: { tensor_type: { elem_type: DataType.FLOAT } } }];
  return { bytes: encodeModel(model), weights: names, widths };
}
