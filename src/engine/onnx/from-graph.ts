import * as tf from '@tensorflow/tfjs';
import { ExportUnsupported, tensorInit, type ExportResult } from './export.js';
import { attr, DataType, encodeModel, type AttributeProto, type NodeProto, type TensorProto } from './proto.js';

/**
 * A tfjs graph model (TensorFlow GraphDef nodes as tfjs-converter writes them: NHWC, fused conv / matmul ops,
 * weights in the manifest) written as an ONNX graph, so graph models run on the same executor as ONNX files:
 * forward-mode attribution, fused kernels, onnxruntime for forward-only work. ONNX order: 4-D tensors are NCHW;
 * every tensor keeps its TF node's name (`node` for output 0, `node:k` for others), so descriptors name layers
 * as before. An operator without a rule here throws ExportUnsupported (the caller keeps tfjs's GraphModel).
 */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, TfAttr>;
}

interface TfAttr {
  i?: string | number;
  f?: number;
  b?: boolean;
  s?: string;
  type?: string;
  list?: { i?: Array<string | number>; s?: string[]; f?: number[] };
  shape?: { dim?: Array<{ size?: string | number }>; unknownRank?: boolean };
}

export interface GraphConversion extends ExportResult {
  /** [height, width] when the graph's input has a fixed size. */
  inputSize: [number, number] | undefined;
}

/** A tensor as converted: its ONNX name, its rank (4-D tensors are stored NCHW), and its value when constant. */
interface Value {
  name: string;
  rank: number;
  constant?: tf.Tensor;
}

const NHWC_TO_NCHW = [0, 3, 1, 2];
/** TF axis (NHWC) → ONNX axis (NCHW) for 4-D tensors. */
const AXIS4 = [0, 2, 3, 1];
const SKIP = new Set(['NoOp']);
const PASS = new Set(['Identity', 'StopGradient', 'Snapshot', 'PreventGradient', 'IdentityN']);
const UNARY: Record<string, string> = { Relu: 'Relu', Sigmoid: 'Sigmoid', Tanh: 'Tanh', Elu: 'Elu', Softplus: 'Softplus', Exp: 'Exp', Log: 'Log', Neg: 'Neg', Sqrt: 'Sqrt', Abs: 'Abs' };
const BINARY: Record<string, string> = { Add: 'Add', AddV2: 'Add', BiasAdd: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div', Maximum: 'Max', Minimum: 'Min' };
/** TF semantics of elementwise ops, for folding constant subgraphs (a batch norm left as Rsqrt/Mul/Sub chains). */
const FOLD: Record<string, (a: tf.Tensor[]) => tf.Tensor> = {
  Add: ([a, b]) => tf.add(a!, b!), AddV2: ([a, b]) => tf.add(a!, b!), Sub: ([a, b]) => tf.sub(a!, b!), Mul: ([a, b]) => tf.mul(a!, b!),
  RealDiv: ([a, b]) => tf.div(a!, b!), Maximum: ([a, b]) => tf.maximum(a!, b!), Minimum: ([a, b]) => tf.minimum(a!, b!),
  Rsqrt: ([a]) => tf.rsqrt(a!), Sqrt: ([a]) => tf.sqrt(a!), Neg: ([a]) => tf.neg(a!), Square: ([a]) => tf.square(a!),
  Reshape: ([a, s]) => tf.reshape(a!, Array.from(s!.dataSync())), Transpose: ([a, p]) => tf.transpose(a!, Array.from(p!.dataSync())),
};

const str = (a: TfAttr | undefined): string | undefined => (a?.s === undefined ? undefined : Buffer.from(a.s, 'base64').toString());
const intList = (a: TfAttr | undefined): number[] => (a?.list?.i ?? []).map(Number);
const strList = (a: TfAttr | undefined): string[] => (a?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString());

/**
 * Converts the graph. `weights` are the manifest's tensors by name (the Const nodes' values); `inputNode` picks the
 * Placeholder when there are several. The caller keeps ownership of `weights`.
 */
export function graphToOnnx(nodes: readonly GraphNode[], weights: tf.NamedTensorMap, inputNode?: string): GraphConversion {
  const onnx: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const values = new Map<string, Value>();
  const made: tf.Tensor[] = [];
  let k = 0;
  const fresh = (base: string) => `${base}/onnx_${k++}`;
  const emit = (op_type: string, input: string[], output: string, attribute: AttributeProto[] = []) => onnx.push({ op_type, input, output: [output], name: output, attribute });
  const { ints, int, float, string: text } = attr;
  const keep = <T extends tf.Tensor>(t: T): T => (made.push(t), t);
  const initializer = (name: string, t: tf.Tensor, dtype: 'float32' | 'int64' = 'float32'): string => {
    inits.push(tensorInit(name, t, dtype));
    return name;
  };
  /** A constant operand as an initializer, in the layout its consumer sees (NCHW where it meets a 4-D tensor). */
  const constOperand = (v: Value, partnerRank: number, base: string): string => {
    const c = v.constant!;
    if (partnerRank !== 4 || c.rank === 0) return initializer(fresh(base), c);
    if (c.rank > 4) throw new ExportUnsupported(`node ${base}: a ${c.rank}-D constant broadcast against an image tensor`);
    const t = keep(tf.tidy(() => tf.transpose(tf.reshape(c, [...Array(4 - c.rank).fill(1), ...c.shape]), NHWC_TO_NCHW)));
    return initializer(fresh(base), t);
  };
  /** A 4-D tensor in TF (NHWC) order, for ops whose meaning depends on memory order. */
  const toNhwc = (v: Value, base: string): string => {
    if (v.rank !== 4) return v.name;
    const y = fresh(`${base}/nhwc`);
    emit('Transpose', [v.name], y, [ints('perm', [0, 2, 3, 1])]);
    return y;
  };
  const constOf = (v: Value | undefined, node: GraphNode, what: string): tf.Tensor => v?.constant ?? fail(node, `its ${what} is computed at run time`);

  const consumed = new Set<string>();
  for (const n of nodes) for (const i of n.input ?? []) if (!i.startsWith('^')) consumed.add(tensorName(i));
  const placeholders = nodes.filter((n) => n.op === 'Placeholder');
  const input = placeholders.find((n) => n.name === inputNode) ?? (inputNode ? undefined : placeholders[0]);
  if (!input) throw new ExportUnsupported(inputNode ? `no Placeholder named ${inputNode}` : 'the graph has no Placeholder');
  if (placeholders.length > 1 && !inputNode) throw new ExportUnsupported('the graph has several inputs');
  const dims = (input.attr?.shape?.shape?.dim ?? []).map((d) => Number(d.size ?? -1));
  if (dims.length !== 4 || dims[3] !== 3) throw new ExportUnsupported(`input ${input.name} is not an NHWC image [N, H, W, 3]`);
  const inputSize: [number, number] | undefined = dims[1]! > 0 && dims[2]! > 0 ? [dims[1]!, dims[2]!] : undefined;

  try {
    for (const node of nodes) {
      if (SKIP.has(node.op)) continue;
      const ins = (node.input ?? []).filter((i) => !i.startsWith('^')).map((i) => values.get(tensorName(i)) ?? fail(node, `input ${i} comes from no earlier node`));
      const set = (v: Value) => values.set(node.name, v);
      const out = node.name;
      const a = node.attr ?? {};
      if (node.op === 'Placeholder') {
        if (node !== input) throw new ExportUnsupported(`graph input ${node.name} is not the image`);
        set({ name: out, rank: 4 });
        continue;
      }
      if (node.op === 'Const') {
        const w = weights[node.name] ?? fail(node, 'its value is missing from the weights manifest');
        set({ name: out, rank: w.rank, constant: w });
        continue;
      }
      // A node whose inputs are all constants is folded here (TF semantics), never run.
      if (ins.length > 0 && ins.every((v) => v.constant) && (FOLD[node.op] || PASS.has(node.op))) {
        const c = PASS.has(node.op) ? ins[0]!.constant! : keep(tf.tidy(() => FOLD[node.op]!(ins.map((v) => v.constant!))));
        set({ name: out, rank: c.rank, constant: c });
        continue;
      }
      const x = ins[0]!;
      const pads = (): AttributeProto[] => {
        const p = str(a.padding);
        if (p === 'SAME') return [text('auto_pad', 'SAME_UPPER')];
        if (p === 'VALID') return [ints('pads', [0, 0, 0, 0])];
        if (p === 'EXPLICIT') {
          const e = intList(a.explicit_paddings);
          return [ints('pads', [e[2]!, e[4]!, e[3]!, e[5]!])];
        }
        return fail(node, `padding ${String(p)}`);
      };
      const checkNhwc = () => {
        const f = str(a.data_format);
        if (f && f !== 'NHWC') fail(node, `data format ${f}`);
      };
      switch (node.op) {
        case 'Conv2D':
        case '_FusedConv2D':
        case 'DepthwiseConv2dNative':
        case 'FusedDepthwiseConv2dNative': {
          checkNhwc();
          const depthwise = node.op.includes('Depthwise');
          const kernel = constOf(ins[1], node, 'filter');
          const [kh, kw, cin, m] = kernel.shape as [number, number, number, number];
          const w = keep(tf.tidy(() => (depthwise ? tf.reshape(tf.transpose(kernel, [2, 3, 0, 1]), [cin * m, 1, kh, kw]) : tf.transpose(kernel, [3, 2, 0, 1]))));
          const fused = strList(a.fused_ops);
          const bias = fused[0] === 'BiasAdd' ? constOf(ins[2], node, 'bias') : undefined;
          if (fused.length && fused[0] !== 'BiasAdd') fail(node, `fused ops ${fused.join(', ')}`);
          const strides = intList(a.strides);
          const dil = intList(a.dilations);
          const conv = fused.length > 1 ? fresh(out) : out;
          emit('Conv', [x.name, initializer(fresh(`${out}/kernel`), w), ...(bias ? [initializer(fresh(`${out}/bias`), bias)] : [])], conv, [
            ints('kernel_shape', [kh, kw]), ints('strides', [strides[1] ?? 1, strides[2] ?? 1]), ints('dilations', [dil[1] ?? 1, dil[2] ?? 1]), int('group', depthwise ? cin : 1), ...pads(),
          ]);
          if (fused.length > 1) activation(fused.slice(1).join('+'), conv, out, node);
          set({ name: out, rank: 4 });
          break;
        }
        case 'MatMul':
        case '_FusedMatMul': {
          if (x.rank !== 2) fail(node, `a ${x.rank}-D operand`);
          const b = ins[1]!;
          const fused = strList(a.fused_ops);
          if (fused.length && fused[0] !== 'BiasAdd') fail(node, `fused ops ${fused.join(', ')}`);
          const bias = fused[0] === 'BiasAdd' ? ins[2] : undefined;
          const y = fused.length > 1 ? fresh(out) : out;
          const operand = (v: Value, base: string) => (v.constant ? initializer(fresh(base), v.constant) : v.name);
          emit('Gemm', [x.name, operand(b, `${out}/b`), ...(bias ? [operand(bias, `${out}/bias`)] : [])], y, [int('transA', a.transpose_a?.b ? 1 : 0), int('transB', a.transpose_b?.b ? 1 : 0)]);
          if (fused.length > 1) activation(fused.slice(1).join('+'), y, out, node);
          set({ name: out, rank: 2 });
          break;
        }
        case 'Relu6':
          activation('Relu6', x.name, out, node);
          set({ name: out, rank: x.rank });
          break;
        case 'LeakyRelu':
          emit('LeakyRelu', [x.name], out, [float('alpha', a.alpha?.f ?? 0.2)]);
          set({ name: out, rank: x.rank });
          break;
        case 'Rsqrt':
        case 'Square': {
          const y = fresh(out);
          if (node.op === 'Rsqrt') {
            emit('Sqrt', [x.name], y);
            emit('Reciprocal', [y], out);
          } else emit('Mul', [x.name, x.name], out);
          set({ name: out, rank: x.rank });
          break;
        }
        case 'FusedBatchNorm':
        case 'FusedBatchNormV2':
        case 'FusedBatchNormV3': {
          checkNhwc();
          if (x.rank !== 4) fail(node, `a ${x.rank}-D input`);
          const [scale, offset, mean, variance] = [1, 2, 3, 4].map((i) => initializer(fresh(`${out}/${i}`), constOf(ins[i], node, 'statistics')));
          emit('BatchNormalization', [x.name, scale!, offset!, mean!, variance!], out, [float('epsilon', a.epsilon?.f ?? 1e-3)]);
          set({ name: out, rank: 4 });
          break;
        }
        case 'Mean':
        case 'Max':
        case 'Min':
        case 'Sum': {
          const axes = Array.from(constOf(ins[1], node, 'axes').dataSync(), (v) => (v < 0 ? v + x.rank : v));
          const keepDims = !!a.keep_dims?.b;
          const onnxAxes = x.rank === 4 ? axes.map((v) => AXIS4[v]!) : axes;
          const op = { Mean: 'ReduceMean', Max: 'ReduceMax', Min: 'ReduceMin', Sum: 'ReduceSum' }[node.op]!;
          const spatial = x.rank === 4 && axes.length === 2 && axes.includes(1) && axes.includes(2);
          // Dropping axes of an NCHW tensor keeps TF's order only when the spatial pair (or nothing but C) goes.
          if (keepDims || x.rank !== 4 || spatial || (axes.length === 1 && axes[0] === 3)) {
            emitReduce(op, x.name, out, onnxAxes, keepDims);
            set({ name: out, rank: keepDims ? x.rank : x.rank - axes.length });
          } else {
            emitReduce(op, toNhwc(x, out), out, axes, false);
            set({ name: out, rank: x.rank - axes.length });
          }
          break;
        }
        case 'AvgPool':
        case 'MaxPool': {
          checkNhwc();
          const ks = intList(a.ksize);
          const st = intList(a.strides);
          const attrs = [ints('kernel_shape', [ks[1]!, ks[2]!]), ints('strides', [st[1]!, st[2]!]), ...pads()];
          // TF's average pool divides by the number of real pixels under the window.
          emit(node.op === 'AvgPool' ? 'AveragePool' : 'MaxPool', [x.name], out, node.op === 'AvgPool' ? [...attrs, int('count_include_pad', 0)] : attrs);
          set({ name: out, rank: 4 });
          break;
        }
        case 'ConcatV2': {
          const parts = ins.slice(0, -1);
          let axis = Number(constOf(ins.at(-1), node, 'axis').dataSync()[0]);
          if (axis < 0) axis += x.rank;
          const names = parts.map((v, i) => (v.constant ? constOperand(v, 0, `${out}/${i}`) : v.name));
          emit('Concat', names, out, [int('axis', x.rank === 4 ? AXIS4[axis]! : axis)]);
          set({ name: out, rank: x.rank });
          break;
        }
        case 'Reshape': {
          const target = Array.from(constOf(ins[1], node, 'shape').dataSync());
          if (target.includes(0)) fail(node, 'a zero-sized dimension');
          const shape = initializer(fresh(`${out}/shape`), keep(tf.tensor1d(target, 'int32')), 'int64');
          const from = toNhwc(x, out);
          if (target.length === 4) {
            const y = fresh(out);
            emit('Reshape', [from, shape], y);
            emit('Transpose', [y], out, [ints('perm', NHWC_TO_NCHW)]);
          } else emit('Reshape', [from, shape], out);
          set({ name: out, rank: target.length });
          break;
        }
        case 'Squeeze': {
          const axes = intList(a.squeeze_dims).map((v) => (v < 0 ? v + x.rank : v));
          if (axes.length === 0) fail(node, 'squeezing every unit dimension (the axes are not given)');
          const from = toNhwc(x, out);
          const rank = x.rank - axes.length;
          const y = rank === 4 ? fresh(out) : out;
          emit('Squeeze', [from, initializer(fresh(`${out}/axes`), keep(tf.tensor1d(axes, 'int32')), 'int64')], y);
          if (y !== out) emit('Transpose', [y], out, [ints('perm', NHWC_TO_NCHW)]);
          set({ name: out, rank });
          break;
        }
        case 'Softmax':
          emit('Softmax', [x.name], out, [int('axis', x.rank === 4 ? 1 : -1)]);
          set({ name: out, rank: x.rank });
          break;
        case 'Pad':
        case 'PadV2':
        case 'MirrorPad': {
          const p = Array.from(constOf(ins[1], node, 'paddings').dataSync());
          const r = x.rank;
          const order = r === 4 ? NHWC_TO_NCHW : [...Array(r).keys()];
          const begins = order.map((d) => p[2 * d]!);
          const ends = order.map((d) => p[2 * d + 1]!);
          const mode = node.op === 'MirrorPad' ? str(a.mode) : 'CONSTANT';
          if (mode === 'SYMMETRIC') fail(node, 'symmetric mirror padding');
          const padIns = [x.name, initializer(fresh(`${out}/pads`), keep(tf.tensor1d([...begins, ...ends], 'int32')), 'int64')];
          if (node.op === 'PadV2') padIns.push(initializer(fresh(`${out}/value`), keep(tf.scalar(constOf(ins[2], node, 'value').dataSync()[0]!))));
          emit('Pad', padIns, out, [text('mode', mode === 'REFLECT' ? 'reflect' : 'constant')]);
          set({ name: out, rank: r });
          break;
        }
        case 'Transpose': {
          const p = Array.from(constOf(ins[1], node, 'permutation').dataSync());
          // In ONNX order: undo NCHW, apply TF's permutation, redo NCHW.
          const perm = x.rank === 4 ? NHWC_TO_NCHW.map((i) => AXIS4[p[i]!]!) : p;
          emit('Transpose', [x.name], out, [ints('perm', perm)]);
          set({ name: out, rank: x.rank });
          break;
        }
        default: {
          if (PASS.has(node.op)) {
            emit('Identity', [x.name], out);
            set({ name: out, rank: x.rank });
          } else if (UNARY[node.op]) {
            emit(UNARY[node.op]!, [x.name], out, node.op === 'Elu' ? [float('alpha', 1)] : []);
            set({ name: out, rank: x.rank });
          } else if (BINARY[node.op]) {
            const [l, r] = [ins[0]!, ins[1]!];
            if (l.constant && r.constant) fail(node, 'constant operands of an op with no folding rule');
            const rank = Math.max(l.rank, r.rank);
            if (!l.constant && !r.constant && l.rank !== r.rank && rank === 4) fail(node, 'a broadcast between an image tensor and a lower-rank computed tensor');
            const name = (v: Value, side: string) => (v.constant ? constOperand(v, rank, `${out}/${side}`) : v.name);
            emit(BINARY[node.op]!, [name(l, 'a'), name(r, 'b')], out);
            set({ name: out, rank });
          } else fail(node, 'no ONNX rule');
        }
      }
    }
    const outputs = nodes.filter((n) => !consumed.has(n.name) && !SKIP.has(n.op) && values.get(n.name) && !values.get(n.name)!.constant).map((n) => n.name);
    if (outputs.length === 0) throw new ExportUnsupported('the graph has no computed output');
    const bytes = encodeModel({
      ir_version: 7,
      producer_name: 'patch-atlas (tfjs graph)',
      opset_import: [{ domain: '', version: 13 }],
      graph: {
        name: 'graph',
        node: onnx,
        initializer: inits,
        input: [{ name: input.name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'N' }, { dim_value: 3 }, dimOf(dims[1]!, 'H'), dimOf(dims[2]!, 'W')] } } } }],
        output: outputs.map((name) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } })),
      },
    });
    return { bytes, input: input.name, inputSize };
  } finally {
    tf.dispose(made);
  }

  function activation(kind: string, x: string, out: string, node: GraphNode): void {
    if (kind === 'Relu') emit('Relu', [x], out);
    else if (kind === 'Relu6') emit('Clip', [x, initializer(fresh(`${out}/min`), keep(tf.scalar(0))), initializer(fresh(`${out}/max`), keep(tf.scalar(6)))], out);
    else if (kind === 'Elu' || kind === 'Sigmoid' || kind === 'Tanh') emit(kind, [x], out);
    else if (kind === 'LeakyRelu') emit('LeakyRelu', [x], out, [float('alpha', node.attr?.leakyrelu_alpha?.f ?? 0.2)]);
    else fail(node, `fused activation ${kind}`);
  }

  function emitReduce(op: string, x: string, out: string, axes: number[], keepDims: boolean): void {
    // Opset 13: ReduceSum takes its axes as an input, the others as an attribute.
    if (op === 'ReduceSum') emit(op, [x, initializer(fresh(`${out}/axes`), keep(tf.tensor1d(axes, 'int32')), 'int64')], out, [int('keepdims', keepDims ? 1 : 0)]);
    else emit(op, [x], out, [ints('axes', axes), int('keepdims', keepDims ? 1 : 0)]);
  }
}

/** `node:0` and `node` are the same tensor; `node:k` for k > 0 keeps its suffix. */
function tensorName(ref: string): string {
  return ref.replace(/:0$/, '');
}

function dimOf(size: number, param: string): { dim_value: number } | { dim_param: string } {
  return size > 0 ? { dim_value: size } : { dim_param: param };
}

function fail(node: GraphNode, why: string): never {
  throw new ExportUnsupported(`node ${node.name} (${node.op}): ${why}`);
}
