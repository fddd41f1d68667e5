import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeAsGraph } from '../../bench/graph-model.js';
import { attributePoints } from '../../src/attribution/attribute.js';
import { decodedBatches } from '../../src/data/batches.js';
import { openDataset } from '../../src/data/dataset.js';
import { toFloatBatch } from '../../src/data/pixels.js';
import { Classifier } from '../../src/model/classifier.js';
import { describeReal, SAMPLE_DIR } from '../helpers/real.js';
import { relError } from '../engine/onnx/fixtures.js';

/**
 * The default MobileNet written as a tfjs graph model (fused conv ops, batch norms folded, as tfjs-converter
 * writes graphs): it loads as ONNX, computes the layers model's logits, and its forward-mode attribution to all
 * 1000 classes equals reverse mode.
 */
describeReal('the default model as a tfjs graph model', () => {
  let layers: Classifier;
  let graph: Classifier;
  beforeAll(async () => {
    layers = await Classifier.load({ backend: 'auto', download: false });
    const g = await writeAsGraph(layers.weights.file, layers.descriptor.path, mkdtempSync(join(tmpdir(), 'pa-graph-real-')), 'mobilenet_graph');
    graph = await Classifier.load({ model: g.descriptor, weights: g.weights, backend: 'auto', download: false });
  });
  afterAll(() => {
    layers.dispose();
    graph.dispose();
  });

  it('gives the layers model\'s logits on sample images, on both engines (1e-4 relative)', async () => {
    const ds = await openDataset(SAMPLE_DIR!, layers.labels);
    const items = ds.items.filter((_, i) => i % 125 === 0);
    expect(graph.forwardBackend).toBe('onnxruntime');
    for await (const b of decodedBatches(items, { pre: layers.preprocess, batchSize: 8 })) {
      const x = tf.tensor4d(toFloatBatch(b.images), [b.images.length, 224, 224, 3]);
      const want = layers.logits(x);
      const tfjs = graph.logits(x);
      const ort = await graph.forwardLogits(x);
      const scale = tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!);
      for (const got of [tfjs, ort]) {
        const err = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!);
        expect(err / scale).toBeLessThan(1e-4);
      }
      tf.dispose([x, want, tfjs, ort]);
    }
  });

  it('attributes to all 1000 classes by forward mode, equal to one backward pass per class (1e-4)', async () => {
    const ds = await openDataset(SAMPLE_DIR!, graph.labels);
    let x = tf.zeros([1, 224, 224, 3]) as tf.Tensor4D;
    for await (const b of decodedBatches(ds.items.slice(0, 1), { pre: graph.preprocess, batchSize: 1 })) {
      x.dispose();
      x = tf.tensor4d(toFloatBatch(b.images), [1, 224, 224, 3]);
    }
    const positions = [[[2, 5], [4, 3]] as Array<[number, number]>];
    // A late layer keeps the reference (one backward pass per class, 1000 of them) short.
    const fast = attributePoints(graph, x, 'conv_pw_12_relu', positions);
    const slow = attributePoints(graph, x, 'conv_pw_12_relu', positions, { reverse: true });
    expect([fast.method, slow.method]).toEqual(['jvp', 'reverse']);
    expect(Math.max(...slow.attr.map(Math.abs))).toBeGreaterThan(0);
    expect(relError(fast.attr, slow.attr)).toBeLessThan(1e-4);
    x.dispose();
  }, 300_000);
});
