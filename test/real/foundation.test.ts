import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { openDataset } from '../../src/data/dataset.js';
import { accuracy } from '../../src/recipes/accuracy.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { runCli } from '../helpers/cli.js';
import { describeReal, SAMPLE_DIR } from '../helpers/real.js';

describeReal('real MobileNet v1 0.75', () => {
  it('classify ranks grey whale first for the grey whale sample', async () => {
    const r = await runCli(['classify', join(SAMPLE_DIR!, 'n02066245_grey_whale.JPEG'), '--json']);
    expect(r.code, r.err).toBe(0);
    const top = JSON.parse(r.out).results[0].top;
    expect(top[0]).toMatchObject({ wnid: 'n02066245', name: 'grey whale' });
    expect(top[0].probability).toBeGreaterThan(0.5);
  });

  it('unknown layers and classes give one line with the closest names', async () => {
    const c = await Classifier.load();
    expect(() => c.resolveLayer('conv_pw_11_rleu')).toThrow(/no layer "conv_pw_11_rleu"; closest: conv_pw_11_relu/);
    expect(() => c.labels.resolve('gray whael')).toThrow(/closest: "grey whale"/);
    expect(c.resolveLayer('late')).toBe('conv_pw_11_relu');
    c.dispose();
  });

  it('wasm and cpu agree on predictions and logits over a slice of the sample', async () => {
    // The cpu backend is 20-40x slower, so CI compares a fixed slice; the closing note has the full 1000.
    const probe = await Classifier.load();
    const ds = await openDataset(SAMPLE_DIR!, probe.labels);
    probe.dispose();
    const slice = { ...ds, items: ds.items.filter((_, i) => i % 50 === 0) };
    const wasm = await accuracy(await Classifier.load({ backend: 'wasm' }), slice);
    const cpu = await accuracy(await Classifier.load({ backend: 'cpu' }), slice);
    await initBackend('wasm');
    expect(wasm.images).toBe(20);
    expect(wasm.predictions.map((p) => p.predicted)).toEqual(cpu.predictions.map((p) => p.predicted));
    wasm.predictions.forEach((p, i) => expect(Math.abs(p.probability - cpu.predictions[i]!.probability)).toBeLessThan(1e-4));
    expect(wasm.top1).toBe(cpu.top1);
  });

  it('gradient of a class logit w.r.t. a hidden layer agrees between wasm and cpu on a real image', async () => {
    const c0 = await Classifier.load();
    const ds = await openDataset([join(SAMPLE_DIR!, 'n02066245_grey_whale.JPEG')], c0.labels);
    c0.dispose();
    const { imageBatches } = await import('../../src/data/batches.js');
    let pixels: Float32Array | undefined;
    for await (const b of imageBatches(ds.items, { pre: { size: [224, 224], resizeShorter: 256 }, batchSize: 1 })) pixels = b.pixels;
    const grads: Float32Array[] = [];
    for (const backend of ['wasm', 'cpu'] as const) {
      const c = await Classifier.load({ backend });
      const x = tf.tensor4d(pixels!, [1, 224, 224, 3]);
      const whale = c.labels.resolve('grey whale').index;
      const before = tf.memory().numTensors;
      const { activation, grad } = c.layerGradient(x, 'conv_pw_11_relu', ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, whale], [-1, 1])));
      grads.push(grad.dataSync() as Float32Array);
      tf.dispose([activation, grad]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
      c.dispose();
    }
    await initBackend('wasm');
    let maxDiff = 0;
    let maxRef = 0;
    grads[0]!.forEach((v, i) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - grads[1]![i]!));
      maxRef = Math.max(maxRef, Math.abs(grads[1]![i]!));
    });
    expect(maxDiff / maxRef).toBeLessThan(1e-4);
  });
});

