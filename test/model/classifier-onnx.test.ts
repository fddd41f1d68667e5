import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { loadDescriptor } from '../../src/model/descriptor.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';
import { FIXTURE_DIR, fixtureInput, nchwToNhwc, reference, relError, values } from '../engine/onnx/fixtures.js';

/** An ONNX model behind the Classifier: descriptor, weights folder, logits found at the final Softmax's input, both engines. */
const root = mkdtempSync(join(tmpdir(), 'pa-onnx-classifier-'));
const env = { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') };

function descriptor(extra: Record<string, unknown> = {}, output: Record<string, unknown> = { kind: 'softmax', logits: 'no_such_tensor' }): string {
  const d = {
    name: 'ops_fixture',
    format: 'onnx',
    weights: { localName: 'ops_fixture', file: 'ops.onnx' },
    input: { size: [32, 32], resizeShorter: null, range: [0, 1] },
    labels: { set: 'labels.json' },
    output,
    layers: { default: '/lrn/LRN_output_0', aliases: { lrn: '/lrn/LRN_output_0' } },
    ...extra,
  };
  const path = join(root, `desc-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(d));
  return path;
}

beforeAll(async () => {
  await initBackend('wasm');
  mkdirSync(join(root, 'ops_fixture'));
  copyFileSync(join(FIXTURE_DIR, 'ops.onnx'), join(root, 'ops_fixture', 'ops.onnx'));
  writeFileSync(join(root, 'labels.json'), JSON.stringify({ classes: Array.from({ length: 10 }, (_, k) => [`n0000000${k}`, `class ${k}`]) }));
});

describe('Classifier on an ONNX model', () => {
  it('finds the weights by descriptor, takes the logits from the final Softmax, and gives PyTorch\'s logits on both engines', async () => {
    const ref = reference('ops');
    const auto = await Classifier.load({ model: descriptor(), env });
    const wasm = await Classifier.load({ model: descriptor(), env, backend: 'wasm' });
    expect(auto.weights.file).toBe(join(root, 'ops_fixture', 'ops.onnx'));
    expect(auto.logitsLayer).toBe('logits');
    expect(auto.forwardBackend).toBe('onnxruntime');
    expect(wasm.forwardBackend).toBe('wasm');
    // [0,1] range: the model sees the pixels as given, NHWC in, NCHW inside onnxruntime.
    const x = nchwToNhwc(fixtureInput(ref.input.shape)) as tf.Tensor4D;
    const want = values(ref, ref.outputs.logits!);
    const viaOrt = await auto.forwardLogits(x);
    const viaWasm = wasm.logits(x);
    expect(relError(viaOrt.dataSync(), want)).toBeLessThan(1e-4);
    expect(relError(viaWasm.dataSync(), want)).toBeLessThan(1e-4);
    expect(wasm.layerInfo('lrn').shape).toEqual([8, 8, 16]);
    tf.dispose([x, viaOrt, viaWasm]);
    auto.dispose();
    wasm.dispose();
  });

  it('refuses bad ONNX descriptor keys with one line each', () => {
    expect(() => loadDescriptor(descriptor({ weights: { localName: 'x', url: 'https://example.org/model.json' } }))).toThrow(/"weights.url" must be an http\(s\) URL ending in .onnx/);
    expect(() => loadDescriptor(descriptor({ weights: { localName: 'x', file: '../evil.onnx' } }))).toThrow(/"weights.file" .* plain file name/);
    expect(loadDescriptor(descriptor()).input.layout).toBe('nchw');
  });

  it('says what is wrong when onnxruntime is asked for and the file is not ONNX', async () => {
    mkdirSync(join(root, 'broken'), { recursive: true });
    writeFileSync(join(root, 'broken', 'model.onnx'), 'not protobuf at all');
    await expect(Classifier.load({ model: descriptor({ weights: { localName: 'broken' } }), env })).rejects.toThrow(/model\.onnx: not (an|a usable) ONNX model/);
  });
});

describe('Classifier on a tfjs layers model with onnxruntime', () => {
  it('exports it to ONNX once (cached by the weights\' hash), and forward passes agree with the tfjs engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-export-'));
    const e = { ...readEnv({}), modelsDir: dir, cacheDir: join(dir, 'cache') };
    await saveLayersModel(tinyLayersModel(32), join(dir, 'tiny_layers'));
    const desc = writeTinyDescriptor(join(dir, 'desc'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
    const c = await Classifier.load({ model: desc, env: e });
    expect(c.forwardBackend).toBe('onnxruntime');
    const cached = readdirSync(join(dir, 'cache', 'onnx'));
    expect(cached).toHaveLength(1);
    expect(readdirSync(join(dir, 'tiny_layers')).some((f) => f.endsWith('.onnx'))).toBe(false); // never beside the weights
    const x = tf.randomUniform([4, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const viaOrt = await c.forwardLogits(x);
    const viaTfjs = c.logits(x);
    expect(relError(viaOrt.dataSync(), viaTfjs.dataSync())).toBeLessThan(1e-4);
    const stamp = statSync(join(dir, 'cache', 'onnx', cached[0]!)).mtimeMs;
    const again = await Classifier.load({ model: desc, env: e });
    expect(statSync(join(dir, 'cache', 'onnx', cached[0]!)).mtimeMs).toBe(stamp);
    const wasm = await Classifier.load({ model: desc, env: e, backend: 'wasm' });
    expect(wasm.forwardBackend).toBe('wasm');
    tf.dispose([x, viaOrt, viaTfjs]);
    [c, again, wasm].forEach((k) => k.dispose());
  });
});

describe('--model path/model.onnx', () => {
  it('takes the descriptor beside the file and the file as the weights, or says which descriptor to write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-beside-'));
    copyFileSync(join(FIXTURE_DIR, 'ops.onnx'), join(dir, 'mine.onnx'));
    await expect(Classifier.load({ model: join(dir, 'mine.onnx'), env })).rejects.toThrow(/mine\.onnx has no descriptor beside it: write .*mine\.json/);
    copyFileSync(descriptor(), join(dir, 'mine.json'));
    writeFileSync(join(dir, 'labels.json'), JSON.stringify({ classes: Array.from({ length: 10 }, (_, k) => [`n0000000${k}`, `class ${k}`]) }));
    const c = await Classifier.load({ model: join(dir, 'mine.onnx'), env, backend: 'wasm' });
    expect(c.weights.file).toBe(join(dir, 'mine.onnx'));
    expect(c.labels.size).toBe(10);
    c.dispose();
  });
});
