import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readEnv, type Env } from '../config.js';
import { writeFileAtomic } from '../util/atomic.js';
import { externalDataIn } from './onnx-data.js';
import type { Preprocess } from '../data/pixels.js';
import { PatchAtlasError } from '../errors.js';
import { closest } from '../util/suggest.js';
import { defaultThreads, initBackend, OrtBackward, OrtForward, setForwardEngine, tfjsBackendOf, type BackendName, type EngineChoice, type Preprocessing } from '../engine/index.js';
import { isBuiltIn, loadDescriptor, loadLabels, sourceOf, type ModelDescriptor } from './descriptor.js';
import { recordModelSource } from '../formats/producer.js';
import { INPUT, probeShapes, type Executor, type LayerInfo } from '../engine/index.js';
import { EngineError, NoNativeGradient, EXPORT_VERSION, ExportUnsupported, GraphExecutor, graphToOnnx, OnnxExecutor, type GraphConversion, type GraphNode } from '../engine/index.js';
import { withMaxPoolGrad, type MaxPoolGradMode } from '../engine/index.js';
import { checkedWeight, readoutReads, renameReads, type Readout, type ReadoutWeight } from '../engine/index.js';
import { LayersExecutor } from '../engine/index.js';
import type { ClassRef, LabelSet } from './labels.js';
import { hashFiles, readArtifacts, resolveWeights, weightFiles, type ResolvedWeights } from './weights.js';

export interface LoadOptions {
  /** Built-in model name or descriptor path (default mobilenet_v1_0.75). */
  model?: string;
  /** A folder with model.json, or model.json itself; overrides the descriptor's weights. */
  weights?: string;
  /**
   * A tfjs backend, `onnxruntime` (forward-only work and, through backward graphs, the network's part of
   * optimisation steps) or `auto` (the default: onnxruntime where installed and where measured faster).
   */
  backend?: EngineChoice;
  /** Called once with a line the user should see (native gradients unavailable, and why). */
  onNote?: (line: string) => void;
  /** Download weights from the descriptor's URL when none are found locally (default true). */
  download?: boolean;
  env?: Env;
  onDownload?: (done: number, total: number, file: string) => void;
}

/**
 * Whether `--backend auto` runs a kind of optimisation step with the network on onnxruntime, by what runs the model on
 * the tape (a Keras layers model, on our fused wasm kernels, or anything else: ONNX files and tfjs graphs, run as ONNX
 * operators on tfjs), the step's size (images × height × width) and whether its objective is a readout (one native
 * run a step: network, objective and gradient; featurevis/native-step.ts). Measured (2 cores, same process, ms per
 * step, native against tape), `npm run bench -- --only steps` (64 px patch on 8 images at 224 px; icons 96 px × 8,
 * cossim directions): EOT patch step MobileNet v1 0.75 layers 181 against 374, the same network as a tfjs graph 206
 * against 371, GoogLeNet (ONNX) 594 against 4,439; icon step MobileNet layers 45 against 76, as a tfjs graph 180
 * against 305, GoogLeNet 132 against 757. Icons of MobileNet layers by size (render, min of two runs of 4 steps):
 * 96 px × 8 48 against 78, 80 px × 8 32 / 56, 64 px × 4 14 / 21, 48 px × 2 9 / 19, 32 px × 1 3 / 8. An objective
 * that is not a readout needs a forward-only run first, for its dy: then a layers model's icons were faster natively
 * only from about 140k pixels a step (96 px × 8 102 against 88, 96 px × 16 150 / 165, 128 px × 16 224 / 288).
 */
const NATIVE_BY_DEFAULT: Record<NativeKind, (tape: 'layers' | 'other', pixels: number, oneRun: boolean) => boolean> = {
  patches: () => true,
  attribution: () => true,
  icons: (tape, pixels, oneRun) => oneRun || tape !== 'layers' || pixels >= 140_000,
};

/** Work that can run its network natively: optimisation steps of icons and patches, reverse-mode attribution. */
export type NativeKind = 'icons' | 'patches' | 'attribution';

/** Pseudo-layers every model offers. */
export const LOGITS = 'logits';
export const PROBS = 'probs';

export interface GradientOptions {
  /** 'smooth' backpropagates through max-pool with the article's relaxation (attribution only). */
  maxPool?: MaxPoolGradMode;
}

export interface Prediction {
  class: ClassRef;
  probability: number;
}

/**
 * The model wrapper: preprocessing, value range, activations and gradients, kept apart from
 * every stage that uses them. All image inputs are float [N,H,W,3] in [0,1]; the descriptor's
 * preprocessing happens inside, so gradients with respect to pixels flow through it.
 */
export class Classifier {
  private constructor(
    readonly descriptor: ModelDescriptor,
    readonly labels: LabelSet,
    readonly backend: BackendName,
    readonly weights: ResolvedWeights,
    private readonly exec: Executor,
  ) {}

  /** onnxruntime-node for forward-only work, when chosen and available (set once, by `load`). */
  private forward: OrtForward | undefined;
  /** The only input size the model takes, where it has one (set once, by `load`). */
  private fixedInput: [number, number] | undefined;
  /** Why the model has no forward-mode attribution, where the load found out (set once, by `load`). */
  noJvp: string | undefined;
  /** The ONNX form onnxruntime runs (set once, by `load`, where there is a session). */
  onnx: { bytes: Uint8Array; input: string } | undefined;
  /** Backward-graph sessions by targets and input size, or the error that building one met (thrown again on reuse). */
  private readonly backward = new Map<string, OrtBackward | Error>();
  /** Why native gradients are unavailable, once a try found out. */
  noNativeGradient: string | undefined;
  /** The engine the user chose (set once, by `load`). */
  choice: EngineChoice = 'auto';
  /** Where notes go (set once, by `load`). */
  private onNote: ((line: string) => void) | undefined;
  /** Forward-only sessions for named outputs at any input size (nativeNet). */
  private readonly activationSessions = new Map<string, OrtForward>();

  /**
   * The network from pixels to `outputs` (as `run` names them: NHWC for image tensors) on onnxruntime, as one op on
   * the tfjs tape: its forward by a forward-only session, its vector-Jacobian product by the backward graph seeded
   * with the tape's dy (which recomputes the forward natively; see engine/onnx/backward.ts). Both run synchronously
   * (SyncSession), inside the tape's own calls, so whatever makes `x` is recorded and differentiated once.
   * Throws NoNativeGradient where the model has no session for this (`noNativeGradient` says why, after one note).
   * `onNative` gets the milliseconds of each native call.
   */
  nativeNet(x: tf.Tensor4D, outputs: readonly string[], onNative?: (ms: number) => void): tf.Tensor[] {
    const plan = this.nativePlan(x, outputs);
    if (!plan) throw new NoNativeGradient(this.noNativeGradient ?? 'no onnxruntime session for this input');
    const dims = x.shape;
    const pixels = x.dataSync() as Float32Array;
    const timed = <T>(f: () => T): T => this.nativeCall(f, onNative);
    const out = timed(() => {
      const key = plan.targets.join('|');
      let session = this.activationSessions.get(key);
      if (!session) {
        session = OrtForward.create(plan.onnx.bytes, plan.onnx.input, plan.targets, this.preprocessing(), { anySize: true, spin: false });
        if (!session) throw new Error('onnxruntime-node is not installed');
        this.activationSessions.set(key, session);
      }
      return session.runShaped(pixels, dims);
    });
    // One flat tensor on the tape (an op has one output): the targets one after the other, as onnxruntime lays them
    // out, so that dy splits into the backward graph's seeds without a copy.
    const ends = out.reduce<number[]>((acc, o) => [...acc, (acc.at(-1) ?? 0) + o.data.length], []);
    let flat = out[0]!.data;
    if (out.length > 1) {
      flat = new Float32Array(ends.at(-1)!);
      out.forEach((o, k) => flat.set(o.data, k ? ends[k - 1]! : 0));
    }
    const op = tf.customGrad((input) => ({
      value: tf.tensor1d(flat),
      gradFunc: (dy: tf.Tensor) => {
        const d = dy.dataSync() as Float32Array;
        const seeds = ends.map((e, k) => d.subarray(k ? ends[k - 1]! : 0, e));
        const r = timed(() => this.backwardSession(plan, dims).run(pixels, dims, seeds));
        return tf.tensor4d(r.grad, (input as tf.Tensor4D).shape);
      },
    }));
    return tf.tidy(() => {
      const all = op(x);
      return out.map((o, k) => this.fromNativeTensor(plan.names[k]!, tf.slice(all, k ? ends[k - 1]! : 0, o.data.length), o.dims));
    });
  }

  /**
   * A readout (an objective written as data: engine/readout.ts) of the network at `x`, as one op on the tfjs tape
   * whose forward and derivative take one native run: the backward graph of network and readout together, seeded
   * with ones, gives the values [N] and each item's d value_n / d x_n at once (items never interact), kept for the
   * op's gradient (dy_n times it). nativeNet with the objective on the tape runs a forward-only session first, to
   * know the backward graph's seed. `weights(widths)` gives the readout's weights for the widths the reads have;
   * `keep`: reads also wanted as values (not differentiated), as `run` names them. Throws NoNativeGradient as
   * nativeNet does; a weight of the wrong size throws a plain Error.
   */
  nativeReadout(
    x: tf.Tensor4D,
    readout: Readout,
    weights: (widths: readonly number[]) => ReadoutWeight[],
    keep: readonly string[] = [],
    onNative?: (ms: number) => void,
  ): { value: tf.Tensor1D; kept: tf.Tensor[] } {
    const reads = readoutReads(readout);
    const plan = this.nativePlan(x, reads);
    if (!plan) throw new NoNativeGradient(this.noNativeGradient ?? 'no onnxruntime session for this input');
    const tensorOf = new Map(reads.map((r, k) => [r, plan.targets[k]!]));
    const kept = keep.map((k) => {
      const t = tensorOf.get(k);
      if (!t) throw new Error(`nativeReadout: ${k} is kept but not read`);
      return t;
    });
    const dims = x.shape;
    const n = dims[0];
    const bw = this.nativeCall(() => this.backwardSession({ onnx: plan.onnx, targets: [...new Set(plan.targets)] }, dims, { readout: renameReads(readout, (r) => tensorOf.get(r)!), also: kept }), onNative);
    const given = weights(bw.graph.widths);
    const feeds = Object.fromEntries(
      bw.graph.weights.map((name, k) => {
        const w = checkedWeight(given, k, bw.graph.widths[k]!, n);
        // The graph takes a row per item (engine/onnx/readout.ts): one row is repeated.
        const data = w.rows === n ? w.data : new Float32Array(n * w.cols).map((_, i) => w.data[i % w.cols]!);
        return [name, { data, dims: [n, w.cols] }];
      }),
    );
    const ones = new Float32Array(n).fill(1);
    const pixels = x.dataSync() as Float32Array;
    const r = this.nativeCall(() => bw.run(pixels, dims, [ones], feeds), onNative);
    const op = tf.customGrad((input) => ({
      value: tf.tensor1d(r.targets[0]!.data),
      gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.mul(tf.tensor4d(r.grad, (input as tf.Tensor4D).shape), tf.reshape(dy, [n, 1, 1, 1]))),
    }));
    const value = op(x) as tf.Tensor1D;
    return { value, kept: r.also.map((o, k) => tf.tidy(() => this.fromNativeTensor(plan.names[reads.indexOf(keep[k]!)]!, tf.tensor(o.data), o.dims))) };
  }

  /** A native call: its milliseconds to `onNative`; a failure switches native gradients off (one note) and throws NoNativeGradient. */
  private nativeCall<T>(f: () => T, onNative?: (ms: number) => void): T {
    const t = performance.now();
    try {
      return f();
    } catch (e) {
      this.noNative(e);
      throw new NoNativeGradient(this.noNativeGradient!);
    } finally {
      onNative?.(performance.now() - t);
    }
  }

  /**
   * d(Σ_k seed_k · output_k) / d pixels, and the outputs, from a backward graph run by onnxruntime. Outputs as `run`
   * names them (NHWC for image tensors), seeds of the same shapes. Undefined where nativeNet would throw. Not
   * differentiable; the caller owns the results.
   */
  nativeGradient(x: tf.Tensor4D, outputs: readonly string[], seeds: readonly tf.Tensor[]): { values: tf.Tensor[]; grad: tf.Tensor4D } | undefined {
    const plan = this.nativePlan(x, outputs);
    if (!plan) return undefined;
    try {
      const r = this.backwardSession(plan, x.shape).run(x.dataSync() as Float32Array, x.shape, seeds.map((s) => toNative(s).data));
      return { values: r.targets.map((o, k) => tf.tidy(() => this.fromNativeTensor(plan.names[k]!, tf.tensor(o.data), o.dims))), grad: tf.tensor4d(r.grad, x.shape) };
    } catch (e) {
      this.noNative(e);
      return undefined;
    }
  }

  /**
   * d(Σ_n seed_n · logits_n) / d h, h being `layer`'s activation (as `activation` gives it) of the images `x`: the
   * network from `layer` on as a backward graph run by onnxruntime (engine/onnx/backward.ts, `from`), max-pools
   * exact or through the smooth relaxation. `h` and `seeds` ([rows, outputs]) may repeat the images in blocks (rows =
   * G·N, as tf.tile makes). Undefined where native gradients are unavailable (`noNativeGradient` says why, after one
   * note). The caller owns the result.
   */
  nativeLayerGradient(x: tf.Tensor4D, layer: string, h: tf.Tensor, seeds: tf.Tensor2D, maxPool: MaxPoolGradMode = 'exact'): tf.Tensor | undefined {
    const plan = this.nativePlan(x, [LOGITS]);
    if (!plan) return undefined;
    try {
      const name = this.resolveLayer(layer);
      const bw = this.backwardSession(plan, x.shape, { from: name, maxPool });
      const hs = toNative(h);
      const repeat = h.shape[0]! / x.shape[0];
      const context = bw.graph.context ? tf.tidy(() => (repeat === 1 ? x : tf.tile(x, [repeat, 1, 1, 1]))) : undefined;
      try {
        const r = bw.run(hs.data, hs.dims, [seeds.dataSync() as Float32Array], context && bw.graph.context ? { [bw.graph.context]: { data: context.dataSync() as Float32Array, dims: context.shape } } : {});
        return tf.tidy(() => this.fromNativeTensor(name, tf.tensor1d(r.grad), hs.dims));
      } finally {
        if (context !== x) context?.dispose();
      }
    } catch (e) {
      this.noNative(e);
      return undefined;
    }
  }

  /**
   * Why this model's gradients cannot run on onnxruntime (the engine chosen, no ONNX session, an operator without a
   * backward rule), or undefined where they can: builds the logits' backward graph at the model's input size (kept for
   * later steps). Says nothing and switches nothing off: `models check` reports it.
   */
  nativeGradientProblem(): string | undefined {
    if (this.choice !== 'auto' && this.choice !== 'onnxruntime') return `--backend ${this.choice}`;
    if (!this.onnx) return 'no onnxruntime session (onnxruntime-node missing, or no ONNX form of the model)';
    if (this.noNativeGradient !== undefined) return this.noNativeGradient;
    try {
      this.backwardSession({ onnx: this.onnx, targets: [this.logitsLayer] }, [1, ...this.inputSize]);
      return undefined;
    } catch (e) {
      return (e instanceof Error ? e.message : String(e)).split('\n')[0];
    }
  }

  /** The backward graph's session for these targets at this input size (from a hidden tensor, if asked), made on first use. */
  private backwardSession(
    plan: { onnx: { bytes: Uint8Array; input: string }; targets: string[] },
    [, h, w]: readonly number[],
    from: { from?: string; maxPool?: MaxPoolGradMode; readout?: Readout; also?: string[] } = {},
  ): OrtBackward {
    const key = `${plan.targets.join('|')}@${h}x${w}${from.from ? `<${from.from}` : ''}${from.maxPool === 'smooth' ? '/smooth' : ''}${from.readout ? `:${JSON.stringify(from.readout)}+${(from.also ?? []).join('|')}` : ''}`;
    let bw = this.backward.get(key);
    if (!bw) {
      try {
        bw = OrtBackward.create(plan.onnx.bytes, { input: plan.onnx.input, targets: plan.targets, pre: this.preprocessing(), size: [h!, w!], ...from }, defaultThreads());
      } catch (e) {
        bw = e instanceof Error ? e : new Error(String(e));
      }
      this.backward.set(key, bw);
    }
    if (bw instanceof Error) throw bw;
    return bw;
  }

  /** Native gradients are off for this model from now on; the user hears why, once. */
  private noNative(e: unknown): void {
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
    if (this.noNativeGradient === undefined) this.onNote?.(`${this.descriptor.name}: gradients run on ${this.backend}, not onnxruntime (${why})`);
    this.noNativeGradient = why;
  }

  /**
   * Whether optimisation steps run the network's forward and backward on onnxruntime (featurevis/native-step.ts):
   * with `--backend onnxruntime` wherever the model has a session, with `auto` for the kinds of step measured faster
   * that way (NATIVE_BY_DEFAULT; `pixelsPerStep`: images × height × width of the step; `oneRun`: the objective is a
   * readout, so a step takes one native run), never on a tfjs backend. A step whose graph has no backward rule still
   * falls back.
   */
  nativeSteps(kind: NativeKind, pixelsPerStep: number, oneRun = true): boolean {
    if (!this.onnx || this.noNativeGradient !== undefined) return false;
    return this.choice === 'onnxruntime' || (this.choice === 'auto' && NATIVE_BY_DEFAULT[kind](this.exec instanceof LayersExecutor ? 'layers' : 'other', pixelsPerStep, oneRun));
  }

  /** The ONNX form and the tensors to fetch for `outputs` natively, or undefined where that cannot run. */
  private nativePlan(x: tf.Tensor4D, outputs: readonly string[]): { onnx: { bytes: Uint8Array; input: string }; names: string[]; targets: string[] } | undefined {
    const [, h, w] = x.shape;
    if (!this.onnx || (this.fixedInput && (this.fixedInput[0] !== h || this.fixedInput[1] !== w))) return undefined;
    const names = outputs.map((o) => this.resolveLayer(o));
    if (names.includes(PROBS)) return undefined;
    return { onnx: this.onnx, names, targets: names.map((t) => (t === LOGITS ? this.logitsLayer : t)) };
  }

  /** An onnxruntime tensor (flat, with its dims: NCHW for image tensors) as `run` gives it: logits [N, K], image tensors NHWC. Call in a tidy. */
  private fromNativeTensor(name: string, flat: tf.Tensor, dims: readonly number[]): tf.Tensor {
    const n = dims[0]!;
    if (name === LOGITS) return tf.reshape(flat, [n, flat.size / n]);
    return dims.length === 4 ? tf.transpose(tf.reshape(flat, [...dims]), [0, 2, 3, 1]) : tf.reshape(flat, [...dims]);
  }

  /** What runs forward-only work (accuracy, classify, evaluate, the screen's scoring). */
  get forwardBackend(): string {
    return this.forward ? 'onnxruntime' : this.backend;
  }

  static async load(opts: LoadOptions = {}): Promise<Classifier> {
    const descriptor = loadDescriptor(opts.model);
    const labels = loadLabels(descriptor);
    // Result files made with a model of the user's own record where it came from (see formats/producer.ts).
    if (!isBuiltIn(descriptor)) recordModelSource(descriptor.name, sourceOf(descriptor, opts.weights));
    const choice = opts.backend ?? 'auto';
    const backend = await initBackend(tfjsBackendOf(choice));
    const weights = await resolveWeights(descriptor, {
      env: opts.env ?? readEnv(),
      ...(opts.weights ? { weights: opts.weights } : {}),
      ...(opts.download !== undefined ? { download: opts.download } : {}),
      ...(opts.onDownload ? { onProgress: opts.onDownload } : {}),
    });
    // An ONNX file is read once: the tfjs executor and the onnxruntime session are both made from these bytes.
    const onnx = descriptor.format === 'onnx' ? await readFile(weights.file) : undefined;
    const built = await buildExecutor(descriptor, weights.file, onnx);
    const c = new Classifier(descriptor, labels, backend, weights, built.exec);
    c.fixedInput = built.fixedInput;
    c.choice = choice;
    c.onNote = opts.onNote;
    c.noJvp = built.noJvp;
    c.checkOutputs();
    c.forward = await forwardSession(c, built.exec, choice, opts.env ?? readEnv(), built.onnx);
    setForwardEngine(c.forward ? 'onnxruntime' : undefined);
    return c;
  }

  get inputSize(): [number, number] {
    return this.descriptor.input.size;
  }

  /** How images are decoded for this model (resize and crop to its input). */
  get preprocess(): Preprocess {
    return { size: this.descriptor.input.size, resizeShorter: this.descriptor.input.resizeShorter };
  }

  get layers(): readonly LayerInfo[] {
    return this.exec.layers;
  }

  /** A layer name or one of the descriptor's aliases; a one-line error with the closest names otherwise. */
  resolveLayer(name: string): string {
    if (name === LOGITS || name === PROBS) return name;
    const alias = this.descriptor.layers.aliases[name];
    if (alias) return alias;
    if (this.exec.has(name)) return name;
    const candidates = [...this.exec.layers.map((l) => l.name), ...Object.keys(this.descriptor.layers.aliases)];
    const sugg = closest(name, candidates, 3);
    throw new PatchAtlasError(
      'UNKNOWN_LAYER',
      `model "${this.descriptor.name}" has no layer "${name}"`,
      sugg.length ? `closest: ${sugg.join(', ')} (all: \`patch-atlas models info ${this.modelRef}\`)` : `list them with \`patch-atlas models info ${this.modelRef}\``,
    );
  }

  layerInfo(name: string): LayerInfo {
    const resolved = this.resolveLayer(name);
    return this.exec.layers.find((l) => l.name === resolved) ?? { name: resolved, type: 'output', shape: [this.labels.outputs] };
  }

  /** `toModelInput` as per-channel scale and offset (RGB order) and a channel reversal, for onnxruntime's sessions. */
  preprocessing(): Preprocessing {
    const i = this.descriptor.input;
    const scale = (i.mean && i.std ? i.std.map((s) => 1 / s) : [0, 1, 2].map(() => i.range![1] - i.range![0])) as [number, number, number];
    const offset = (i.mean && i.std ? i.mean.map((m, c) => -m / i.std![c]!) : [0, 1, 2].map(() => i.range![0])) as [number, number, number];
    return { scale, offset, reverse: i.channelOrder === 'bgr' };
  }

  /** `x` resampled (bilinear, differentiable) to the model's only input size where it has one and `x` differs; else `x`. */
  atInputSize(x: tf.Tensor4D): tf.Tensor4D {
    const fixed = this.fixedInput;
    return fixed && (x.shape[1] !== fixed[0] || x.shape[2] !== fixed[1]) ? tf.image.resizeBilinear(x, fixed) : x;
  }

  /**
   * [0,1] RGB pixels -> the model's input values (differentiable). A graph whose input has a fixed size gets the
   * image resampled to it (bilinear, differentiable), so icons and patches of any size work on it.
   */
  toModelInput(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const i = this.descriptor.input;
      let y = this.atInputSize(x);
      if (i.mean && i.std) y = tf.div(tf.sub(y, i.mean), i.std);
      else if (i.range && (i.range[0] !== 0 || i.range[1] !== 1)) y = tf.add(tf.mul(y, i.range[1] - i.range[0]), i.range[0]);
      if (i.channelOrder === 'bgr') y = tf.reverse(y, -1);
      return y;
    });
  }

  /**
   * Outputs of named layers (or 'logits' / 'probs') for [0,1] images. `feeds` replace layers'
   * outputs with given tensors, so the part of the model after them runs on those values.
   */
  run(x: tf.Tensor4D, outputs: readonly string[], feeds: ReadonlyMap<string, tf.Tensor> = new Map()): tf.Tensor[] {
    return tf.tidy(() => {
      const { fetch, pick } = this.outputPlan(outputs);
      const got = this.exec.run(new Map([[INPUT, this.toModelInput(x)], ...feeds]), fetch);
      return pick(got);
    });
  }

  /**
   * Forward-mode product: the named outputs and their derivatives along `tangent`, a perturbation of
   * `layer`'s output whose primal value is `h` (tangent batch = image batch × groups, image-major).
   * Undefined when the model (a graph model, or a layer without a forward-mode rule) does not support it.
   */
  jvp(x: tf.Tensor4D, layer: string, h: tf.Tensor, tangent: tf.Tensor, groups: number, outputs: readonly string[] = [LOGITS]): { primal: tf.Tensor[]; tangent: tf.Tensor[] } | undefined {
    const exec = this.exec;
    if (!exec.jvp || outputs.some((o) => this.resolveLayer(o) === PROBS)) return undefined;
    const name = this.resolveLayer(layer);
    const { fetch, pick } = this.outputPlan(outputs);
    const both = tf.tidy(() => {
      const r = exec.jvp!(new Map([[INPUT, this.toModelInput(x)], [name, h]]), name, tangent, groups, fetch);
      return r ? [...pick(r.primal), ...pick(r.tangent)] : [];
    });
    if (both.length === 0) return undefined;
    return { primal: both.slice(0, outputs.length), tangent: both.slice(outputs.length) };
  }

  /** Whether one forward-mode pass reaches the logits from `layer` (probed on a blank image): all-class attribution. */
  forwardModeAt(layer: string): boolean {
    const probe = tf.zeros([1, ...this.inputSize, 3]) as tf.Tensor4D;
    const h = this.activation(probe, layer);
    const r = this.jvp(probe, layer, h, tf.zerosLike(h), 1);
    tf.dispose([probe, h, ...(r ? [...r.primal, ...r.tangent] : [])]);
    return r !== undefined;
  }

  /** Which executor outputs to fetch for the requested names, and how to turn them back into the requested outputs. */
  private outputPlan(outputs: readonly string[]): { fetch: string[]; pick: (got: tf.Tensor[]) => tf.Tensor[] } {
    const names = outputs.map((o) => this.resolveLayer(o));
    const logitsLayer = this.logitsLayer;
    const fetch = [...new Set(names.map((n) => (n === LOGITS || n === PROBS ? logitsLayer : n)))];
    const pick = (got: tf.Tensor[]) => {
      const byName = new Map(fetch.map((n, i) => [n, got[i]!]));
      const logits = () => {
        const t = byName.get(logitsLayer)!;
        return t.reshape([t.shape[0]!, t.size / t.shape[0]!]);
      };
      return names.map((n) => (n === LOGITS ? logits() : n === PROBS ? tf.softmax(logits()) : byName.get(n)!));
    };
    return { fetch, pick };
  }

  /**
   * The tensor holding the logits: the descriptor's, else the model's output. An ONNX export that outputs only
   * probabilities (the ONNX model zoo's GoogLeNet) has its logits at the input of the final Softmax, which is
   * used when the descriptor's name is not in the file.
   */
  get logitsLayer(): string {
    const named = this.descriptor.output.logits;
    if (named && this.exec.has(named)) return named;
    const pre = this.exec instanceof OnnxExecutor ? this.exec.preSoftmax() : undefined;
    return pre ?? named ?? this.exec.outputName;
  }

  logits(x: tf.Tensor4D): tf.Tensor2D {
    return this.run(x, [LOGITS])[0] as tf.Tensor2D;
  }

  /**
   * Logits for forward-only work: on onnxruntime when the classifier has a session, else as `logits`. Not
   * differentiable; the caller owns (and disposes) both x and the result.
   */
  async forwardLogits(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    if (!this.forward) return this.logits(x);
    // The session preprocesses (see preprocessing()): the pixels go in as they are.
    const [out] = await this.forward.run(x.dataSync() as Float32Array, x.shape);
    const n = x.shape[0];
    return tf.tensor2d(out!, [n, out!.length / n]);
  }

  probabilities(x: tf.Tensor4D): tf.Tensor2D {
    return this.run(x, [PROBS])[0] as tf.Tensor2D;
  }

  activation(x: tf.Tensor4D, layer: string): tf.Tensor {
    return this.run(x, [layer])[0]!;
  }

  /** d objective / d pixels, where objective is a scalar function of the named outputs. */
  inputGradient(
    x: tf.Tensor4D,
    outputs: readonly string[],
    objective: (outs: tf.Tensor[]) => tf.Scalar,
    opts: GradientOptions = {},
  ): { value: number; grad: tf.Tensor4D } {
    return withMaxPoolGrad(opts.maxPool ?? 'exact', () => {
      const { value, grad } = tf.valueAndGrad((img: tf.Tensor4D) => objective(this.run(img, outputs)))(x);
      const v = value.dataSync()[0]!;
      value.dispose();
      return { value: v, grad: grad as tf.Tensor4D };
    });
  }

  /**
   * The activation of `layer` and d objective / d activation, where the objective is a scalar function
   * of outputs computed downstream of it. The forward pass up to `layer` runs once, off the tape.
   */
  layerGradient(
    x: tf.Tensor4D,
    layer: string,
    outputs: readonly string[],
    objective: (outs: tf.Tensor[]) => tf.Scalar,
    opts: GradientOptions = {},
  ): { activation: tf.Tensor; grad: tf.Tensor } {
    const name = this.resolveLayer(layer);
    const activation = this.activation(x, name);
    const grad = withMaxPoolGrad(opts.maxPool ?? 'exact', () =>
      tf.tidy(() => tf.grad((h: tf.Tensor) => objective(this.run(x, outputs, new Map([[name, h]]))))(activation)),
    );
    return { activation, grad };
  }

  /**
   * The final layer's weight vector into each class's logit: [classes × D] row-major, in label-column
   * order (background slot dropped). Undefined when the executor cannot read the logits layer's kernel
   * (graph models).
   */
  logitWeights(): { weights: Float32Array; classes: number; dim: number } | undefined {
    const kernel = this.exec.weightsOf?.(this.logitsLayer)?.[0];
    const K = this.labels.outputs;
    if (!kernel || kernel.shape.at(-1) !== K) return undefined;
    const D = kernel.values.length / K;
    const classes = K - this.labels.offset;
    const weights = new Float32Array(classes * D);
    // The kernel is [..., D, K] (a dense layer or a 1×1 convolution): column k holds class k's weights.
    for (let k = 0; k < classes; k++) for (let d = 0; d < D; d++) weights[k * D + d] = kernel.values[d * K + k + this.labels.offset]!;
    return { weights, classes, dim: D };
  }

  /** Top-k classes per image from a [N, outputs] probability matrix (background slot excluded). */
  topK(probs: tf.Tensor2D, k: number): Prediction[][] {
    const [n, m] = probs.shape;
    const data = probs.dataSync();
    const out: Prediction[][] = [];
    for (let i = 0; i < n; i++) {
      const idx: number[] = [];
      for (let j = this.labels.offset; j < m; j++) idx.push(j);
      idx.sort((a, b) => data[i * m + b]! - data[i * m + a]!);
      out.push(idx.slice(0, k).map((j) => ({ class: this.labels.atOutput(j)!, probability: data[i * m + j]! })));
    }
    return out;
  }

  /** How commands name this model: the built-in name, else the descriptor's path. */
  get modelRef(): string {
    return isBuiltIn(this.descriptor) ? this.descriptor.name : this.descriptor.path;
  }

  /**
   * Where the descriptor's logits tensor is not in the model and the final Softmax's input stands in for it (the ONNX
   * model zoo's GoogLeNet names its tensors differently): says so, for `models check`.
   */
  get logitsNote(): string | undefined {
    const named = this.descriptor.output.logits;
    return named && !this.exec.has(named) ? `"output.logits" "${named}" is not in the model: the input of its final Softmax, "${this.logitsLayer}", is used` : undefined;
  }

  /** Fails early when the logits layer is not in the model or the label set does not match its output width. */
  private checkOutputs(): void {
    const named = this.descriptor.output.logits;
    if (named && !this.exec.has(named) && this.logitsLayer === named) {
      const near = closest(named, this.exec.layers.map((l) => l.name), 3);
      throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${this.descriptor.path}: "output.logits" "${named}" is not a layer of the model`, near.length ? `closest: ${near.join(', ')} (all: \`patch-atlas models info ${this.modelRef}\`)` : `list them with \`patch-atlas models info ${this.modelRef}\``);
    }
    const probe = tf.zeros([1, ...this.inputSize, 3]) as tf.Tensor4D;
    try {
      if (this.exec instanceof GraphExecutor || this.exec instanceof OnnxExecutor) probeShapes(this.exec, this.toModelInput(probe));
      const logits = this.logits(probe);
      const width = logits.shape[1];
      logits.dispose();
      if (width !== this.labels.outputs) {
        throw new PatchAtlasError(
          'BAD_DESCRIPTOR',
          `model "${this.descriptor.name}" outputs ${width} values but its label set "${this.descriptor.labels.set}" with offset ${this.labels.offset} describes ${this.labels.outputs}`,
          width === this.labels.size + 1 ? 'set "labels": {"offset": 1} for a model with a background class' : `check ${this.descriptor.path}`,
        );
      }
    } finally {
      probe.dispose();
    }
  }

  dispose(): void {
    this.exec.dispose();
    this.forward?.dispose();
    for (const s of [...this.backward.values(), ...this.activationSessions.values()]) if (!(s instanceof Error)) s.dispose();
  }
}

/**
 * onnxruntime for forward-only work: always for `onnxruntime`, where possible for `auto`. ONNX models go as they
 * are; tfjs layers models are exported to ONNX first (cached under PATCH_ATLAS_CACHE by the weights' hash).
 */
async function forwardSession(c: Classifier, exec: Executor, choice: EngineChoice, env: Env, onnx: Uint8Array | undefined): Promise<OrtForward | undefined> {
  if (choice !== 'onnxruntime' && choice !== 'auto') return undefined;
  const d = c.descriptor;
  let model: { bytes: Uint8Array; input: string } | undefined;
  try {
    if (exec instanceof OnnxExecutor && onnx) model = { bytes: onnx, input: exec.summary.input.name };
    else if (exec instanceof LayersExecutor) model = await exportedOnnx(exec, c, env);
  } catch (e) {
    if (choice === 'auto' && e instanceof ExportUnsupported) return undefined;
    if (e instanceof ExportUnsupported) throw new PatchAtlasError('BAD_FLAG', `--backend onnxruntime: model "${d.name}" cannot be written as ONNX (${e.message})`, 'use --backend wasm (or auto)');
    throw e;
  }
  if (!model) {
    if (choice === 'auto') return undefined;
    throw new PatchAtlasError('BAD_FLAG', `--backend onnxruntime: model "${d.name}" is a tfjs ${d.format} model that cannot be written as ONNX${c.noJvp ? ` (${c.noJvp})` : ''}`, 'use --backend wasm (or auto)');
  }
  let session: OrtForward | undefined;
  try {
    session = OrtForward.create(model.bytes, model.input, [c.logitsLayer], c.preprocessing());
    if (session) c.onnx = model;
  } catch (e) {
    if (choice === 'auto' && e instanceof EngineError) return undefined;
    throw e;
  }
  if (!session && choice === 'onnxruntime') throw new PatchAtlasError('BACKEND_MISSING', 'onnxruntime-node is not installed', 'run `npm install onnxruntime-node`, or use --backend wasm');
  return session;
}

/** The layers model as ONNX, from the cache when the same weights were exported before (never beside the weights). */
async function exportedOnnx(exec: LayersExecutor, c: Classifier, env: Env): Promise<{ bytes: Uint8Array; input: string }> {
  const hashes = await hashFiles(await weightFiles(c.descriptor, c.weights.file));
  const key = createHash('sha256').update(JSON.stringify([EXPORT_VERSION, Object.entries(hashes).sort()])).digest('hex');
  const path = join(env.cacheDir, 'onnx', `${key.slice(0, 32)}.onnx`);
  try {
    return { bytes: await readFile(path), input: 'input' };
  } catch {
    const r = exec.toOnnx();
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, r.bytes);
    return r;
  }
}

/** What runs a model: its executor, the ONNX bytes behind it (if any), and what the load found out on the way. */
interface Built {
  exec: Executor;
  onnx?: Uint8Array;
  /** [height, width] when the model only takes that input size (a tfjs graph with a fixed input). */
  fixedInput?: [number, number];
  /** Why the model has no forward-mode attribution (a graph operator with no ONNX rule here). */
  noJvp?: string;
}

async function buildExecutor(d: ModelDescriptor, file: string, onnx: Uint8Array | undefined): Promise<Built> {
  if (onnx) return { exec: buildOnnx(d, file, onnx), onnx };
  const modelJson = file;
  const artifacts = await readArtifacts(modelJson);
  const handler = { load: async () => artifacts };
  checkFormat(d, modelJson, artifacts);
  try {
    if (d.format === 'layers') {
      const model = await tf.loadLayersModel(handler);
      return { exec: new LayersExecutor(model) };
    }
    // A graph model runs as ONNX when every operator has a rule (forward-mode attribution, fused kernels,
    // onnxruntime); otherwise on tfjs's own GraphModel, with gradients by reverse mode only.
    const nodes = (artifacts.modelTopology as { node?: GraphNode[] }).node ?? [];
    const inputs = nodes.filter((n) => n.op === 'Placeholder').map((n) => n.name);
    if (d.input.node && !inputs.includes(d.input.node))
      throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${d.path}: "input.node" "${d.input.node}" is not an input of the graph`, `its inputs: ${inputs.join(', ') || 'none'}`);
    if (!d.input.node && inputs.length > 1) throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${d.path}: the graph has several inputs (${inputs.join(', ')})`, 'name the image input in "input.node"');
    const converted = graphAsOnnx(nodes, artifacts, d.input.node);
    if (converted.ok) return { exec: buildOnnx(d, file, converted.value.bytes, converted.value.input), onnx: converted.value.bytes, ...(converted.value.inputSize ? { fixedInput: converted.value.inputSize } : {}) };
    const model = await tf.loadGraphModel(handler);
    const exec = new GraphExecutor(model, nodes, d.input.node);
    return { exec, noJvp: converted.why, ...(exec.inputSize ? { fixedInput: exec.inputSize } : {}) };
  } catch (e) {
    if (e instanceof PatchAtlasError) throw e;
    throw new PatchAtlasError('WEIGHTS_INVALID', `cannot load ${modelJson} as a tfjs ${d.format} model: ${clip((e as Error).message.split('\n')[0]!)}`, `check "format" in ${d.path}`);
  }
}

/** The descriptor's format against what model.json holds (a layers topology, or graph nodes), before tfjs reads it. */
function checkFormat(d: ModelDescriptor, modelJson: string, artifacts: tf.io.ModelArtifacts): void {
  const topo = artifacts.modelTopology as Record<string, unknown> | undefined;
  const declared = (artifacts as { format?: string }).format;
  const holds = Array.isArray(topo?.node) || declared === 'graph-model' ? 'graph' : topo && ('model_config' in topo || 'class_name' in topo || declared === 'layers-model') ? 'layers' : undefined;
  if (holds && holds !== d.format) throw new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${d.path}: "format" is "${d.format}" but ${modelJson} holds a tfjs ${holds} model`, `set "format": "${holds}"`);
}

/** A message cut to one readable line (tfjs puts whole configs into some). */
function clip(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function graphAsOnnx(nodes: GraphNode[], artifacts: tf.io.ModelArtifacts, inputNode: string | undefined): { ok: true; value: GraphConversion } | { ok: false; why: string } {
  const weights = tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs ?? []);
  try {
    return { ok: true, value: graphToOnnx(nodes, weights, inputNode) };
  } catch (e) {
    if (e instanceof ExportUnsupported) return { ok: false, why: e.message };
    throw e;
  } finally {
    tf.dispose(Object.values(weights));
  }
}

function buildOnnx(d: ModelDescriptor, file: string, bytes: Uint8Array, input = d.input.node): Executor {
  try {
    return OnnxExecutor.fromBytes(bytes, { external: externalDataIn(dirname(file)), ...(input ? { input } : {}) });
  } catch (e) {
    if (e instanceof EngineError) throw new PatchAtlasError('WEIGHTS_INVALID', `${file}: ${e.message}`);
    throw e;
  }
}

/** A tensor as `run` gives it (NHWC for image tensors) as onnxruntime takes it: flat, NCHW for image tensors. */
function toNative(t: tf.Tensor): { data: Float32Array; dims: number[] } {
  if (t.rank !== 4) return { data: t.dataSync() as Float32Array, dims: t.shape };
  const nchw = tf.transpose(t, [0, 3, 1, 2]);
  const data = nchw.dataSync() as Float32Array;
  nchw.dispose();
  return { data, dims: nchw.shape };
}
