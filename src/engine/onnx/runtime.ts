import { EngineError } from '../errors.js';
import { defaultThreads } from '../wasm-threads.js';
import { decodeModel, encodeModel } from './proto.js';

/**
 * onnxruntime-node for forward-only work (accuracy, classify, evaluate, the screen's scoring): native CPU kernels,
 * several times faster than the wasm engine, no gradients. It is an optional dependency: everything works without
 * it, on the tfjs engine.
 */

interface OrtTensor {
  data: Float32Array;
  dims: readonly number[];
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtModule {
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, opts: Record<string, unknown>): Promise<OrtSession> };
}

let loaded: Promise<OrtModule | undefined> | undefined;

/** The onnxruntime-node module, or undefined when it is not installed (or its native binding does not load). */
export function loadOrt(): Promise<OrtModule | undefined> {
  // A variable specifier keeps TypeScript from requiring the optional package at build time.
  const name = 'onnxruntime-node';
  loaded ??= import(name).then(
    (m: { default?: OrtModule } & OrtModule) => (m.InferenceSession ? m : m.default),
    () => undefined,
  );
  return loaded;
}

/** A forward-only session over an ONNX model that returns the named tensors (made graph outputs if they are not). */
export class OrtForward {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    private readonly input: string,
    readonly outputs: readonly string[],
    readonly threads: number,
  ) {}

  /** Undefined when onnxruntime-node is not installed. */
  static async create(bytes: Uint8Array, input: string, outputs: readonly string[]): Promise<OrtForward | undefined> {
    const ort = await loadOrt();
    if (!ort) return undefined;
    const threads = defaultThreads();
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(withOutputs(bytes, outputs), {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
      });
    } catch (e) {
      throw new EngineError('MODEL_INVALID', `onnxruntime cannot load the model: ${(e as Error).message.split('\n')[0]}`, 'run with --backend wasm');
    }
    return new OrtForward(ort, session, input, outputs, threads);
  }

  /** NCHW model input (already preprocessed) → the requested tensors, each flat. */
  async run(nchw: Float32Array, dims: readonly number[]): Promise<Float32Array[]> {
    const out = await this.session.run({ [this.input]: new this.ort.Tensor('float32', nchw, dims) }, this.outputs);
    return this.outputs.map((o) => out[o]!.data);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The model with exactly `names` as its graph outputs. (onnxruntime returns graph outputs only; and asked for a
 * subset of several outputs, onnxruntime-node 1.23 was seen to return the first ones instead, so the graph is cut
 * to what is fetched.)
 */
function withOutputs(bytes: Uint8Array, names: readonly string[]): Uint8Array {
  const model = decodeModel(bytes);
  const g = model.graph!;
  const declared = new Map((g.output ?? []).map((o) => [o.name, o]));
  if ((g.output ?? []).length === names.length && names.every((n, i) => g.output![i]!.name === n)) return bytes;
  g.output = names.map((name) => declared.get(name) ?? { name, type: { tensor_type: { elem_type: 1 } } });
  return encodeModel(model);
}
