import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, INPUT, withMaxPoolGrad } from '../../../src/engine/index.js';
import { evaluateReadout, type Readout, type ReadoutWeight } from '../../../src/engine/readout.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { OrtBackward } from '../../../src/engine/onnx/backward.js';
import { decodeModel } from '../../../src/engine/onnx/proto.js';
import { fixtureBytes, fixtureInput, nchwToNhwc, nhwcToNchw, reference, relError } from './fixtures.js';

/**
 * Readouts inside backward graphs: the network, the readout and its derivative in one onnxruntime run, against the
 * same readout evaluated on the tfjs engine's tape (values, each item's input gradient, and the reads kept).
 */
beforeAll(async () => {
  await initBackend('wasm');
});

/** Weights for the widths a graph gives: row-per-item where `perItem`, one row otherwise, values from a formula. */
const weightsFor = (widths: readonly number[], n: number, perItem: readonly boolean[]): ReadoutWeight[] =>
  widths.map((c, k) => {
    const rows = perItem[k] ? n : 1;
    return { data: Float32Array.from({ length: rows * c }, (_, i) => Math.cos(0.7 * i + k) - 0.2), rows, cols: c };
  });

describe.each(['inception_tiny', 'mobilenet_v3_tiny'] as const)('%s.onnx, readouts on onnxruntime', (name) => {
  const ref = reference(name);
  const logits = Object.keys(ref.outputs)[0]!;
  // The deepest hidden tensor with room for a position off the centre.
  const hidden = ref.hidden.filter((t) => t.shape.length === 4 && t.shape[2]! >= 2 && t.shape[3]! >= 2).at(-1)!.name;
  const logp = { logSoftmax: { read: logits } } as const;
  const cases: Array<[string, Readout, boolean[]]> = [
    ['dotCossim at the centre, a direction per item', { dotCossim: { read: hidden }, w: 0, p: 3 }, [true]],
    ['dot with the spatial mean, and at a position', { sum: [[1, { dot: { read: hidden, at: 'mean' }, w: 0 }], [-0.5, { dot: { read: hidden, at: [1, 0] }, w: 1 }]] }, [true, false]],
    ['log-softmax dot and max (the EOT loss)', { sum: [[0.25, { dot: logp, w: 0 }], [-0.1, { maxPlus: logp, w: 1 }]] }, [false, false]],
  ];
  it.each(cases)('%s: values, item gradients and kept reads equal the tape\'s', (_, readout, perItem) => {
    const [n, , h, w] = ref.input.shape as [number, number, number, number];
    const reads = [...new Set([hidden, logits])];
    const bw = OrtBackward.create(fixtureBytes(name), { input: ref.input.name, targets: reads, size: [h, w], readout, also: [hidden] }, 2);
    // The weights take the image's batch symbol, so onnxruntime can prove the gradients' shapes.
    const inputs = decodeModel(bw.graph.bytes).graph!.input!;
    const batch = inputs.find((i) => i.name === ref.input.name)!.type!.tensor_type!.shape!.dim![0]!.dim_param;
    for (const wname of bw.graph.weights) expect(inputs.find((i) => i.name === wname)!.type!.tensor_type!.shape!.dim![0]!.dim_param).toBe(batch);
    const weights = weightsFor(bw.graph.widths, n, perItem);
    const feeds = Object.fromEntries(bw.graph.weights.map((k, i) => [k, { data: weights[i]!.rows === n ? weights[i]!.data : new Float32Array(n * weights[i]!.cols).map((_, j) => weights[i]!.data[j % weights[i]!.cols]!), dims: [n, weights[i]!.cols] }]));
    const exec = OnnxExecutor.fromBytes(fixtureBytes(name));
    const x = fixtureInput(ref.input.shape);
    // Item weights 1, 2, …: the seed of ones gives each item's gradient, which the tape's weighted sum checks.
    const itemWeights = tf.range(1, n + 1);
    const r = bw.run(x.dataSync() as Float32Array, x.shape, [new Float32Array(n).fill(1)], feeds);
    const outputs = (v: tf.Tensor) => {
      const o = exec.run(new Map([[INPUT, v]]), reads);
      return new Map(reads.map((t, k) => [t, o[k]!]));
    };
    const want = tf.tidy(() => evaluateReadout(readout, weights, outputs(nchwToNhwc(x))));
    expect(relError(r.targets[0]!.data, want.dataSync())).toBeLessThan(1e-4);
    const tape = tf.tidy(() => nhwcToNchw(withMaxPoolGrad('exact', () => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(evaluateReadout(readout, weights, outputs(v)), itemWeights)))(nchwToNhwc(x)))));
    const native = tf.tidy(() => tf.mul(tf.tensor4d(r.grad, x.shape), tf.reshape(itemWeights, [n, 1, 1, 1])));
    expect(relError(native.dataSync(), tape.dataSync())).toBeLessThan(1e-4);
    const kept = tf.tidy(() => nhwcToNchw(outputs(nchwToNhwc(x)).get(hidden)!));
    expect(r.also[0]!.dims).toEqual(kept.shape);
    expect(relError(r.also[0]!.data, kept.dataSync())).toBeLessThan(1e-4);
    tf.dispose([x, itemWeights, want, tape, native, kept]);
    bw.dispose();
    exec.dispose();
  });

  it('says so in one line where a kept tensor is not read', () => {
    const [, , h, w] = ref.input.shape as [number, number, number, number];
    expect(() => OrtBackward.create(fixtureBytes(name), { input: ref.input.name, targets: [logits], size: [h, w], readout: { dot: { read: logits }, w: 0 }, also: [hidden] }, 2)).toThrow(/is returned as a value but is not read/);
  });
});
