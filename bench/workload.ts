/**
 * One benchmark workload, run in its own process so its peak memory (maxRSS) is its own.
 * Usage: node dist/bench/workload.js <name> '<json args>'  -> prints one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { collect } from '../src/recipes/collect.js';
import { decodedBatches, type DecodedBatch } from '../src/data/batches.js';
import { toFloatBatch } from '../src/data/pixels.js';
import { evaluatePatches, noisePatch } from '../src/evaluate/evaluate-patches.js';
import { gridPlacements } from '../src/patch/placement.js';
import { hashImageList, RunWriter, toHalf, type ImageRecord } from '../src/formats/run/index.js';
import { buildAtlas } from '../src/recipes/atlas.js';
import { umap as nativeUmap } from '../src/atlas/umap/index.js';
import type { KnnMethod } from '../src/atlas/umap/neighbours.js';
import { readEnv } from '../src/config.js';
import { openDataset } from '../src/data/dataset.js';
import { Classifier } from '../src/model/classifier.js';
import { mulberry32 } from '../src/util/random.js';
import { batch as batchObjective, channel, directionCossimBatch } from '../src/featurevis/objectives.js';
import { optimisePatch } from '../src/patch/optimise.js';
import { image } from '../src/featurevis/param/index.js';
import { render } from '../src/featurevis/render.js';
import { standardTransforms } from '../src/featurevis/transforms.js';
import { initBackend, type EngineChoice } from '../src/engine/backend.js';
import { attributePoints } from '../src/attribution/attribute.js';
import { wasmThreads } from '../src/engine/wasm-threads.js';
import { writeAsGraph } from './graph-model.js';
import { nativeStepGrads } from '../src/featurevis/native-step.js';
import { median as medianOf } from './stats.js';

type Args = Record<string, number | string>;
const workloads: Record<string, (a: Args) => Promise<Record<string, number | string>>> = {
  /** Forward passes on random input (no decoding): images/s. */
  async forward(a) {
    const c = await Classifier.load({ model: String(a.model ?? 'mobilenet_v1_0.75'), backend: (a.backend ?? 'wasm') as EngineChoice });
    const b = Number(a.batch ?? 8);
    const x = tf.randomUniform([b, ...c.inputSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    // Not tf.tidy(() => ….dataSync()): tidy walks a returned typed array element by element.
    const run = async () => {
      const l = await c.forwardLogits(x);
      l.dataSync();
      l.dispose();
    };
    const s = await timeAsync(run, Number(a.reps ?? 10));
    return { images_per_s: b / s, batch: b, threads: wasmThreads(), engine: c.forwardBackend };
  },
  /** Attribution to all classes at one position per image (collect's step without decoding or the store). */
  async attribution(a) {
    const c = await Classifier.load({ model: String(a.model ?? 'mobilenet_v1_0.75'), backend: 'wasm' });
    const b = Number(a.batch ?? 8);
    const layer = String(a.layer ?? c.descriptor.layers.default);
    const x = tf.randomUniform([b, ...c.inputSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const [, H, W] = c.layerInfo(layer).shape as number[];
    const positions = Array.from({ length: b }, (_, i) => [[(i * 3) % H!, (i * 5) % W!] as [number, number]]);
    let method = '';
    const s = timeIt(() => (method = attributePoints(c, x, layer, positions).method), Number(a.reps ?? 3));
    return { images_per_s: b / s, batch: b, method };
  },
  /**
   * Pasting and scoring (the evaluation block) against plain forward passes of the same model, batch and
   * images, interleaved in one process: sample images decoded once, `patches` noise patches at 4 corners ×
   * 3 sizes. Images through the model per second, clean and patched.
   */
  async evaluate(a) {
    const env = readEnv();
    if (!env.dataDir) throw new Error('set PATCH_ATLAS_DATA (e.g. ../shared/data)');
    const c = a.format === 'graph' ? await graphMobileNet() : await Classifier.load();
    const all = await openDataset(join(env.dataDir, 'imagenet-sample'), c.labels);
    const n = Number(a.images ?? 32);
    const b = Number(a.batch ?? 16);
    const items = all.items.slice(0, n);
    const decoded: DecodedBatch[] = [];
    for await (const d of decodedBatches(items, { pre: c.preprocess, batchSize: b })) decoded.push(d);
    const patches = Array.from({ length: Number(a.patches ?? 4) }, (_, k) => ({ ...noisePatch(64, k), name: `p${k}` }));
    const placements = gridPlacements(c.inputSize, [0.2, 0.3, 0.4], ['top-left', 'top-right', 'bottom-left', 'bottom-right']);
    const target = c.labels.resolve('baseball'); // not among the first sample images' classes
    const passes = n * (1 + patches.length * placements.length);
    const evalRun = async () => {
      await evaluatePatches({ classifier: c, images: (async function* () { yield* decoded; })(), count: n, patches, placements, target });
    };
    const x = tf.tensor4d(toFloatBatch(decoded.flatMap((d) => d.images).slice(0, b)), [b, ...c.inputSize, 3]);
    // The same engine the evaluation uses for its forward passes (onnxruntime where installed).
    const fwd = async () => {
      const l = await c.forwardLogits(x);
      l.dataSync();
      l.dispose();
    };
    const reps = Number(a.reps ?? 3);
    const evalTimes: number[] = [];
    const fwdTimes: number[] = [];
    await evalRun(); // warm up
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await evalRun();
      evalTimes.push((performance.now() - t0) / 1000);
      fwdTimes.push(await timeAsync(fwd, Math.max(1, Math.round(passes / b / 4))));
    }
    const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
    x.dispose();
    return { images_per_s: passes / med(evalTimes), forward_images_per_s: b / med(fwdTimes), passes, batch: b, engine: c.forwardBackend };
  },
  /** `collect` end to end (decode + forward + attribution to all classes + store) on sample images. */
  async collect(a) {
    const env = readEnv();
    if (!env.dataDir) throw new Error('set PATCH_ATLAS_DATA (e.g. ../shared/data)');
    const c = a.format === 'graph' ? await graphMobileNet() : await Classifier.load();
    const all = await openDataset(join(env.dataDir, 'imagenet-sample'), c.labels);
    const n = Number(a.images ?? 200);
    const ds = { ...all, items: all.items.slice(0, n) };
    const out = mkdtempSync(join(tmpdir(), 'pa-bench-run-'));
    const t0 = performance.now();
    const r = await collect(c, ds, { layer: String(a.layer ?? 'conv_pw_11_relu'), out, positions: a.positions === 'all' ? 'all' : Number(a.positions ?? 1), seed: 0, shard: null });
    const s = (performance.now() - t0) / 1000;
    rmSync(out, { recursive: true, force: true });
    return { images_per_s: r.processed / s, points: r.manifest.points, seconds: s, method: r.method, engine: c.forwardBackend };
  },
  /**
   * Gradients on random input (MobileNet v1 0.75 by default): d logit / d pixels, and d logit / d hidden layer
   * (the attribution step of `collect`), with plain forward passes interleaved in the same process as the yardstick.
   * Medians over `reps` rounds; ms per batch, images/s, and cost in forward passes.
   */
  async gradient(a) {
    const c = await Classifier.load();
    const b = Number(a.batch ?? 8);
    const reps = Number(a.reps ?? 5);
    const layer = String(a.layer ?? 'conv_pw_11_relu');
    const logit = Number(a.logit ?? 147);
    const x = tf.randomUniform([b, ...c.inputSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const objective = ([l]: tf.Tensor[]) => tf.sum(tf.slice(l!, [0, logit], [-1, 1])) as tf.Scalar;
    const runs: Record<string, () => void> = {
      forward: () => {
        const l = c.logits(x);
        l.dataSync();
        l.dispose();
      },
      input: () => {
        const { grad } = c.inputGradient(x, ['logits'], objective);
        grad.dataSync();
        grad.dispose();
      },
      layer: () => {
        const { activation, grad } = c.layerGradient(x, layer, ['logits'], objective);
        grad.dataSync();
        tf.dispose([activation, grad]);
      },
    };
    // The same input gradient from a backward graph on onnxruntime, in the same rounds.
    const seed = tf.tidy(() => tf.oneHot(tf.fill([b], logit, 'int32') as tf.Tensor1D, c.labels.outputs).toFloat());
    const seedCount = tf.memory().numTensors;
    runs.native = () => {
      const r = c.nativeGradient(x, ['logits'], [seed]);
      if (!r) throw new Error(`no native gradient: ${c.noNativeGradient}`);
      r.grad.dataSync();
      tf.dispose([r.grad, ...r.values]);
    };
    const names = Object.keys(runs);
    const times = new Map(names.map((n) => [n, [] as number[]]));
    const before = tf.memory().numTensors;
    for (const n of names) runs[n]!(); // warm-up (kernel setup, XNNPACK operators)
    for (let r = 0; r < reps; r++) {
      for (const n of names) {
        const t0 = performance.now();
        runs[n]!();
        times.get(n)!.push(performance.now() - t0);
      }
    }
    if (tf.memory().numTensors !== before || before !== seedCount) throw new Error(`gradient workload leaked ${tf.memory().numTensors - seedCount} tensors`);
    const ms = (n: string) => median(times.get(n)!);
    // Per-round ratios (each gradient against the forward pass of the same round) are steadier under load.
    const vsForward = (n: string, by = 'forward') => median(times.get(n)!.map((t, i) => t / times.get(by)![i]!));
    return {
      batch: b,
      layer,
      forward_ms: ms('forward'),
      input_grad_ms: ms('input'),
      layer_grad_ms: ms('layer'),
      forward_images_per_s: (1000 * b) / ms('forward'),
      input_grad_images_per_s: (1000 * b) / ms('input'),
      layer_grad_images_per_s: (1000 * b) / ms('layer'),
      input_grad_vs_forward: vsForward('input'),
      layer_grad_vs_forward: vsForward('layer'),
      native_input_grad_images_per_s: (1000 * b) / ms('native'),
      input_grad_vs_native: vsForward('input', 'native'),
    };
  },
  /** One feature-visualisation optimisation step (Fourier param + standard transforms + Adam), ms per icon. */
  async featvis(a) {
    const { c, size, batch, steps, objective } = await featvisSetup(a, 'wasm', 1);
    // bare: the peer's step (Adam on raw pixels, no transforms); else lucid's (Fourier, decorrelation, sigmoid,
    // the article's transforms).
    const bare = a.bare === 1 || a.bare === '1';
    const param = (seed: number | readonly number[]) => (bare ? image(batch, size, size, { seed, fft: false, decorrelate: false, sigmoid: false }) : image(batch, size, size, { seed }));
    const opts = { classifier: c, objective, param, transforms: bare ? [] : standardTransforms() };
    await render({ ...opts, steps: 2 }); // warm-up: kernels, DFT matrices
    // The median step, as the PyTorch peer reports its steps (the first also sets the parameterisation up).
    const times: number[] = [];
    let last = performance.now();
    await render({ ...opts, steps, onStep: () => times.push(-last + (last = performance.now())) });
    const ms = median(times);
    return { ms_per_step: ms, ms_per_icon: ms / batch, size, batch, bare: bare ? 1 : 0 };
  },
  /**
   * The same step chained across engines (featurevis/native-step.ts): the tape for the parameterisation and
   * transforms, onnxruntime for the network; ms per icon, with the split, and the all-tfjs step in the same process.
   */
  async featvisNative(a) {
    const { c, size, batch, steps, objective } = await featvisSetup(a, 'auto', 16);
    const param = image(batch, size, size, { seed: 1 });
    const transform = standardTransforms();
    const rng = mulberry32(3);
    const optimizer = tf.train.adam(0.05);
    const step = async (timed?: { native: number; tape: number }) => {
      const seed = Math.floor(rng() * 2 ** 32);
      const img = () => transform(param.image(), mulberry32(seed));
      const r = nativeStepGrads(c, objective, img, param.variables, { time: timed });
      if (!r) throw new Error(`no native gradients: ${c.noNativeGradient}`);
      optimizer.applyGradients(Object.entries(r.grads).map(([name, tensor]) => ({ name, tensor })));
      tf.dispose(Object.values(r.grads));
    };
    for (let i = 0; i < 2; i++) await step();
    // Medians of the steps, as the PyTorch peer reports its steps (and of their split between the engines).
    const timed: Array<{ ms: number; native: number; tape: number }> = [];
    for (let i = 0; i < steps; i++) {
      const t = { native: 0, tape: 0 };
      const t0 = performance.now();
      await step(t);
      timed.push({ ms: performance.now() - t0, ...t });
    }
    const mid = (k: 'ms' | 'native' | 'tape') => median(timed.map((t) => t[k]));
    // The native part's wasm equivalent: the objective's activations and their gradient w.r.t. the image, on the tape.
    const x = tf.tidy(() => transform(param.image(), mulberry32(4)));
    const wasmNetwork = () => {
      const g = tf.grad((img: tf.Tensor) => {
        const outs = c.run(img as tf.Tensor4D, objective.layers);
        return tf.sum(objective.perItem(new Map(objective.layers.map((l, k) => [l, outs[k]!]))));
      })(x);
      g.dataSync();
      g.dispose();
    };
    wasmNetwork();
    // The two sides alternate, a step's native part then the wasm work, and the ratio is the median of the rounds'
    // ratios. This 2-core VM has slow spells lasting seconds (one process's native run: median 46.7 ms for 20 runs,
    // then 61.1 ms for the next 20); timed one side after the other, a spell could fall on one side only.
    const rounds: Array<{ native: number; wasm: number }> = [];
    for (let i = 0; i < steps; i++) {
      const t = { native: 0, tape: 0 };
      await step(t);
      const s = performance.now();
      wasmNetwork();
      rounds.push({ native: t.native, wasm: performance.now() - s });
    }
    // The forward pass alone on each engine: how far native kernels are ahead before any backward work.
    const forwardMs = (f: () => tf.Tensor[]) => {
      // A fresh session's first runs are slow (onnxruntime sizes its buffers): warm up as the steps above were.
      for (let i = 0; i < 3; i++) tf.dispose(f());
      const t = performance.now();
      for (let i = 0; i < steps; i++) {
        const outs = f();
        outs.forEach((o) => o.dataSync());
        tf.dispose(outs);
      }
      return (performance.now() - t) / steps;
    };
    const nativeForwardMs = forwardMs(() => c.nativeNet(x as tf.Tensor4D, objective.layers));
    const wasmForwardMs = forwardMs(() => c.run(x as tf.Tensor4D, objective.layers));
    tf.dispose([x]);
    param.dispose();
    optimizer.dispose();
    return {
      ms_per_step: mid('ms'),
      ms_per_icon: mid('ms') / batch,
      native_ms_per_icon: mid('native') / batch,
      tape_ms_per_icon: mid('tape') / batch,
      round_native_ms_per_icon: median(rounds.map((r) => r.native)) / batch,
      round_wasm_ms_per_icon: median(rounds.map((r) => r.wasm)) / batch,
      native_vs_wasm: median(rounds.map((r) => r.wasm / r.native)),
      native_forward_ms_per_icon: nativeForwardMs / batch,
      wasm_forward_ms_per_icon: wasmForwardMs / batch,
      size,
      batch,
    };
  },
  /**
   * What `--backend auto` decides between for optimisation steps (model/classifier.ts NATIVE_BY_DEFAULT): an EOT
   * patch step (defaults: 64 px patch, 8 images at the model's size) and an icon step (96 px, batch 8, cossim
   * directions at conv_pw_11_relu), each all on the tape and with the network on onnxruntime, alternating, ms/step.
   */
  async optimiseSteps(a) {
    const c = a.format === 'graph' ? await graphMobileNet() : await Classifier.load({ model: String(a.model ?? 'mobilenet_v1_0.75'), backend: 'auto' });
    const [h, w] = c.inputSize;
    const r = mulberry32(1);
    const images = Float32Array.from({ length: 16 * h * w * 3 }, () => r());
    const target = c.labels.resolve('n01491361');
    const layer = c.resolveLayer(String(a.layer ?? c.descriptor.layers.default));
    const dims = Number(c.layerInfo(layer).shape?.at(-1) ?? 0);
    const dirs = Array.from({ length: 8 }, () => Array.from({ length: dims }, () => r() - 0.3));
    const steps = Number(a.steps ?? 5);
    const times: Record<string, number[]> = { patch_tape: [], patch_native: [], icon_tape: [], icon_native: [] };
    const icons = (native: boolean, n: number) => render({ classifier: c, objective: directionCossimBatch(layer, dirs, 3), param: (seed) => image(8, 96, 96, { seed }), transforms: standardTransforms(), steps: n, seed: 1, native });
    for (const native of [false, true]) {
      await optimisePatch({ classifier: c, images, target, steps: 1, native });
      await icons(native, 1);
    }
    for (let rep = 0; rep < 2; rep++) {
      for (const native of [false, true]) {
        const k = native ? 'native' : 'tape';
        let t0 = performance.now();
        await optimisePatch({ classifier: c, images, target, steps, native });
        times[`patch_${k}`]!.push((performance.now() - t0) / steps);
        t0 = performance.now();
        await icons(native, steps);
        times[`icon_${k}`]!.push((performance.now() - t0) / steps);
      }
    }
    return Object.fromEntries(Object.entries(times).map(([k, v]) => [`${k}_ms`, Math.min(...v)]));
  },
  /** The engine ceiling: one fused 1×1 convolution (8 × 28 × 28 × 384 → 384, ReLU6), GFLOPS. */
  async pointwise() {
    await initBackend('wasm');
    const x = tf.randomUniform([8, 28, 28, 384], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomUniform([1, 1, 384, 384], -0.1, 0.1, 'float32', 2) as tf.Tensor4D;
    const s = timeIt(() => {
      const y = tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'valid', activation: 'relu6' });
      y.dataSync();
      y.dispose();
    }, 20);
    return { ms: s * 1000, gflops: (2 * 8 * 28 * 28 * 384 * 384) / s / 1e9, threads: wasmThreads() };
  },
  /**
   * UMAP alone on the peer's data: N random uniform points in `dims` dimensions, 15 neighbours, min_dist 0.1.
   * `knn` ('auto' | 'exact' | 'approximate') picks the k-NN search; the phase times and the method used come back.
   */
  async umap(a) {
    const n = Number(a.points ?? 10000);
    const dims = Number(a.dims ?? 512);
    const rand = mulberry32(12345);
    const x = new Float32Array(n * dims); // a loop, not Float32Array.from: 512 M values at 1,000,000 points
    for (let t = 0; t < x.length; t++) x[t] = rand();
    const phases: Record<string, number> = {};
    let method = '';
    const t0 = performance.now();
    const xy = await nativeUmap(x, dims, n, {
      nNeighbors: 15,
      minDist: 0.1,
      nComponents: 2,
      seed: 0,
      metric: 'euclidean',
      knnMethod: String(a.knn ?? 'auto') as KnnMethod,
      onKnnMethod: (m) => (method = m),
      onPhase: (p, ms) => (phases[`${p}_s`] = Math.round(ms / 100) / 10),
    });
    return { seconds: (performance.now() - t0) / 1000, points: xy.length / 2, dims, knn: method, ...phases };
  },
  /** Whole-layer atlas (UMAP + grid + cell stats) of N synthetic 384-d points in 30 clusters. */
  async atlas(a) {
    const n = Number(a.points ?? 10000);
    const run = await syntheticRun(n, 384, 30);
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const { atlas } = await buildAtlas({ run, classes: [], subsample: n, grid: 20, umap: { onPhase: (p, ms) => (phases[`${p}_s`] = Math.round(ms / 100) / 10) } });
    const s = (performance.now() - t0) / 1000;
    rmSync(run, { recursive: true, force: true });
    return { seconds: s, points: n, cells: atlas.cells.length, ...phases };
  },
};

async function timeAsync(fn: () => Promise<unknown>, reps: number): Promise<number> {
  // onnxruntime settles over its first calls (memory arena, thread pool): three warm-up calls.
  for (let i = 0; i < 3; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

/** The median of timings (bench/stats.ts), for lists that are never empty. */
const median = (xs: readonly number[]): number => medianOf(xs) ?? NaN;

function timeIt(fn: () => unknown, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / 1000 / reps;
}

/** A complete run of n points: clustered activations, random attribution over 1000 classes. */
async function syntheticRun(n: number, C: number, clusters: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pa-bench-atlas-'));
  const rand = mulberry32(7);
  const centres = Float32Array.from({ length: clusters * C }, () => rand() * 2);
  const images: ImageRecord[] = Array.from({ length: n }, (_, i) => ({ path: `img${i}.jpg`, label: null }));
  const classes = Array.from({ length: 1000 }, (_, i) => `n${String(i).padStart(8, '0')}`);
  const w = await RunWriter.open(dir, { model: 'synthetic', layer: 'l', seed: 0, positions: 1, labelSet: 'synthetic', classes, channels: C, layerShape: [14, 14, C], imageListHash: hashImageList(images) }, images, null);
  for (let s = 0; s < n; s += 5000) {
    const m = Math.min(5000, n - s);
    const acts = new Float32Array(m * C);
    const attr = new Float32Array(m * 1000);
    const meta = new Int32Array(m * 6);
    for (let p = 0; p < m; p++) {
      const k = Math.floor(rand() * clusters);
      for (let ch = 0; ch < C; ch++) acts[p * C + ch] = Math.max(0, centres[k * C + ch]! + (rand() - 0.5));
      for (let j = 0; j < 1000; j++) attr[p * 1000 + j] = rand() - 0.5;
      meta.set([s + p, 1, 1, -1, k, k], p * 6);
    }
    await w.writeChunk({ images: Array.from({ length: m }, (_, p) => s + p), skipped: [], acts, attr: toHalf(attr), meta, prob: new Float32Array(m * 2) });
  }
  await w.finalize();
  return dir;
}

const [name, json] = process.argv.slice(2);
const fn = workloads[name ?? ''];
if (!fn) {
  console.error(`unknown workload ${name}; one of ${Object.keys(workloads).join(', ')}`);
  process.exit(2);
}
const result = await fn(JSON.parse(json ?? '{}') as Args);
console.log(JSON.stringify({ name, ...result, max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) }));

/** The feature-vis workloads' model, sizes and objective: one channel of `layer` (default conv_pw_11_relu) per icon. */
async function featvisSetup(a: Args, backend: EngineChoice, defaultBatch: number) {
  const c = await Classifier.load({ model: String(a.model ?? 'mobilenet_v1_0.75'), backend });
  const batch = Number(a.batch ?? defaultBatch);
  const layer = c.resolveLayer(String(a.layer ?? 'conv_pw_11_relu'));
  const objective = batchObjective(Array.from({ length: batch }, (_, i) => channel(layer, i)));
  return { c, size: Number(a.size ?? 128), batch, steps: Number(a.steps ?? 6), objective };
}

/** The default MobileNet written as a tfjs graph model (bench/graph-model.ts) into a temporary folder, and loaded. */
async function graphMobileNet(): Promise<Classifier> {
  const layers = await Classifier.load({ backend: 'wasm' });
  const g = await writeAsGraph(layers.weights.file, layers.descriptor.path, mkdtempSync(join(tmpdir(), 'pa-bench-graph-')), 'mobilenet_graph');
  layers.dispose();
  return Classifier.load({ model: g.descriptor, weights: g.weights });
}
