import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, INPUT, OrtForward, withMaxPoolGrad } from '../../../src/engine/index.js';
import { OnnxExecutor } from '../../../src/engine/onnx/executor.js';
import { externalDataIn } from '../../../src/model/onnx-data.js';
import { encodeModel, type AttributeProto, type TensorProto } from '../../../src/engine/onnx/proto.js';
import { FIXTURES, fixtureBytes, fixtureInput, nchwToNhwc, nhwcToNchw, objectiveWeights, reference, relError, values, type FixtureName } from './fixtures.js';

/**
 * The ONNX importer against PyTorch: outputs, hidden tensors, input and hidden-layer gradients of the fixtures
 * (made by test/fixtures/onnx/make_fixtures.py) to 1e-4 relative, on the wasm engine.
 */

beforeAll(async () => {
  await initBackend('wasm');
});

const execs = new Map<FixtureName, OnnxExecutor>();
const load = (name: FixtureName) => {
  let e = execs.get(name);
  if (!e) execs.set(name, (e = OnnxExecutor.fromBytes(fixtureBytes(name))));
  return e;
};
afterAll(() => execs.forEach((e) => e.dispose()));

/** J = Σ_k w_k Σ_n logits[n, k], as the references define it. */
function objective(logits: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(logits, objectiveWeights(logits.shape[1]!)));
}

describe.each(FIXTURES)('%s.onnx', (name) => {
  const ref = reference(name);

  it('computes the graph outputs and hidden tensors PyTorch computed', () => {
    const exec = load(name);
    const outNames = Object.keys(ref.outputs);
    const hidden = ref.hidden.map((h) => h.name);
    const got = tf.tidy(() => {
      const x = nchwToNhwc(fixtureInput(ref.input.shape));
      return exec.run(new Map([[INPUT, x]]), [...outNames, ...hidden]).map((t) => nhwcToNchw(t));
    });
    [...outNames.map((o) => ref.outputs[o]!), ...ref.hidden].forEach((want, k) => {
      expect(got[k]!.shape).toEqual(want.shape);
      expect(relError(got[k]!.dataSync(), values(ref, want)), `${[...outNames, ...hidden][k]}`).toBeLessThan(1e-4);
    });
    tf.dispose(got);
  });

  it('matches onnxruntime-node at another batch size (3)', async () => {
    const exec = load(name);
    const outNames = Object.keys(ref.outputs);
    const shape = [3, ...ref.input.shape.slice(1)];
    const x = fixtureInput(shape);
    const session = await OrtForward.create(fixtureBytes(name), ref.input.name, outNames);
    if (!session) return expect.fail('onnxruntime-node is not installed (npm ci installs it)');
    const theirs = await session.run(x.dataSync() as Float32Array, shape);
    await session.dispose();
    const ours = tf.tidy(() => exec.run(new Map([[INPUT, nchwToNhwc(x)]]), outNames).map((t) => t.dataSync()));
    outNames.forEach((o, k) => expect(relError(ours[k]!, theirs[k]!), o).toBeLessThan(1e-4));
    x.dispose();
  });

  it('gives the input gradient PyTorch gives', () => {
    const exec = load(name);
    const logitsName = Object.keys(ref.outputs)[0]!;
    const grad = tf.tidy(() => {
      const x = nchwToNhwc(fixtureInput(ref.input.shape));
      return nhwcToNchw(tf.grad((v: tf.Tensor) => objective(exec.run(new Map([[INPUT, v]]), [logitsName])[0]!))(x));
    });
    expect(relError(grad.dataSync(), values(ref, ref.gradients.input_grad))).toBeLessThan(1e-4);
    grad.dispose();
  });

  it('gives the hidden-layer gradient PyTorch gives, feeding the hidden tensor', () => {
    const exec = load(name);
    const logitsName = Object.keys(ref.outputs)[0]!;
    const hidden = ref.gradients.hidden_grad.name;
    const grad = tf.tidy(() => {
      const x = nchwToNhwc(fixtureInput(ref.input.shape));
      const [h] = exec.run(new Map([[INPUT, x]]), [hidden]);
      return nhwcToNchw(tf.grad((v: tf.Tensor) => objective(exec.run(new Map([[INPUT, x], [hidden, v]]), [logitsName])[0]!))(h!));
    });
    expect(relError(grad.dataSync(), values(ref, ref.gradients.hidden_grad))).toBeLessThan(1e-4);
    grad.dispose();
  });

  it('forward-mode products agree with reverse mode (max-pool through its smooth relaxation in both)', () => {
    const exec = load(name);
    const logitsName = Object.keys(ref.outputs)[0]!;
    const from = ref.hidden[ref.hidden.length - 1]!.name;
    const { viaJvp, viaGrad } = tf.tidy(() => {
      const x = nchwToNhwc(fixtureInput(ref.input.shape));
      const [h] = exec.run(new Map([[INPUT, x]]), [from]);
      const G = 3;
      const B = h!.shape[0]!;
      const t = tf.randomNormal([B * G, ...h!.shape.slice(1)], 0, 1, 'float32', 7);
      const r = exec.jvp(new Map([[INPUT, x], [from, h!]]), from, t, G, [logitsName]);
      expect(r).toBeDefined();
      // ⟨∇_h J_b, t_{b,g}⟩ for each tangent, from one backward pass per example's objective.
      const w = objectiveWeights(r!.tangent[0]!.shape[1]!);
      const viaJvp = tf.sum(tf.mul(r!.tangent[0]!, w), 1);
      const grad = withMaxPoolGrad('smooth', () => tf.grad((v: tf.Tensor) => objective(exec.run(new Map([[INPUT, x], [from, v]]), [logitsName])[0]!))(h!));
      const gRep = tf.reshape(tf.tile(tf.expandDims(grad, 1), [1, G, 1, 1, 1].slice(0, grad.rank + 1)), t.shape);
      const viaGrad = tf.sum(tf.reshape(tf.mul(gRep, t), [B * G, -1]), 1);
      return { viaJvp, viaGrad };
    });
    expect(relError(viaJvp.dataSync(), viaGrad.dataSync())).toBeLessThan(1e-4);
    tf.dispose([viaJvp, viaGrad]);
  });

  it('leaks no tensors across a run, a gradient and a forward-mode product', () => {
    const exec = load(name);
    const logitsName = Object.keys(ref.outputs)[0]!;
    const from = ref.hidden[0]!.name;
    const x = nchwToNhwc(fixtureInput([1, ...ref.input.shape.slice(1)]));
    const before = tf.memory().numTensors;
    tf.dispose(exec.run(new Map([[INPUT, x]]), [logitsName, from]));
    tf.dispose(tf.grad((v: tf.Tensor) => objective(exec.run(new Map([[INPUT, v]]), [logitsName])[0]!))(x));
    const [h] = exec.run(new Map([[INPUT, x]]), [from]);
    const t = tf.onesLike(h!);
    const r = exec.jvp(new Map([[INPUT, x], [from, h!]]), from, t, 1, [logitsName]);
    tf.dispose([h!, t, ...(r ? [...r.primal, ...r.tangent] : [])]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});

/** A one-node model: input [N,3,4,4] → op → output, with optional initializers. */
function tinyModel(op: string, extra: { initializer?: TensorProto[]; inputs?: string[]; attribute?: AttributeProto[] } = {}): Uint8Array {
  const image = { name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'N' }, { dim_value: 3 }, { dim_value: 4 }, { dim_value: 4 }] } } } };
  return encodeModel({
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'tiny',
      input: [image],
      output: [{ name: 'y' }],
      initializer: extra.initializer ?? [],
      node: [{ op_type: op, name: 'the_node', input: ['x', ...(extra.inputs ?? [])], output: ['y'], attribute: extra.attribute ?? [] }],
    },
  });
}

describe('ONNX importer errors', () => {
  it('names an unsupported operator, its node and the opset in one line', () => {
    expect(() => OnnxExecutor.fromBytes(tinyModel('RoiAlign'))).toThrow(/^ONNX operator RoiAlign \(node "the_node", opset 13\) is not supported; supported: .*Conv/);
  });

  it('refuses bytes that are not an ONNX model', () => {
    expect(() => OnnxExecutor.fromBytes(new TextEncoder().encode('{"modelTopology": {}}'))).toThrow(/not an ONNX model|not a usable ONNX model/);
  });

  it('reads external data beside the model and refuses a location outside its folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'onnx-ext-'));
    try {
      const w = Float32Array.from({ length: 3 * 3 }, (_, i) => i - 4);
      writeFileSync(join(dir, 'weights.bin'), Buffer.concat([Buffer.alloc(8), Buffer.from(w.buffer)]));
      const ext = (location: string): TensorProto => ({
        name: 'w', dims: [3, 3, 1, 1], data_type: 1, data_location: 1,
        external_data: [{ key: 'location', value: location }, { key: 'offset', value: '8' }, { key: 'length', value: String(w.byteLength) }],
      });
      const exec = OnnxExecutor.fromBytes(tinyModel('Conv', { initializer: [ext('weights.bin')], inputs: ['w'] }), { external: externalDataIn(dir) });
      const y = tf.tidy(() => exec.run(new Map([[INPUT, tf.ones([1, 4, 4, 3])]]), ['y'])[0]!.dataSync());
      // 1×1 conv of ones: output channel m sums row m of w.
      expect(Array.from(y.slice(0, 3))).toEqual([-9, 0, 9]);
      exec.dispose();
      expect(() => OnnxExecutor.fromBytes(tinyModel('Conv', { initializer: [ext('../weights.bin')], inputs: ['w'] }), { external: externalDataIn(dir) })).toThrow(/must be a relative path inside the model's folder/);
      expect(() => OnnxExecutor.fromBytes(tinyModel('Conv', { initializer: [ext('/etc/passwd')], inputs: ['w'] }), { external: externalDataIn(dir) })).toThrow(/must be a relative path inside the model's folder/);
      // A link inside the folder that leads out of it is refused too.
      const outside = mkdtempSync(join(tmpdir(), 'onnx-outside-'));
      writeFileSync(join(outside, 'w.bin'), Buffer.alloc(64));
      symlinkSync(join(outside, 'w.bin'), join(dir, 'link.bin'));
      expect(() => OnnxExecutor.fromBytes(tinyModel('Conv', { initializer: [ext('link.bin')], inputs: ['w'] }), { external: externalDataIn(dir) })).toThrow(/leads outside the model's folder/);
      rmSync(outside, { recursive: true, force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
