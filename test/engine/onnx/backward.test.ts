import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, INPUT, withMaxPoolGrad } from '../../../src/engine/index.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { ortInstalled } from '../../../src/engine/onnx/runtime.js';
import { buildBackward, OrtBackward } from '../../../src/engine/onnx/backward.js';
import { decodeModel } from '../../../src/engine/onnx/proto.js';
import { FIXTURES, fixtureBytes, fixtureInput, nchwToNhwc, nhwcToNchw, objectiveWeights, reference, relError, values } from './fixtures.js';

/**
 * Backward graphs run by onnxruntime against PyTorch's autograd on the fixtures (every operator of the ONNX list,
 * a tiny MobileNetV3 and a tiny GoogLeNet): the input gradient of J = Σ_k w_k Σ_n logits[n, k], to 1e-4 relative.
 */
beforeAll(async () => {
  await initBackend('wasm');
});

describe.each(FIXTURES)('%s.onnx, backward on onnxruntime', (name) => {
  const ref = reference(name);
  it('gives the input gradient PyTorch gives, and the forward outputs', async () => {
    expect(ortInstalled(), 'onnxruntime-node is installed by npm ci').toBe(true);
    const [n, , h, w] = ref.input.shape as [number, number, number, number];
    const logits = Object.keys(ref.outputs)[0]!;
    const k = ref.outputs[logits]!.shape[1]!;
    const bw = (await OrtBackward.create(fixtureBytes(name), { input: ref.input.name, targets: [logits], size: [h, w] }, 2))!;
    const x = fixtureInput(ref.input.shape);
    const seed = tf.tidy(() => tf.tile(tf.reshape(objectiveWeights(k), [1, k]), [n, 1]));
    const r = await bw.run(x.dataSync() as Float32Array, x.shape, [seed.dataSync() as Float32Array]);
    expect(relError(r.targets[0]!.data, values(ref, ref.outputs[logits]!))).toBeLessThan(1e-4);
    expect(relError(r.grad, values(ref, ref.gradients.input_grad))).toBeLessThan(1e-4);
    tf.dispose([x, seed]);
    await bw.dispose();
  });

  it('gives the gradient with respect to a hidden tensor PyTorch gives, the hidden tensor fed as the graph input', () => {
    const [n, , h, w] = ref.input.shape as [number, number, number, number];
    const logits = Object.keys(ref.outputs)[0]!;
    const k = ref.outputs[logits]!.shape[1]!;
    const hidden = ref.gradients.hidden_grad.name;
    const bw = OrtBackward.create(fixtureBytes(name), { input: ref.input.name, targets: [logits], size: [h, w], from: hidden }, 2);
    expect(bw.graph.input).toBe(hidden);
    const x = fixtureInput(ref.input.shape);
    const hv = values(ref, ref.hidden.find((t) => t.name === hidden)!);
    const seed = tf.tidy(() => tf.tile(tf.reshape(objectiveWeights(k), [1, k]), [n, 1]));
    const context = bw.graph.context ? { [bw.graph.context]: { data: x.dataSync() as Float32Array, dims: x.shape } } : {};
    const r = bw.run(hv, [n, ...ref.gradients.hidden_grad.shape.slice(1)], [seed.dataSync() as Float32Array], context);
    expect(relError(r.targets[0]!.data, values(ref, ref.outputs[logits]!))).toBeLessThan(1e-4);
    expect(relError(r.grad, values(ref, ref.gradients.hidden_grad))).toBeLessThan(1e-4);
    tf.dispose([x, seed]);
    bw.dispose();
  });

  it('backpropagates max-pools through the smooth relaxation as the tfjs engine\'s smooth mode does', () => {
    const [n, , h, w] = ref.input.shape as [number, number, number, number];
    const logits = Object.keys(ref.outputs)[0]!;
    const k = ref.outputs[logits]!.shape[1]!;
    const bw = OrtBackward.create(fixtureBytes(name), { input: ref.input.name, targets: [logits], size: [h, w], maxPool: 'smooth' }, 2);
    const exec = OnnxExecutor.fromBytes(fixtureBytes(name));
    const x = fixtureInput(ref.input.shape);
    const seed = tf.tidy(() => tf.tile(tf.reshape(objectiveWeights(k), [1, k]), [n, 1]));
    const r = bw.run(x.dataSync() as Float32Array, x.shape, [seed.dataSync() as Float32Array]);
    const tape = tf.tidy(() => nhwcToNchw(withMaxPoolGrad('smooth', () => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(exec.run(new Map([[INPUT, v]]), [logits])[0]!, seed)))(nchwToNhwc(x)))));
    expect(relError(r.grad, tape.dataSync())).toBeLessThan(1e-4);
    if (bw.graph.maxPools) expect(relError(r.grad, values(ref, ref.gradients.input_grad)), 'the relaxation changes the gradient').toBeGreaterThan(1e-2);
    tf.dispose([x, seed, tape]);
    bw.dispose();
    exec.dispose();
  });
});

describe('ReLU and Clip masks under the NCHWc layout', () => {
  it('are depthwise-conv masks where the path has no max-pool and channels fill NCHWc blocks (so the PyTorch comparison above covers them), Where elsewhere', async () => {
    const built = async (name: (typeof FIXTURES)[number]) => {
      const ref = reference(name);
      const [, , h, w] = ref.input.shape as [number, number, number, number];
      const g = await buildBackward(fixtureBytes(name), { input: ref.input.name, targets: [Object.keys(ref.outputs)[0]!], size: [h, w] });
      const nodes = decodeModel(g.bytes).graph!.node ?? [];
      return { masked: nodes.filter((n) => n.output![0]!.includes('/masked')).length, where: nodes.filter((n) => n.op_type === 'Where').length };
    };
    expect((await built('mobilenet_v3_tiny')).masked).toBeGreaterThan(0);
    expect((await built('inception_tiny')).masked).toBe(0); // max-pools: onnxruntime runs it without NCHWc
  });
});
