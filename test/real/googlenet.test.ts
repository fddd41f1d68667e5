import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodedBatches } from '../../src/data/batches.js';
import { openDataset } from '../../src/data/dataset.js';
import { toFloatBatch } from '../../src/data/pixels.js';
import { Classifier } from '../../src/model/classifier.js';
import { accuracy } from '../../src/recipes/accuracy.js';
import { describeReal, SAMPLE_DIR } from '../helpers/real.js';

/**
 * The article's network, GoogLeNet with BVLC weights, as ONNX: accuracy on the 1000 sample images against the
 * figure measured with onnxruntime (75.5 % / 93.3 %, resize 256 + centre crop 224), both engines agreeing, and
 * forward-mode attribution at mixed4c equal to reverse mode through the max-pool relaxation.
 */
describeReal('GoogLeNet (ONNX, BVLC weights)', () => {
  let ort: Classifier;
  let wasm: Classifier;
  beforeAll(async () => {
    ort = await Classifier.load({ model: 'googlenet', backend: 'onnxruntime', download: false });
    wasm = await Classifier.load({ model: 'googlenet', backend: 'wasm', download: false });
  });
  afterAll(() => {
    ort.dispose();
    wasm.dispose();
  });

  it('reaches 75.5 % top-1 and 93.3 % top-5 on the sample images, within half a point (onnxruntime)', async () => {
    const report = await accuracy(ort, await openDataset(SAMPLE_DIR!, ort.labels), { params: { batchSize: 16 } });
    expect(report.backend).toBe('onnxruntime');
    expect(report.images).toBe(1000);
    expect(Math.abs(report.top1 - 0.755)).toBeLessThanOrEqual(0.005);
    expect(Math.abs(report.top5 - 0.933)).toBeLessThanOrEqual(0.005);
  });

  it('gives the same logits on both engines (80 images: 1e-3 relative, top-1 disagreements ≤ 0.5 %)', async () => {
    const ds = await openDataset(SAMPLE_DIR!, wasm.labels);
    const items = ds.items.filter((_, i) => i % 12 === 0).slice(0, 80);
    let n = 0;
    let disagree = 0;
    let worst = 0;
    for await (const batch of decodedBatches(items, { pre: wasm.preprocess, batchSize: 16 })) {
      const x = tf.tensor4d(toFloatBatch(batch.images), [batch.images.length, 224, 224, 3]);
      const a = await ort.forwardLogits(x);
      const b = wasm.logits(x);
      const [ad, bd] = [a.arraySync(), b.arraySync()];
      ad.forEach((row, i) => {
        const other = bd[i]!;
        const scale = Math.max(...other.map(Math.abs));
        worst = Math.max(worst, ...row.map((v, k) => Math.abs(v - other[k]!) / scale));
        if (row.indexOf(Math.max(...row)) !== other.indexOf(Math.max(...other))) disagree++;
      });
      n += ad.length;
      tf.dispose([x, a, b]);
    }
    expect(n).toBe(80);
    expect(worst).toBeLessThan(1e-3);
    expect(disagree / n).toBeLessThanOrEqual(0.005);
  });

  it('attributes at mixed4c in forward mode as reverse mode does (max-pools through their relaxation)', async () => {
    const ds = await openDataset(SAMPLE_DIR!, wasm.labels);
    const whale = ds.items.find((i) => i.path.includes('n02066245'))!;
    let x: tf.Tensor4D | undefined;
    for await (const b of decodedBatches([whale], { pre: wasm.preprocess, batchSize: 1 })) x = tf.tensor4d(toFloatBatch(b.images), [1, 224, 224, 3]);
    const classes = [147, 2, 500]; // grey whale, great white shark, and one unrelated class (standard index order)
    const [h] = wasm.run(x!, ['mixed4c']);
    const [, H, W, C] = h!.shape as number[];
    // One tangent: h at position (7, 7), zero elsewhere; its JVP is Σ_c h_c ∂logit/∂h_c at that position.
    const mask = tf.tidy(() => tf.mul(h!, tf.oneHot(7 * W! + 7, H! * W!).reshape([1, H!, W!, 1])));
    const r = wasm.jvp(x!, 'mixed4c', h!, mask, 1)!;
    const viaJvp = r.tangent[0]!.dataSync();
    for (const k of classes) {
      const { activation, grad } = wasm.layerGradient(x!, 'mixed4c', ['logits'], ([l]) => tf.sum(tf.slice(l!, [0, k], [1, 1])), { maxPool: 'smooth' });
      const viaGrad = tf.tidy(() => tf.sum(tf.mul(grad, mask)).dataSync()[0]!);
      expect(viaJvp[k]!).toBeCloseTo(viaGrad, 3);
      expect(Math.abs(viaJvp[k]! - viaGrad)).toBeLessThan(1e-4 * Math.max(1, Math.abs(viaGrad)) + 1e-4);
      tf.dispose([activation, grad]);
    }
    expect(C).toBe(512);
    tf.dispose([x!, h!, mask, ...r.primal, ...r.tangent]);
  });
});
