import { EngineError } from '../errors.js';
import { DataType, decodeModel, encodeModel, type ModelProto, type TensorProto } from './proto.js';
import { Attrs } from './attrs.js';
import { Builder, RULES } from './backward-rules.js';
import { batchSymbol, keepOnly, rewrite, sessionOptions, SyncSession, type Preprocessing, PIXELS } from './runtime.js';
import { READOUT, withReadout } from './readout.js';
import type { Readout } from '../readout.js';

/**
 * Backward graphs for onnxruntime: from a model's ONNX graph, one that also returns d(Σ seed·target)/d(input), so
 * gradients run on onnxruntime's native kernels instead of the wasm engine. The seeds (`dy` of each target) are graph
 * inputs, so one session serves every objective: the caller computes dObjective/dTarget (cheap, on the targets)
 * and feeds it. Each operator's rule is written as ONNX operators (backward-rules.ts: a conv's input gradient is a
 * conv with the flipped filter, or a ConvTranspose; a max-pool routes through its Indices output with
 * ScatterElements, or through the smooth relaxation; LRN is elementwise with a banded 1×1 conv for the channel
 * window). The input differentiated may be the image or a hidden tensor (`from`). The graph is built for one input
 * size: every shape in it is static (read once from onnxruntime on a blank image), except the batch.
 *
 * Ties: ReLU and Clip pass no gradient on their kinks (read from the output); a max-pool routes a tie to the first
 * maximum in its window (ONNX's Indices, row-major), as the tfjs engine does. A near-tie (values equal in exact
 * arithmetic, rounded differently by two engines' kernels, as after GoogLeNet's pool → 1×1 conv → pool) can go to
 * another element: both are valid subgradients.
 */
export interface BackwardSpec {
  /** The graph input (NCHW model input). */
  input: string;
  /** Tensors whose seeded sum is differentiated, returned as outputs too. */
  targets: readonly string[];
  /** Preprocessing put in front, so the gradient is w.r.t. [N, H, W, 3] pixels in [0,1] (see OrtForward). */
  pre?: Preprocessing;
  /** [height, width] of the input the graph is built for. */
  size: [number, number];
  /**
   * Differentiate with respect to this hidden tensor instead: it becomes the graph's input (fed NCHW, every
   * dimension but the batch fixed by `size`) and the nodes that made it are cut away.
   */
  from?: string;
  /**
   * 'smooth': max-pools backpropagate through the Activation Atlas relaxation A(x²)/(ε + A|x|) (A: average pool with
   * the max-pool's window), as the tfjs engine's 'smooth' mode and the forward-mode attribution rule do. Default 'exact'.
   */
  maxPool?: 'exact' | 'smooth';
  /**
   * Differentiate this readout of the targets instead (engine/readout.ts; reads named by their ONNX tensors): the
   * graph's one target is then the readout's value [N], whose seed of ones gives each item's gradient, its weights
   * are inputs (`BackwardGraph.weights`), and the targets are returned as `also`.
   */
  readout?: Readout;
  /** With `readout`: the targets (reads) returned as values too, not differentiated. */
  also?: readonly string[];
}

export interface BackwardGraph {
  bytes: Uint8Array;
  /** The input to feed (the pixels when `pre` was given; the hidden tensor with `from`). */
  input: string;
  /** With `from`: the image input, where the targets also depend on it other than through `from`; else undefined. */
  context?: string;
  /** The targets, returned as outputs in this order. */
  targets: string[];
  /** Tensors returned as well, not differentiated (a readout's reads). */
  also: string[];
  /** Further inputs to feed: a readout's weights, [R, widths[k]] each (R: 1 or N). */
  weights: string[];
  widths: number[];
  /** Seed input names, one per target, in `targets` order. */
  seeds: string[];
  /** The gradient output's name. */
  grad: string;
  /** Target shapes with batch 1 (the seeds have the same shapes, batch N). */
  targetShapes: number[][];
  /** Max-pools on the path (routed through their Indices output). */
  maxPools: number;
}

/** Operators with a backward rule (backward-rules.ts). */
export const BACKWARD_OPS = new Set(Object.keys(RULES));
/** Operators whose outputs carry no gradient (shape arithmetic). */
const NO_GRADIENT = new Set(['Shape', 'Size', 'ConstantOfShape', 'Constant']);

export function buildBackward(source: Uint8Array, given: BackwardSpec): BackwardGraph {
  let bytes = source;
  let spec = given;
  let weights: string[] = [];
  let widths: number[] = [];
  if (given.readout) {
    // The read tensors' shapes at this size place the readout's positions; then the readout is part of the model.
    const dims = staticShapes(source, given, [...given.targets], []).shapes;
    ({ bytes, weights, widths } = withReadout(source, given.readout, dims, given.input));
    spec = { ...given, targets: [READOUT] };
  }
  const also = given.readout ? [...(given.also ?? [])] : [];
  for (const t of also) if (!given.targets.includes(t)) throw new EngineError('MODEL_INVALID', `${t} is returned as a value but is not read`);
  const model = decodeModel(rewrite(bytes, spec.input, [...spec.targets, ...also], spec.pre, true));
  const g = model.graph!;
  const x = spec.from ?? (spec.pre ? PIXELS : spec.input);
  const opset = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
  if (opset < 13) throw new EngineError('MODEL_INVALID', `backward graphs need opset 13 or later (the model has ${opset})`);
  // (rewrite left only the nodes the targets need.)
  const nodes = g.node ?? [];
  // On the path: depends on x. (The node that makes a hidden `from` is not on it: the gradient stops at `from`.)
  const live = new Set<string>([x]);
  for (const n of nodes) if (!NO_GRADIENT.has(n.op_type ?? '') && (n.input ?? []).some((i) => live.has(i))) for (const o of n.output ?? []) live.add(o);
  const path = nodes.filter((n) => (n.output ?? []).some((o) => live.has(o)) && !n.output!.includes(x));
  if (spec.from) {
    if (!nodes.some((n) => n.output?.includes(spec.from!))) throw new EngineError('MODEL_INVALID', `no tensor named ${spec.from} in the model`);
    // Whatever only served to make `from` goes, with its weights.
    keepOnly(g, spec.targets, spec.from);
  }
  for (const n of path) if (!BACKWARD_OPS.has(n.op_type!)) throw new EngineError('UNSUPPORTED_OP', `no backward rule for ${n.op_type} (node ${n.name || n.output?.[0]})`);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const constNodes = new Map(nodes.filter((n) => n.op_type === 'Constant').map((n) => [n.output![0]!, n]));
  // Shapes of the tensors on the path, and values of the ones computed off it (pads, shapes from Shape → Concat chains).
  const computed = [...new Set(path.flatMap((n) => (n.input ?? []).slice(1)).filter((t) => t && !live.has(t) && !inits.has(t) && !constNodes.has(t)))];
  // Shapes of every tensor on the path, the ones off it too (a Concat's part from a branch that `from` does not feed).
  const onPathTensors = [...new Set(path.flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]).filter((t) => t && (live.has(t) || (spec.from && !inits.has(t) && !constNodes.has(t)))))];
  const { shapes, values } = staticShapes(bytes, spec, onPathTensors, computed);
  const b = new Builder(shapes);
  const grads = new Map<string, string[]>();
  const seeds = spec.targets.map((t) => `grad/${t}`);
  spec.targets.forEach((t, k) => grads.set(t, [seeds[k]!]));
  const add = (t: string, gname: string) => grads.set(t, [...(grads.get(t) ?? []), gname]);
  const gradOf = (t: string): string | undefined => {
    const parts = grads.get(t);
    if (!parts?.length) return undefined;
    if (parts.length === 1) return parts[0];
    const s = b.fresh(`grad/${t}/sum`);
    b.node('Sum', parts, s);
    grads.set(t, [s]);
    return s;
  };
  const floatConst = (name: string): Float32Array | undefined => {
    const t = inits.get(name) ?? constNodes.get(name)?.attribute?.find((a) => a.name === 'value')?.t;
    const v = values.get(name);
    return t ? floatsOf(t) : v ? Float32Array.from(v) : undefined;
  };
  const intConst = (name: string): number[] | undefined => {
    const t = inits.get(name) ?? constNodes.get(name)?.attribute?.find((a) => a.name === 'value')?.t;
    return t ? intsOf(t) : values.get(name);
  };

  // Max-pools keep onnxruntime off its NCHWc layout (OrtBackward), which the masks are chosen for.
  const maxPools = path.filter((n) => n.op_type === 'MaxPool').length;
  const nchwc = maxPools === 0;
  const smooth = spec.maxPool === 'smooth';
  for (let k = path.length - 1; k >= 0; k--) {
    const n = path[k]!;
    const out = n.output![0]!;
    const dy = gradOf(out);
    if (!dy) continue;
    const ins = n.input ?? [];
    const onPath = (i: number) => !!ins[i] && live.has(ins[i]!);
    const a = new Attrs(n.attribute, n.name ?? out);
    const xs = ins[0] ? shapes.get(ins[0]!) : undefined;
    const ys = shapes.get(out)!;
    const rule = RULES[n.op_type!]!;
    const constDims = (name: string) => (inits.get(name) ?? constNodes.get(name)?.attribute?.find((v) => v.name === 'value')?.t)?.dims;
    rule({ n, a, dy, ins, out, xs, ys, onPath, add, b, floatConst, intConst, constDims, shapes, nchwc, smooth });
  }
  const grad = gradOf(x);
  if (!grad) throw new EngineError('MODEL_INVALID', `the targets (${spec.targets.join(', ')}) do not depend on ${x}`);
  b.node('Identity', [grad], `grad/${x}`);

  g.node = [...(g.node ?? []), ...b.nodes];
  g.initializer = [...(g.initializer ?? []), ...b.inits];
  const targetShapes = spec.targets.map((t) => shapes.get(t)!);
  const batch = batchSymbol(g, spec.pre ? PIXELS : spec.input);
  g.input = [...(g.input ?? []), ...seeds.map((name, k) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: batch }, ...targetShapes[k]!.slice(1).map((d) => ({ dim_value: d }))] } } } }))];
  g.output = [...spec.targets, ...also, `grad/${x}`].map((name) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } }));
  // The graph is built for one input size: saying so lets onnxruntime prove that a mask and the gradient it scales
  // have one shape, which its NCHWc layout needs to keep the product in that layout (see nchwcMask).
  const image = spec.pre ? PIXELS : spec.input;
  // With `from`, the image stays an input only where a kept node still reads it (a branch around `from`).
  const context = spec.from && (g.node ?? []).some((n) => n.input?.includes(image)) ? image : undefined;
  if (spec.from) {
    const declared = { name: x, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: batch }, ...shapes.get(x)!.slice(1).map((d) => ({ dim_value: d }))] } } } };
    g.input = [declared, ...(g.input ?? []).filter((i) => i.name !== x && (i.name !== image || context))];
  }
  const dims = g.input?.find((i) => i.name === image)?.type?.tensor_type?.shape?.dim;
  if (dims?.length === 4) (spec.pre ? [1, 2] : [2, 3]).forEach((k, j) => (dims[k] = { dim_value: spec.size[j] }));
  model.opset_import = [{ domain: '', version: Math.max(opset, 16) }];
  return { bytes: encodeModel(model as ModelProto), input: x, context, targets: [...spec.targets], also, weights, widths, seeds, grad: `grad/${x}`, targetShapes, maxPools };
}

/**
 * Every named tensor's shape (batch 1), and the values of `computed` (small integer tensors off the path), read
 * from onnxruntime on a blank input of the spec's size (other float inputs, such as a readout's weights, one row of
 * zeros).
 */
function staticShapes(bytes: Uint8Array, spec: BackwardSpec, names: string[], computed: string[]): { shapes: Map<string, number[]>; values: Map<string, number[]> } {
  const [h, w] = spec.size;
  const all = [...names, ...computed];
  const probe = rewrite(bytes, spec.input, all, spec.pre, true);
  const session = SyncSession.open(probe, sessionOptions(1, 'disabled'));
  try {
    const input = spec.pre ? PIXELS : spec.input;
    // The channels the model declares (3 when it does not say).
    const declared = decodeModel(bytes).graph?.input?.find((i) => i.name === spec.input)?.type?.tensor_type?.shape?.dim?.[1]?.dim_value;
    const dims = spec.pre ? [1, h, w, 3] : [1, Number(declared ?? 3) || 3, h, w];
    const zeros = (d: readonly number[]) => ({ data: new Float32Array(d.reduce((a, b) => a * b, 1)), dims: d });
    const pg = decodeModel(probe).graph!;
    const inits = new Set((pg.initializer ?? []).map((t) => t.name));
    const others = (pg.input ?? []).filter((i) => i.name !== input && !inits.has(i.name) && i.type?.tensor_type?.elem_type === DataType.FLOAT);
    const feeds = Object.fromEntries(others.map((i) => [i.name!, zeros((i.type!.tensor_type!.shape?.dim ?? []).map((d) => Number(d.dim_value ?? 0) || 1))]));
    const out = session.run({ [input]: zeros(dims), ...feeds }, all);
    const values = new Map(computed.map((n) => [n, Array.from(out[n]!.data as ArrayLike<number | bigint>, Number)]));
    return { shapes: new Map(names.map((n) => [n, [...out[n]!.dims]])), values };
  } finally {
    session.dispose();
  }
}

function floatsOf(t: TensorProto): Float32Array | undefined {
  if (t.data_type !== DataType.FLOAT) return undefined;
  if (t.raw_data?.length) return new Float32Array(new Uint8Array(t.raw_data).buffer);
  return t.float_data ? Float32Array.from(t.float_data) : undefined;
}

function intsOf(t: TensorProto): number[] | undefined {
  if (t.data_type === DataType.INT64) {
    if (t.raw_data?.length) return Array.from(new BigInt64Array(new Uint8Array(t.raw_data).buffer), Number);
    return t.int64_data?.map(Number);
  }
  if (t.data_type === DataType.INT32) return t.raw_data?.length ? Array.from(new Int32Array(new Uint8Array(t.raw_data).buffer)) : t.int32_data;
  return undefined;
}

type Feed = { data: Float32Array; dims: readonly number[] };

/**
 * A session over a backward graph: pixels (or the model input) and one seed per target in, the targets and the
 * gradient out. Synchronous (SyncSession): it runs inside the tfjs tape's gradient functions.
 */
export class OrtBackward {
  private constructor(
    private readonly session: SyncSession,
    readonly graph: BackwardGraph,
  ) {}

  /** Throws UNSUPPORTED_OP for an operator without a backward rule, BACKEND_MISSING without onnxruntime-node. */
  static create(bytes: Uint8Array, spec: BackwardSpec, threads: number): OrtBackward {
    const graph = buildBackward(bytes, spec);
    let session;
    try {
      // With max-pools, one level short of 'all': its NCHWc re-tiling rounds differently from tfjs, and near-ties in
      // pooling windows then break differently (GoogLeNet, relative L2 against the tfjs tape: 3.1e-3 vs 5.8e-4).
      // No spinning: backward graphs take turns with the tape and a forward-only session (sessionOptions).
      session = SyncSession.open(graph.bytes, sessionOptions(threads, graph.maxPools ? 'extended' : 'all', false));
    } catch (e) {
      throw new EngineError('MODEL_INVALID', `onnxruntime cannot load the backward graph: ${(e as Error).message.split('\n')[0]}`);
    }
    return new OrtBackward(session, graph);
  }

  /**
   * `x` with dims `dims`; seeds flat, batch × target shape each → the targets and `also` (with dims) and
   * d(Σ seed·target)/dx, flat. `more`: the graph's other inputs by name (the image where `context` names it, the
   * weights).
   */
  run(x: Float32Array, dims: readonly number[], seeds: readonly Float32Array[], more: Readonly<Record<string, Feed>> = {}): { targets: Feed[]; also: Feed[]; grad: Float32Array } {
    const g = this.graph;
    const n = dims[0]!;
    for (const name of [...(g.context ? [g.context] : []), ...g.weights]) {
      if (!more[name]) throw new EngineError('MODEL_INVALID', `the backward graph also needs ${name}: feed it`);
    }
    const feeds: Record<string, Feed> = { ...more, [g.input]: { data: x, dims } };
    g.seeds.forEach((name, k) => (feeds[name] = { data: seeds[k]!, dims: [n, ...g.targetShapes[k]!.slice(1)] }));
    const out = this.session.run(feeds, [...g.targets, ...g.also, g.grad]);
    const fetched = (t: string): Feed => ({ data: out[t]!.data, dims: out[t]!.dims });
    return { targets: g.targets.map(fetched), also: g.also.map(fetched), grad: out[g.grad]!.data };
  }

  dispose(): void {
    this.session.dispose();
  }
}
