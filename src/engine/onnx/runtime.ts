import { createRequire } from 'node:module';
import { EngineError } from '../errors.js';
import { defaultThreads } from '../wasm-threads.js';
import { attr, decodeModel, encodeModel, floatTensor, int64Tensor, type GraphProto, type NodeProto } from './proto.js';

/**
 * onnxruntime-node for forward-only work (accuracy, classify, evaluate, the screen's scoring): native CPU kernels,
 * several times faster than the wasm engine, no gradients. It is an optional dependency: everything works without
 * it, on the tfjs engine.
 */

interface OrtTensor {
  data: Float32Array;
  dims: readonly number[];
}
interface OrtModule {
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
}

interface BindingSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: Record<string, unknown>): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, null>, options: Record<string, unknown>): Record<string, OrtTensor>;
  dispose(): void;
}
interface OrtBinding {
  binding: { InferenceSession: new () => BindingSession };
  initOrt(): void;
}

let binding: { ort: OrtModule; b: OrtBinding } | null | undefined;

/**
 * onnxruntime-node's native binding, whose `run` returns synchronously: the package's own `run` is that same call
 * deferred by setImmediate (dist/backend.js, 1.23). Every session here is opened on it. Undefined where
 * onnxruntime-node, or that file of it, is missing.
 */
function ortBinding(): { ort: OrtModule; b: OrtBinding } | undefined {
  if (binding === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const ort = require('onnxruntime-node') as OrtModule;
      const b = require('onnxruntime-node/dist/binding.js') as OrtBinding;
      binding = typeof b.binding?.InferenceSession === 'function' && typeof b.initOrt === 'function' ? { ort, b } : null;
    } catch {
      binding = null;
    }
  }
  return binding ?? undefined;
}

/** Whether onnxruntime-node is installed (with the binding file sessions are opened on). */
export function ortInstalled(): boolean {
  return ortBinding() !== undefined;
}

/**
 * Session options for work on `threads` threads (one operator at a time). `spin: false` lets the session's threads
 * sleep as soon as a run ends instead of spinning: for sessions that take turns with other work on the same cores
 * (the tfjs tape, another session). A native optimisation step runs a forward-only session, the tape, then a backward
 * graph; with spinning threads each slowed the next (MobileNet, 128 px, batch 16, to conv_pw_11_relu, in one step:
 * forward 21.6–23.6 → 13.1–13.6 ms, backward graph 63.4–66.1 → 50.6–52.8 ms on 2 cores). Sessions run back to back
 * keep spinning: a MobileNet forward at batch 8 was 2–5 % slower without it.
 */
export function sessionOptions(threads: number, level: 'all' | 'extended' | 'disabled' = 'all', spin = true): Record<string, unknown> {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: level,
    executionMode: 'sequential',
    ...(spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
}

/**
 * A session whose `run` returns synchronously, on onnxruntime-node's native binding. Native gradients need it: the
 * tfjs tape calls an op's gradient function synchronously, so a network run natively inside an optimisation step
 * (featurevis/native-step.ts) must answer within that call. Throws BACKEND_MISSING where the binding is not there,
 * and onnxruntime's own error where it cannot load the model.
 */
export class SyncSession {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: BindingSession,
  ) {}

  static open(bytes: Uint8Array, options: Record<string, unknown>): SyncSession {
    const found = ortBinding();
    if (!found) throw new EngineError('BACKEND_MISSING', 'onnxruntime-node is not installed, or has no dist/binding.js (native gradients were built against 1.23)');
    found.b.initOrt();
    const session = new found.b.binding.InferenceSession();
    session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, options);
    return new SyncSession(found.ort, session);
  }

  /** Float32 feeds → the fetched tensors (int64 ones as onnxruntime gives them). */
  run(feeds: Record<string, { data: Float32Array; dims: readonly number[] }>, fetches: readonly string[]): Record<string, { data: Float32Array; dims: readonly number[] }> {
    const tensors: Record<string, OrtTensor> = {};
    for (const [name, { data, dims }] of Object.entries(feeds)) tensors[name] = new this.ort.Tensor('float32', data, dims);
    return this.session.run(tensors, Object.fromEntries(fetches.map((f) => [f, null])), {});
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** A forward-only session over an ONNX model that returns the named tensors (made graph outputs if they are not). */
export class OrtForward {
  private constructor(
    private readonly session: SyncSession,
    private readonly input: string,
    readonly outputs: readonly string[],
    readonly threads: number,
  ) {}

  /**
   * Undefined when onnxruntime-node is not installed. With `pre`, the session takes [N, H, W, 3] pixels in [0,1]
   * and does the preprocessing itself (to NCHW, y = x·scale + offset per channel, channel order reversed if asked):
   * one native pass instead of three tfjs ones (measured: a third of a MobileNet forward's time on wasm). With
   * `anySize` (and `pre`) the pixels may have any height and width, whatever size the model declares. `spin`: as
   * sessionOptions (false for a session that takes turns with the tape).
   */
  static create(bytes: Uint8Array, input: string, outputs: readonly string[], pre?: Preprocessing, { anySize = false, spin = true } = {}): OrtForward | undefined {
    if (!ortInstalled()) return undefined;
    const threads = defaultThreads();
    let session: SyncSession;
    try {
      session = SyncSession.open(rewrite(bytes, input, outputs, pre, anySize), sessionOptions(threads, 'all', spin));
    } catch (e) {
      throw new EngineError('MODEL_INVALID', `onnxruntime cannot load the model: ${(e as Error).message.split('\n')[0]}`, 'run with --backend wasm');
    }
    return new OrtForward(session, pre ? PIXELS : input, outputs, threads);
  }

  /**
   * The model input (NCHW, preprocessed), or with `pre` the NHWC [0,1] pixels → the requested tensors, each flat.
   * Timers and I/O get their turn first, as onnxruntime-node's own async run gives them.
   */
  async run(nchw: Float32Array, dims: readonly number[]): Promise<Float32Array[]> {
    await new Promise((r) => setImmediate(r));
    return this.runShaped(nchw, dims).map((o) => o.data);
  }

  /** As `run`, synchronously, with each output's dims (onnxruntime's order: NCHW for image tensors). */
  runShaped(nchw: Float32Array, dims: readonly number[]): Array<{ data: Float32Array; dims: readonly number[] }> {
    const out = this.session.run({ [this.input]: { data: nchw, dims } }, this.outputs);
    return this.outputs.map((o) => out[o]!);
  }

  dispose(): void {
    this.session.dispose();
  }
}

/**
 * `g` cut, in place, to what `outputs` need: the nodes that lead to them, stopping at `stopAt` (whose maker then goes
 * too: the tensor becomes an input), and the initializers those nodes read (with any graph input that only declared
 * one). Left whole where a node holds a subgraph, which may read outer tensors it does not list.
 */
export function keepOnly(g: GraphProto, outputs: readonly string[], stopAt?: string): void {
  const nodes = g.node ?? [];
  if (nodes.some((n) => (n.attribute ?? []).some((a) => a.g || a.graphs?.length))) return;
  const needed = new Set(outputs);
  const kept = new Set<NodeProto>();
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k]!;
    if (!(n.output ?? []).some((o) => needed.has(o) && o !== stopAt)) continue;
    kept.add(n);
    for (const i of n.input ?? []) if (i && i !== stopAt) needed.add(i);
  }
  g.node = nodes.filter((n) => kept.has(n));
  const unused = new Set((g.initializer ?? []).filter((t) => !needed.has(t.name!)).map((t) => t.name));
  g.initializer = (g.initializer ?? []).filter((t) => !unused.has(t.name));
  g.input = (g.input ?? []).filter((i) => !unused.has(i.name));
}

/** The symbol a graph input names its batch with ('N' where it names none): tensors fed beside it use it too. */
export function batchSymbol(g: GraphProto, input: string): string {
  return g.input?.find((i) => i.name === input)?.type?.tensor_type?.shape?.dim?.[0]?.dim_param || 'N';
}

/** Per-channel y = x·scale + offset (RGB order, [0,1] pixels in), then the channels reversed if `reverse`. */
export interface Preprocessing {
  scale: [number, number, number];
  offset: [number, number, number];
  reverse: boolean;
}

export const PIXELS = 'patch_atlas_pixels';

/**
 * The model with exactly `names` as its graph outputs, and with the preprocessing in front of `input` if asked.
 * (onnxruntime returns graph outputs only; and asked for a subset of several outputs, onnxruntime-node 1.23 was
 * seen to return the first ones instead, so the graph is cut to what is fetched.)
 */
export function rewrite(bytes: Uint8Array, input: string, names: readonly string[], pre: Preprocessing | undefined, anySize = false): Uint8Array {
  const model = decodeModel(bytes);
  const g = model.graph!;
  const declared = new Map((g.output ?? []).map((o) => [o.name, o]));
  const same = (g.output ?? []).length === names.length && names.every((n, i) => g.output![i]!.name === n);
  if (same && !pre) return bytes;
  // Fetched tensors that are not graph outputs go out untyped: onnxruntime infers their types (some are int64 shapes).
  g.output = names.map((name) => declared.get(name) ?? { name });
  // Only the nodes the outputs need: onnxruntime ran the rest too (MobileNet cut at conv_pw_11_relu still ran its last
  // layers and softmax).
  keepOnly(g, names);
  if (pre) {
    const order = pre.reverse ? [2, 1, 0] : [0, 1, 2];
    // Reversing the channels after the affine map equals applying the reversed map to reversed input channels.
    const scale = order.map((c) => pre.scale[c]!);
    const offset = order.map((c) => pre.offset[c]!);
    g.initializer = [...(g.initializer ?? []), floatTensor(`${PIXELS}/scale`, scale, [1, 3, 1, 1]), floatTensor(`${PIXELS}/offset`, offset, [1, 3, 1, 1])];
    const nodes = [
      { op_type: 'Transpose', input: [PIXELS], output: [`${PIXELS}/nchw`], name: `${PIXELS}/nchw`, attribute: [attr.ints('perm', [0, 3, 1, 2])] },
      ...(pre.reverse
        ? [
            { op_type: 'Slice', input: [`${PIXELS}/nchw`, `${PIXELS}/starts`, `${PIXELS}/ends`, `${PIXELS}/axes`, `${PIXELS}/steps`], output: [`${PIXELS}/ordered`], name: `${PIXELS}/ordered` },
          ]
        : []),
      { op_type: 'Mul', input: [pre.reverse ? `${PIXELS}/ordered` : `${PIXELS}/nchw`, `${PIXELS}/scale`], output: [`${PIXELS}/scaled`], name: `${PIXELS}/scaled` },
      { op_type: 'Add', input: [`${PIXELS}/scaled`, `${PIXELS}/offset`], output: [input], name: `${PIXELS}/input` },
    ];
    if (pre.reverse) {
      g.initializer.push(int64Tensor(`${PIXELS}/starts`, [-1]), int64Tensor(`${PIXELS}/ends`, [-4]), int64Tensor(`${PIXELS}/axes`, [1]), int64Tensor(`${PIXELS}/steps`, [-1]));
    }
    g.node = [...nodes, ...(g.node ?? [])];
    const old = (g.input ?? []).find((i) => i.name === input);
    const dims = old?.type?.tensor_type?.shape?.dim ?? [];
    g.input = [
      // `anySize`: height and width left open (an exported Keras model declares its training size, yet runs at any).
      { name: PIXELS, type: { tensor_type: { elem_type: 1, shape: { dim: [dims[0] ?? { dim_param: 'N' }, (!anySize && dims[2]) || { dim_param: 'H' }, (!anySize && dims[3]) || { dim_param: 'W' }, { dim_value: 3 }] } } } },
      ...(g.input ?? []).filter((i) => i.name !== input),
    ];
  }
  return encodeModel(model);
}
