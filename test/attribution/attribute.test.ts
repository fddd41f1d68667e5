import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { attributePoints, reverseAttributionSeconds } from '../../src/attribution/attribute.js';
import { parsePositions, positionsPerImage, samplePositions } from '../../src/attribution/positions.js';
import type { Classifier } from '../../src/model/classifier.js';
import { readEnv } from '../../src/config.js';
import { Classifier as ClassifierImpl } from '../../src/model/classifier.js';
import { layersAsGraph } from '../../bench/graph-model.js';
import { loadTinyClassifier, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';
import { relError } from '../engine/onnx/fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'pa-attr-'));
let c: Classifier;

beforeAll(async () => {
  c = await loadTinyClassifier(root);
});

describe('positions', () => {
  it('avoid the border, are distinct, and depend only on seed and image key', () => {
    const p = samplePositions(14, 14, 5, 7, 'a.jpg');
    expect(p).toHaveLength(5);
    expect(new Set(p.map(([y, x]) => `${y},${x}`)).size).toBe(5);
    for (const [y, x] of p) expect(y >= 1 && y <= 12 && x >= 1 && x <= 12).toBe(true);
    expect(samplePositions(14, 14, 5, 7, 'a.jpg')).toEqual(p);
    expect(samplePositions(14, 14, 5, 8, 'a.jpg')).not.toEqual(p);
    expect(samplePositions(14, 14, 'all', 7, 'a.jpg')).toHaveLength(144);
    expect(positionsPerImage(14, 14, 'all')).toBe(144);
    expect(positionsPerImage(14, 14, 500)).toBe(144);
    expect(() => parsePositions('0')).toThrow(/--positions 0 must be/);
  });
});

describe('attribution', () => {
  it('the forward-mode fast path equals per-class tf.grad attribution for every class', () => {
    const x = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    const positions = [0, 1, 2].map((i) => samplePositions(8, 8, i === 1 ? 'all' : 3, 1, `img${i}`));
    // Equal counts per image are the common case; a ragged batch exercises the per-image path.
    const fast = attributePoints(c, x, 'conv_dw_1_relu', positions, { maxTangents: 16 });
    const slow = attributePoints(c, x, 'conv_dw_1_relu', positions, { reverse: true });
    expect(fast.method).toBe('jvp');
    expect(slow.method).toBe('reverse');
    expect(fast.attr.length).toBe((3 + 36 + 3) * 5);
    expect(fast.acts).toEqual(slow.acts);
    let maxDiff = 0;
    let maxRef = 0;
    slow.attr.forEach((v, i) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - fast.attr[i]!));
      maxRef = Math.max(maxRef, Math.abs(v));
    });
    expect(maxRef).toBeGreaterThan(0);
    expect(maxDiff / maxRef).toBeLessThan(1e-3);
    x.dispose();
  });

  it('attribution to a class is h · d logit / d h at the position (checked by hand for one point)', () => {
    const x = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
    const r = attributePoints(c, x, 'conv_pw_1_relu', [[[3, 4]]]);
    const { activation, grad } = c.layerGradient(x, 'conv_pw_1_relu', ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, 2], [-1, 1])));
    const want = tf.tidy(() => tf.sum(tf.mul(tf.slice(activation, [0, 3, 4, 0], [1, 1, 1, -1]), tf.slice(grad, [0, 3, 4, 0], [1, 1, 1, -1]))).dataSync()[0]!);
    expect(r.attr[2]).toBeCloseTo(want, 5);
    tf.dispose([x, activation, grad]);
  });

  it('reverse mode runs natively where the model has an onnxruntime session (several classes a run, max-pools smooth) and equals the tape', async () => {
    const tape = await loadTinyClassifier(mkdtempSync(join(tmpdir(), 'pa-attr-wasm-')), 32, 'wasm');
    try {
      expect(c.nativeSteps('attribution', 1), 'auto runs reverse attribution natively').toBe(true);
      expect(tape.nativeSteps('attribution', 1)).toBe(false);
      const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 14) as tf.Tensor4D;
      const positions = [samplePositions(8, 8, 4, 1, 'a'), samplePositions(8, 8, 4, 1, 'b')];
      const runs = vi.spyOn(c, 'nativeLayerGradient');
      const before = tf.memory().numTensors;
      const native = attributePoints(c, x, 'conv_dw_1_relu', positions, { reverse: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(c.noNativeGradient).toBeUndefined();
      expect(runs.mock.calls.length).toBeGreaterThan(0);
      expect(runs.mock.calls.length).toBeLessThan(c.labels.size);
      runs.mockRestore();
      const onTape = attributePoints(tape, x, 'conv_dw_1_relu', positions, { reverse: true });
      expect(native.attr.some((v) => v !== 0)).toBe(true);
      expect(relError(native.attr, onTape.attr)).toBeLessThan(1e-4);
      x.dispose();
    } finally {
      tape.dispose();
    }
  });

  it('estimates the reverse-mode cost per image on the path it will take, leaking nothing', async () => {
    const tape = await loadTinyClassifier(mkdtempSync(join(tmpdir(), 'pa-attr-cost-')), 32, 'wasm');
    try {
      const before = tf.memory().numTensors;
      const runs = vi.spyOn(c, 'nativeLayerGradient');
      const native = reverseAttributionSeconds(c, 'conv_dw_1_relu');
      expect(runs.mock.calls.length).toBe(2); // the session is made by the first run, the second is timed
      runs.mockRestore();
      const onTape = reverseAttributionSeconds(tape, 'conv_dw_1_relu');
      expect(native).toBeGreaterThan(0);
      expect(onTape).toBeGreaterThan(0);
      expect(Number.isFinite(native) && Number.isFinite(onTape)).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tape.dispose();
    }
  });

  it('leaks no tensors on either path', () => {
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 13) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    attributePoints(c, x, 'conv1_relu', [[[1, 1]], [[2, 2]]]);
    attributePoints(c, x, 'conv1_relu', [[[1, 1]], [[2, 2]]], { reverse: true });
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});

describe('attribution on a tfjs graph model', () => {
  it('runs forward mode (the graph as ONNX) and equals per-class reverse mode to 1e-4, leaking nothing', async () => {
    const m = tinyLayersModel(32);
    const g = layersAsGraph(m);
    g.write(join(root, 'tiny_graph'));
    g.dispose();
    m.dispose();
    const desc = writeTinyDescriptor(join(root, 'gdesc'), { format: 'graph', size: 32, logits: 'conv_preds', defaultLayer: 'conv_dw_1_relu' });
    const gc = await ClassifierImpl.load({ model: desc, env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') }, backend: 'wasm' });
    expect(gc.noJvp).toBeUndefined();
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 14) as tf.Tensor4D;
    const positions = [samplePositions(8, 8, 4, 1, 'g0'), samplePositions(8, 8, 4, 1, 'g1')];
    const before = tf.memory().numTensors;
    const fast = attributePoints(gc, x, 'conv_dw_1_relu', positions);
    const slow = attributePoints(gc, x, 'conv_dw_1_relu', positions, { reverse: true });
    expect(tf.memory().numTensors).toBe(before);
    expect([fast.method, slow.method]).toEqual(['jvp', 'reverse']);
    // The graph computes what the layers model computes.
    const same = attributePoints(c, x, 'conv_dw_1_relu', positions);
    expect(Math.max(...slow.attr.map(Math.abs))).toBeGreaterThan(0);
    expect(relError(fast.attr, slow.attr)).toBeLessThan(1e-4);
    expect(relError(same.attr, slow.attr)).toBeLessThan(1e-3);
    x.dispose();
    gc.dispose();
  });
});

