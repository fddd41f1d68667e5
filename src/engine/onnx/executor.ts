import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../errors.js';
import { INPUT, type Executor, type LayerInfo } from '../executor.js';
import { fusedConvStep, type Step } from '../fuse.js';
import { NamedStepExecutor, StepGraph } from '../step-graph.js';
import { Attrs } from './attrs.js';
import { buildOp, IMAGE_INPUT_OPS, toNhwc, type Layout, type OpImpl } from './ops.js';
import { decodeModel, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import { tensorFromProto, type ExternalData } from './tensors.js';

export interface OnnxLoadOptions {
  /** Reads external data beside the model (src/model/ supplies it; the engine reads no files). */
  external?: ExternalData;
  /** The graph input to feed images into (default: the only one that is not an initializer). */
  input?: string;
}

/** What `models info` shows of an ONNX file besides its tensors. */
export interface OnnxSummary {
  producer: string;
  opset: number;
  input: { name: string; shape: Array<number | string> };
  outputs: string[];
  ops: Record<string, number>;
}

interface Pending {
  node: NodeProto;
  name: string;
  impl: OpImpl;
  /** Input slots: a tensor id for runtime inputs, a constant, or nothing (omitted optional input). */
  slots: Array<{ id: number } | { constant: tf.Tensor } | undefined>;
  outputs: number[];
}

/**
 * Runs an ONNX model as TensorFlow.js operations (ops.ts) by tensor name: any node output can be fetched or fed,
 * input and hidden-layer gradients come from tfjs's tape (with the engine's wasm gradient fixes), forward-mode
 * products from each operator's tangent rule. Shape arithmetic on constants is folded at load; what depends on
 * the batch runs on small int tensors. Conv → ReLU / ReLU6 pairs run as one fused kernel where neither the
 * intermediate is asked for nor fed.
 */
export class OnnxExecutor extends NamedStepExecutor implements Executor {
  readonly layers: LayerInfo[] = [];
  readonly outputName: string;
  readonly summary: OnnxSummary;
  protected readonly unit = 'tensor';
  private constants: tf.Tensor[] = [];
  /** The constants steps read at run time, by name. */
  private readonly constantNames = new Map<string, tf.Tensor>();
  /** Producer op of each tensor, and the graph's final Softmax input (the logits of a softmax-only export). */
  private readonly producerOf = new Map<string, { op: string; node: NodeProto; impl: OpImpl }>();
  private readonly softmaxInput: string | undefined;

  static fromBytes(bytes: Uint8Array, opts: OnnxLoadOptions = {}): OnnxExecutor {
    let model: ModelProto;
    try {
      model = decodeModel(bytes);
    } catch (e) {
      throw new EngineError('MODEL_INVALID', `not an ONNX model (${(e as Error).message})`);
    }
    return new OnnxExecutor(model, opts);
  }

  private constructor(model: ModelProto, opts: OnnxLoadOptions) {
    super();
    const g: GraphProto = model.graph ?? fail('the file holds no graph');
    const opset = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? fail('the file declares no ai.onnx opset');
    const constants = new Map<string, tf.Tensor>();
    const keepConst = (name: string, t: tf.Tensor) => {
      constants.set(name, t);
      this.constants.push(t);
    };
    for (const init of g.initializer ?? []) keepConst(init.name ?? '', tensorFromProto(init, opts.external));

    const inputs = (g.input ?? []).filter((i) => !constants.has(i.name));
    const input = opts.input ? inputs.find((i) => i.name === opts.input) : inputs.length === 1 ? inputs[0] : undefined;
    if (!input)
      throw new EngineError(
        'MODEL_INVALID',
        opts.input ? `the ONNX graph has no input "${opts.input}" (inputs: ${inputs.map((i) => i.name).join(', ')})` : `patch-atlas needs an image model with one input; this graph has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`,
        opts.input ? undefined : 'name the image input with "input.node" in the descriptor',
      );
    const dims = input.type?.tensor_type?.shape?.dim ?? [];
    if (dims.length !== 4) throw new EngineError('MODEL_INVALID', `the ONNX input "${input.name}" has rank ${dims.length}; patch-atlas takes images [N, 3, H, W]`);

    let next = 0;
    const layout = new Map<number, Layout>();
    const newId = (name: string, l: Layout) => {
      const id = next++;
      this.ids.set(name, id);
      layout.set(id, l);
      return id;
    };
    const inputId = newId(input.name, 'nhwc');
    this.ids.set(INPUT, inputId);

    const pending: Pending[] = [];
    const ops: Record<string, number> = {};
    for (const node of g.node ?? []) {
      const name = node.name || node.output?.[0] || node.op_type;
      ops[node.op_type] = (ops[node.op_type] ?? 0) + 1;
      const ins = (node.input ?? []).map((n, k) => {
        if (!n) return { name: '', constant: undefined, layout: 'plain' as Layout };
        const c = constants.get(n);
        if (c) return { name: n, constant: c, layout: 'plain' as Layout };
        const id = this.ids.get(n);
        if (id === undefined) throw new EngineError('MODEL_INVALID', `ONNX node "${name}" reads "${n}", which no earlier node produces (the graph is not in topological order, or an input is missing)`);
        if (k === 0 && IMAGE_INPUT_OPS.has(node.op_type) && layout.get(id) === 'plain') {
          // An image operator after a layout-changing one (a Transpose, a Reshape back to 4-D): convert once.
          const converted = `${n}::nhwc`;
          if (!this.ids.has(converted)) pending.push(conversionStep(id, newId(converted, 'nhwc')));
          return { name: converted, constant: undefined, layout: 'nhwc' as Layout };
        }
        return { name: n, constant: undefined, layout: layout.get(id)! };
      });
      const impl = buildOp({ op: node.op_type, node: name, opset, attrs: new Attrs(node.attribute, `ONNX ${node.op_type} node "${name}"`), inputs: ins }, node.domain);
      const outNames = node.output ?? [];
      // Constant folding: a node whose inputs are all known at load is computed now.
      if (!impl.conv && ins.every((i) => !i.name || i.constant) && impl.layouts.every((l) => l === 'plain')) {
        const outs = tf.tidy(() => impl.apply(ins.map((i) => i.constant)));
        outs.forEach((t, k) => (outNames[k] ? keepConst(outNames[k]!, t) : t.dispose()));
        impl.dispose?.();
        continue;
      }
      const slots = ins.map((i) => (!i.name ? undefined : i.constant ? { constant: i.constant } : { id: this.ids.get(i.name)! }));
      const outputs = outNames.map((o, k) => (o ? newId(o, impl.layouts[k] ?? impl.layouts[0]!) : -1));
      pending.push({ node, name, impl, slots, outputs });
      outNames.forEach((o) => o && this.producerOf.set(o, { op: node.op_type, node, impl }));
      this.layers.push({ name: outNames[0]!, type: node.op_type, shape: null });
    }

    const graphOutputs = (g.output ?? []).map((o) => o.name);
    for (const o of graphOutputs) if (!this.ids.has(o)) throw new EngineError('MODEL_INVALID', `the ONNX graph output "${o}" is not computed from the input`);
    const outputIds = new Set(graphOutputs.map((o) => this.ids.get(o)!));
    const { plain, fused } = this.schedules(pending, outputIds);
    this.graph = new StepGraph(plain, fused, inputId);
    this.outputName = graphOutputs[0]!;
    const finalSoftmax = graphOutputs.map((o) => this.producerOf.get(o)).find((p) => p?.op === 'Softmax');
    this.softmaxInput = finalSoftmax?.node.input?.[0];
    // Initializers only conv steps read were copied into NHWC filters; the originals are not needed.
    const read = new Set(pending.filter((p) => !p.impl.conv).flatMap((p) => p.slots.flatMap((s) => (s && 'constant' in s ? [s.constant] : []))));
    for (const t of this.constants) if (!read.has(t)) t.dispose();
    this.constants = this.constants.filter((t) => read.has(t));
    for (const [name, t] of constants) if (read.has(t)) this.constantNames.set(name, t);
    this.summary = {
      producer: [model.producer_name, model.producer_version].filter(Boolean).join(' ') || 'unknown',
      opset,
      input: { name: input.name, shape: dims.map((d) => d.dim_value ?? d.dim_param ?? '?') },
      outputs: graphOutputs,
      ops,
    };
  }

  /** Steps node by node, and with each Conv → ReLU/ReLU6 pair fused where the conv output feeds nothing else. */
  private schedules(pending: Pending[], outputIds: ReadonlySet<number>): { plain: Step[]; fused: Step[] } {
    const consumers = new Map<number, number>();
    for (const p of pending) for (const s of p.slots) if (s && 'id' in s) consumers.set(s.id, (consumers.get(s.id) ?? 0) + 1);
    const plain = pending.map((p) => this.step(p));
    const fused: Step[] = [];
    for (let k = 0; k < pending.length; k++) {
      const p = pending[k]!;
      const nextP = pending[k + 1];
      const out = p.outputs[0]!;
      const act = nextP?.impl.activation;
      const runtimeIn = nextP?.slots.filter((s) => s && 'id' in s) as Array<{ id: number }> | undefined;
      if (p.impl.conv && act && runtimeIn?.length === 1 && runtimeIn[0]!.id === out && consumers.get(out) === 1 && !outputIds.has(out)) {
        fused.push(tidied(fusedConvStep(p.impl.conv, act, this.runtimeInputs(p), nextP.outputs, [out])));
        k++;
        continue;
      }
      fused.push(plain[k]!);
    }
    return { plain, fused };
  }

  private runtimeInputs(p: Pending): number[] {
    return p.slots.flatMap((s) => (s && 'id' in s ? [s.id] : []));
  }

  private step(p: Pending): Step {
    const inputs = this.runtimeInputs(p);
    if (p.impl.conv) return tidied(fusedConvStep(p.impl.conv, 'linear', inputs, p.outputs, []));
    const merge = (rt: Array<tf.Tensor | undefined>) => {
      let k = 0;
      return p.slots.map((s) => (!s ? undefined : 'constant' in s ? s.constant : rt[k++]));
    };
    const mergeTangents = (rt: tf.Tensor[]) => {
      let k = 0;
      return p.slots.map((s) => (!s || 'constant' in s ? undefined : rt[k++]));
    };
    const jvp = p.impl.jvp;
    return {
      inputs,
      outputs: p.outputs.filter((id) => id >= 0),
      inner: [],
      supportsJvp: !!jvp,
      // tidy: operators make temporaries (layout conversions, masks) that StepGraph does not track.
      apply: (ins) => {
        try {
          return tf.tidy(() => p.impl.apply(merge(ins)));
        } catch (e) {
          throw nodeError(p, e);
        }
      },
      jvp: (ins, tangents, groups) => {
        try {
          const all = merge(ins);
          const outs = p.impl.apply(all);
          outs.slice(1).forEach((t) => t.dispose());
          return { primal: outs[0]!, tangent: jvp!(all, mergeTangents(tangents), groups, outs[0]!) };
        } catch (e) {
          throw nodeError(p, e);
        }
      },
      dispose: () => p.impl.dispose?.(),
    };
  }

  /** The input of the graph's final Softmax: the logits of an export that outputs probabilities only. */
  preSoftmax(): string | undefined {
    return this.softmaxInput;
  }

  /** A Gemm / MatMul / 1×1 Conv's constant weights as [D, K] (or [1,1,D,K]), the layout Classifier.logitWeights reads. */
  weightsOf(layer: string): Array<{ values: Float32Array; shape: number[] }> | undefined {
    const p = this.producerOf.get(layer);
    if (!p) return undefined;
    if (p.impl.conv && !p.impl.conv.depthwise) {
      const f = p.impl.conv.filter;
      return [{ values: Float32Array.from(f.dataSync() as Float32Array), shape: [...f.shape] }];
    }
    if (p.op !== 'Gemm' && p.op !== 'MatMul') return undefined;
    const b = this.constantByName(p.node.input?.[1]);
    if (!b || b.rank !== 2) return undefined;
    const transB = p.op === 'Gemm' && new Attrs(p.node.attribute, p.node.name ?? '').int('transB', 0) === 1;
    const kernel = transB ? tf.tidy(() => tf.transpose(b)) : b;
    const out = [{ values: Float32Array.from(kernel.dataSync() as Float32Array), shape: [...kernel.shape] }];
    if (kernel !== b) kernel.dispose();
    return out;
  }

  private constantByName(name: string | undefined): tf.Tensor | undefined {
    return name ? this.constantNames.get(name) : undefined;
  }

  dispose(): void {
    this.graph.dispose();
    tf.dispose(this.constants);
  }
}

/** A step whose temporaries (a depthwise convolution's explicit padding) are freed with each call. */
function tidied(step: Step): Step {
  const jvp: Step['jvp'] = (ins, t, g) => {
    const [primal, tangent] = tf.tidy(() => {
      const r = step.jvp(ins, t, g);
      return r.tangent ? [r.primal, r.tangent] : [r.primal];
    });
    return { primal: primal!, tangent: tangent ?? null };
  };
  return { ...step, apply: (ins) => tf.tidy(() => step.apply(ins)), jvp };
}

/** NCHW → NHWC as a step of its own (linear, so its tangent rule is itself). */
function conversionStep(from: number, to: number): Pending {
  const impl: OpImpl = { apply: ([x]) => [toNhwc(x!)], layouts: ['nhwc'], jvp: (_i, [t]) => (t ? toNhwc(t) : null) };
  return { node: { op_type: 'Transpose', input: [], output: [] }, name: 'NCHW → NHWC', impl, slots: [{ id: from }], outputs: [to] };
}

/** A failure inside an operator, with the node that raised it (shape mismatches name tensors, not nodes). */
function nodeError(p: Pending, e: unknown): Error {
  if (e instanceof EngineError) return e;
  const shapes = p.node.input?.filter(Boolean).join(', ');
  return new EngineError('MODEL_INVALID', `ONNX ${p.node.op_type} node "${p.name}" (inputs ${shapes}) failed: ${(e as Error).message.split('\n')[0]}`);
}

function fail(what: string): never {
  throw new EngineError('MODEL_INVALID', `not a usable ONNX model: ${what}`);
}
