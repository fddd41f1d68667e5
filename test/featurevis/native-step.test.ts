import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { nativeStepGrads } from '../../src/featurevis/native-step.js';
import { directionCossimBatch } from '../../src/featurevis/objectives.js';
import { image } from '../../src/featurevis/param/image.js';
import { standardTransforms } from '../../src/featurevis/transforms.js';
import type { Classifier } from '../../src/model/classifier.js';
import { mulberry32 } from '../../src/util/random.js';
import { pasteTf } from '../../src/patch/paste.js';
import { randomPlacements } from '../../src/patch/placement.js';
import type { Objective } from '../../src/featurevis/objectives.js';
import { render } from '../../src/featurevis/render.js';
import { BACKWARD_OPS, OrtBackward } from '../../src/engine/onnx/backward.js';
import { OrtForward } from '../../src/engine/onnx/runtime.js';
import { channel, batch as batchObjective, classLogit, direction, directionCossim, neuron, scale, sub, sum } from '../../src/featurevis/objectives.js';
import { jitter, randomRotate, randomScale } from '../../src/featurevis/transforms.js';
import { optimisePatch } from '../../src/patch/optimise.js';
import { Classifier as ClassifierClass } from '../../src/model/classifier.js';
import { readEnv } from '../../src/config.js';
import { loadTinyClassifier, writeTinyDescriptor, writeTinyGraphModel } from '../helpers/tiny-models.js';

/** The chained step (tape for the image-sized parts, onnxruntime for the network) against the all-tfjs step. */
let c: Classifier;
const root = mkdtempSync(join(tmpdir(), 'pa-native-step-'));
beforeAll(async () => {
  c = await loadTinyClassifier(root);
});
afterAll(() => c.dispose());

describe('nativeStepGrads', () => {
  it('gives the all-tfjs step\'s objective values and variable gradients (Fourier param, decorrelation, transforms), leaking nothing', async () => {
    expect(c.onnx, 'the tiny model has an onnxruntime session after npm ci').toBeDefined();
    const r = mulberry32(9);
    const dirs = [0, 1].map(() => Array.from({ length: 16 }, () => r() - 0.3));
    const objective = directionCossimBatch('conv_pw_1_relu', dirs, 2);
    const param = image(2, 48, 48, { seed: 4 });
    const transform = standardTransforms();
    // The same transform draws each time the image is made.
    const img = () => transform(param.image(), mulberry32(5));
    const want = tf.variableGrads(() => {
      const x = img();
      const [h] = c.run(x, objective.layers);
      return tf.neg(tf.sum(objective.perItem(new Map([[objective.layers[0]!, h!]])))) as tf.Scalar;
    }, param.variables);
    const wantPer = tf.tidy(() => objective.perItem(new Map([[objective.layers[0]!, c.run(img(), objective.layers)[0]!]])).dataSync());
    const warm = nativeStepGrads(c, objective, img, param.variables); // builds the sessions
    if (warm) tf.dispose(Object.values(warm.grads));
    const before = tf.memory().numTensors;
    const got = nativeStepGrads(c, objective, img, param.variables);
    expect(got, c.noNativeGradient).toBeDefined();
    for (const [name, g] of Object.entries(want.grads)) {
      const err = tf.tidy(() => tf.norm(tf.sub(got!.grads[name]!, g)).dataSync()[0]! / tf.norm(g).dataSync()[0]!);
      expect(err, name).toBeLessThan(1e-4);
    }
    Array.from(wantPer).forEach((v, i) => expect(got!.per[i]).toBeCloseTo(v, 5));
    tf.dispose(Object.values(got!.grads));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([want.value, ...Object.values(want.grads)]);
    param.dispose();
  });
});

describe('nativeStepGrads with a readout objective', () => {
  it('takes one native run a step (the backward graph of network and objective), none of them forward-only', async () => {
    const r = mulberry32(3);
    const dirs = [0, 1].map(() => Array.from({ length: 16 }, () => r() - 0.3));
    const objective = directionCossimBatch('conv_pw_1_relu', dirs, 2);
    expect(objective.readout).toBeDefined();
    const param = image(2, 40, 40, { seed: 2 });
    const img = () => param.image();
    const backward = vi.spyOn(OrtBackward.prototype, 'run');
    const forward = vi.spyOn(OrtForward.prototype, 'runShaped');
    try {
      for (let k = 0; k < 3; k++) {
        const got = nativeStepGrads(c, objective, img, param.variables);
        expect(got, c.noNativeGradient).toBeDefined();
        tf.dispose(Object.values(got!.grads));
      }
      expect(backward).toHaveBeenCalledTimes(3);
      expect(forward).not.toHaveBeenCalled();
    } finally {
      backward.mockRestore();
      forward.mockRestore();
      param.dispose();
    }
  });

  it('gives the tape\'s values and gradients for every built-in readout (sums, neurons, logits), and what it keeps', async () => {
    const r = mulberry32(5);
    const v16 = Array.from({ length: 16 }, () => r() - 0.4);
    const objectives = [
      sub(neuron('conv_pw_1_relu', 3), scale(direction('conv_pw_1_relu', v16), 0.5)),
      neuron('conv_pw_1_relu', 5, 1, 2),
      neuron('conv_pw_1_relu', 6, undefined, 3),
      sum(classLogit(c.labels.resolve('n03126707').index), directionCossim('conv_pw_1_relu', v16, 3)),
    ];
    const param = image(2, 32, 32, { seed: 8 });
    try {
      for (const objective of objectives) {
        expect(objective.readout, objective.name).toBeDefined();
        const want = tf.variableGrads(() => {
          const outs = c.run(param.image(), objective.layers);
          return tf.neg(tf.sum(objective.perItem(new Map(objective.layers.map((l, k) => [l, outs[k]!]))))) as tf.Scalar;
        }, param.variables);
        const wantOuts = tf.tidy(() => c.run(param.image(), objective.layers));
        const got = nativeStepGrads(c, objective, () => param.image(), param.variables, { keep: true });
        expect(got, c.noNativeGradient).toBeDefined();
        for (const [name, g] of Object.entries(want.grads)) {
          const err = tf.tidy(() => tf.norm(tf.sub(got!.grads[name]!, g)).dataSync()[0]! / tf.norm(g).dataSync()[0]!);
          expect(err, `${objective.name}: ${name}`).toBeLessThan(1e-4);
        }
        expect(-got!.per.reduce((a, v) => a + v, 0)).toBeCloseTo(want.value.dataSync()[0]!, 4);
        got!.outputs.forEach((o, k) => {
          expect(o.shape, objective.layers[k]).toEqual(wantOuts[k]!.shape);
          expect(tf.tidy(() => tf.max(tf.abs(tf.sub(o, wantOuts[k]!))).dataSync()[0]!)).toBeLessThan(1e-4);
        });
        tf.dispose([want.value, ...Object.values(want.grads), ...Object.values(got!.grads), ...got!.outputs, ...wantOuts]);
      }
    } finally {
      param.dispose();
    }
  });
});

describe('nativeStepGrads for an EOT patch', () => {
  it('gives the all-tfjs gradient of log p(target) for a patch pasted on images at random placements', async () => {
    const r = mulberry32(21);
    const images = tf.tensor4d(Float32Array.from({ length: 4 * 32 * 32 * 3 }, () => r()), [4, 32, 32, 3]);
    const theta = tf.variable(tf.randomNormal([8, 8, 3], 0, 1, 'float32', 6), true, 'patch-logits');
    const placements = randomPlacements([32, 32], 4, { sizeRange: [0.4, 0.6], maxRotation: 22.5, seed: 2 });
    const target = c.labels.resolve('n03126707').index;
    // The EOT loss as an objective on the logits: per image log p(target).
    const objective: Objective = {
      name: 'log p(target)',
      layers: ['logits'],
      perItem: (acts) => tf.squeeze(tf.slice(tf.logSoftmax(acts.get('logits')!), [0, target], [-1, 1]), [1]) as tf.Tensor1D,
      fn: (acts) => tf.sum(objective.perItem(acts)) as tf.Scalar,
    };
    let made = 0;
    const img = () => (made++, pasteTf(images, tf.sigmoid(theta) as tf.Tensor3D, placements));
    const want = tf.variableGrads(() => tf.neg(objective.fn(new Map([['logits', c.logits(img())]]))) as tf.Scalar, [theta]);
    made = 0;
    const got = nativeStepGrads(c, objective, img, [theta]);
    expect(got, c.noNativeGradient).toBeDefined();
    // One tape pass: the pasted images are made once, and differentiated through that same recording.
    expect(made).toBe(1);
    const g = want.grads[theta.name]!;
    const err = tf.tidy(() => tf.norm(tf.sub(got!.grads[theta.name]!, g)).dataSync()[0]! / tf.norm(g).dataSync()[0]!);
    expect(err).toBeLessThan(1e-4);
    tf.dispose([images, theta, want.value, ...Object.values(want.grads), ...Object.values(got!.grads)]);
  });
});


/** Largest |a − b| relative to max |b|, over two traces of per-item values. */
function traceError(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => ((d = Math.max(d, Math.abs(v - b[i]![j]!))), (m = Math.max(m, Math.abs(b[i]![j]!))))));
  return d / m;
}

describe('render and optimisePatch with the network on onnxruntime', () => {
  const small = [jitter(2), randomScale([0.95, 1, 1.05]), randomRotate([-10, 0, 10]), jitter(2)];
  it.each([
    ['one stream for the batch', undefined],
    ['a stream per item', [11, 12]],
  ])('render gives the tape\'s trace and icons (%s: the same transform draws)', async (_, itemSeeds) => {
    const objective = batchObjective([channel('conv_pw_1_relu', 3), channel('conv_pw_1_relu', 7)]);
    const opts = { classifier: c, objective, param: (seed: number | readonly number[]) => image(2, 36, 36, { seed }), transforms: small, steps: 8, seed: 5, ...(itemSeeds ? { itemSeeds } : {}) };
    const tape = await render({ ...opts, native: false });
    const before = tf.memory().numTensors;
    const native = await render({ ...opts, native: true });
    expect(tf.memory().numTensors).toBe(before);
    expect(c.noNativeGradient).toBeUndefined();
    expect(traceError(native.trace[0]!, tape.trace[0]!)).toBeLessThan(1e-4);
    // Rounding apart, the same optimisation: the icons' bytes differ by at most one level.
    native.images.forEach((img, i) => img.forEach((v, k) => expect(Math.abs(v - tape.images[i]![k]!)).toBeLessThanOrEqual(1)));
    // The trace moved: equal traces of a constant objective would prove nothing.
    expect(tape.trace[0]!.at(-1)![0]).not.toBe(tape.trace[0]![0]![0]);
  });

  it('auto: icon steps whose objective is a readout run natively at any size, others from about 140k pixels a step on a layers model (measured crossovers), EOT patch steps always', async () => {
    expect(c.choice).toBe('auto');
    expect(c.nativeSteps('icons', 2 * 32 * 32)).toBe(true);
    expect(c.nativeSteps('icons', 8 * 96 * 96, false)).toBe(false);
    expect(c.nativeSteps('icons', 16 * 128 * 128, false)).toBe(true);
    expect(c.nativeSteps('patches', 8 * 32 * 32)).toBe(true);
    // render asks with its step's size (images × height × width) and whether its objective is a readout.
    const asked = vi.spyOn(c, 'nativeSteps');
    const param = (seed: number | readonly number[]) => image(2, 36, 36, { seed });
    await render({ classifier: c, objective: batchObjective([channel('conv_pw_1_relu', 1), channel('conv_pw_1_relu', 2)]), param, steps: 1 });
    expect(asked).toHaveBeenLastCalledWith('icons', 2 * 36 * 36, true);
    await render({ classifier: c, objective: batchObjective([channel('conv_pw_1_relu', 1), neuron('conv_pw_1_relu', 2)]), param, steps: 1 });
    expect(asked).toHaveBeenLastCalledWith('icons', 2 * 36 * 36, false);
    asked.mockRestore();
  });

  it('optimisePatch gives the tape\'s loss, target probability and patch', async () => {
    const r = mulberry32(11);
    const images = Float32Array.from({ length: 8 * 32 * 32 * 3 }, () => r());
    const opts = { classifier: c, images, target: c.labels.resolve('n03126707'), patchPx: 8, steps: 6, batchSize: 4, lr: 0.3, sizeRange: [0.4, 0.6] as const, seed: 3, untargetedWeight: 0.5 };
    const tape = await optimisePatch({ ...opts, native: false });
    const before = tf.memory().numTensors;
    const native = await optimisePatch({ ...opts, native: true });
    expect(tf.memory().numTensors).toBe(before);
    native.trace.forEach((e, k) => {
      expect(e.loss).toBeCloseTo(tape.trace[k]!.loss, 4);
      expect(e.pTarget).toBeCloseTo(tape.trace[k]!.pTarget, 5);
    });
    expect(tape.trace.at(-1)!.loss).toBeLessThan(tape.trace[0]!.loss);
    native.rgb.forEach((v, k) => expect(Math.abs(v - tape.rgb[k]!)).toBeLessThanOrEqual(1));
  });

  it('runs a model with one input size natively too: the step\'s image is resampled to it on the tape', async () => {
    writeTinyGraphModel(join(root, 'fixed', 'tiny_graph'), 32);
    const desc = writeTinyDescriptor(join(root, 'fixed-desc'), { format: 'graph', size: 32, logits: 'logits', defaultLayer: 'relu1' });
    const f = await ClassifierClass.load({ model: desc, env: { ...readEnv({}), modelsDir: join(root, 'fixed'), cacheDir: join(root, 'cache') } });
    try {
      // The crops leave 28 px: the graph takes 32 only.
      const objective = batchObjective([channel('relu1', 1), channel('relu1', 3)]);
      const opts = { classifier: f, objective, param: (seed: number | readonly number[]) => image(2, 32, 32, { seed }), transforms: small, steps: 5, seed: 4 };
      const tape = await render({ ...opts, native: false });
      const calls = vi.spyOn(f, 'nativeReadout');
      const native = await render({ ...opts, native: true });
      expect(calls).toHaveBeenCalledTimes(5);
      expect(f.noNativeGradient).toBeUndefined();
      expect(f.nativeSteps('icons', 2 * 32 * 32), 'auto runs a graph model\'s icon steps natively').toBe(true);
      expect(traceError(native.trace[0]!, tape.trace[0]!)).toBeLessThan(1e-4);
    } finally {
      f.dispose();
    }
  });

  it('falls back to the tape, with one note, when onnxruntime fails mid-run (the step still happens, on the tape)', async () => {
    writeTinyGraphModel(join(root, 'failing', 'tiny_graph'), 32);
    const desc = writeTinyDescriptor(join(root, 'failing-desc'), { format: 'graph', size: 32, logits: 'logits', defaultLayer: 'relu1' });
    const notes: string[] = [];
    const f = await ClassifierClass.load({ model: desc, env: { ...readEnv({}), modelsDir: join(root, 'failing'), cacheDir: join(root, 'cache') }, onNote: (l) => notes.push(l) });
    const run = vi.spyOn(OrtBackward.prototype, 'run').mockImplementation(() => {
      throw new Error('bad allocation\nat somewhere');
    });
    try {
      const objective = batchObjective([channel('relu1', 1), channel('relu1', 3)]);
      const opts = { classifier: f, objective, param: (seed: number | readonly number[]) => image(2, 32, 32, { seed }), transforms: [randomScale([0.95, 1, 1.05])], steps: 3, seed: 4 };
      const native = await render({ ...opts, native: true });
      const tape = await render({ ...opts, native: false });
      expect(run).toHaveBeenCalledTimes(1);
      expect(notes).toEqual(['tiny_graph: gradients run on wasm, not onnxruntime (bad allocation)']);
      expect(native.trace).toEqual(tape.trace);
      expect(f.nativeSteps('icons', 2 * 32 * 32)).toBe(false); // off for this model after the failure
    } finally {
      run.mockRestore();
      f.dispose();
    }
  });

  it('falls back to the tape, with one note, for a model whose graph has an operator without a backward rule', async () => {
    writeTinyGraphModel(join(root, 'tiny_graph'), 32, undefined, 'Elu');
    const desc = writeTinyDescriptor(join(root, 'elu'), { format: 'graph', size: 32, logits: 'logits', defaultLayer: 'relu1' });
    const notes: string[] = [];
    const e = await ClassifierClass.load({ model: desc, env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') }, onNote: (l) => notes.push(l) });
    // Every operator the importer runs has a rule now; Elu stands in for one that has none.
    BACKWARD_OPS.delete('Elu');
    try {
      expect(e.onnx, 'Elu converts to ONNX, so the model runs on onnxruntime').toBeDefined();
      const objective = batchObjective([channel('relu1', 1), channel('relu1', 2)]);
      // Transforms that keep the size: the graph takes 32×32 only.
      const opts = { classifier: e, objective, param: (seed: number | readonly number[]) => image(2, 32, 32, { seed }), transforms: [randomScale([0.95, 1, 1.05]), randomRotate([-10, 0, 10])], steps: 4, seed: 2 };
      const native = await render({ ...opts, native: true });
      const tape = await render({ ...opts, native: false });
      expect(notes).toEqual([expect.stringMatching(/^tiny_graph: gradients run on wasm, not onnxruntime \(no backward rule for Elu \(node .*relu1.*\)\)$/)]);
      expect(native.trace).toEqual(tape.trace);
      expect(e.nativeSteps('patches', 8 * 32 * 32)).toBe(false);
    } finally {
      BACKWARD_OPS.add('Elu');
      e.dispose();
    }
  });
});
