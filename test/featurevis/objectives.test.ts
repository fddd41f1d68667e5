import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { Classifier } from '../../src/model/classifier.js';
import { batch, channel, classLogit, direction, directionCossim, directionCossimBatch, neuron, scale, sub, sum, type Objective } from '../../src/featurevis/objectives.js';
import { image } from '../../src/featurevis/param/index.js';
import { render } from '../../src/featurevis/render.js';
import { loadTinyClassifier } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-fv-obj-'));
const LAYER = 'conv_pw_1_relu';
let c: Classifier;

beforeAll(async () => {
  c = await loadTinyClassifier(root);
});
afterAll(() => c?.dispose());

/** Objective values of a few fixed images, to check the definitions against plain tensor math. */
function acts(x: tf.Tensor4D, layers: string[]) {
  const outs = c.run(x, layers);
  return new Map(layers.map((l, i) => [l, outs[i]!]));
}

describe('objective definitions', () => {
  it('match plain tensor math', () => {
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = acts(x, [LAYER, 'logits']);
    const h = a.get(LAYER)!; // [2, 8, 8, 16]
    const hv = h.arraySync() as number[][][][];
    const lv = a.get('logits')!.arraySync() as number[][];
    const v = Array.from({ length: 16 }, (_, k) => Math.sin(k + 1));
    const val = (o: Objective) => tf.tidy(() => Array.from(o.perItem(a).dataSync()));
    for (let b = 0; b < 2; b++) {
      let mean = 0, dirMean = 0;
      for (let y = 0; y < 8; y++) for (let xx = 0; xx < 8; xx++) {
        mean += hv[b]![y]![xx]![3]! / 64;
        dirMean += hv[b]![y]![xx]!.reduce((s, q, k) => s + q * v[k]!, 0) / 64;
      }
      const centre = hv[b]![4]![4]!;
      const dot = centre.reduce((s, q, k) => s + q * v[k]!, 0);
      const cos = dot / (Math.hypot(...centre) * Math.hypot(...v));
      expect(val(channel(LAYER, 3))[b]).toBeCloseTo(mean, 4);
      expect(val(neuron(LAYER, 5))[b]).toBeCloseTo(centre[5]!, 5);
      expect(val(neuron(LAYER, 5, 1, 2))[b]).toBeCloseTo(hv[b]![1]![2]![5]!, 5);
      expect(val(neuron(LAYER, 5, 1))[b], 'x at the centre').toBeCloseTo(hv[b]![1]![4]![5]!, 5);
      expect(val(direction(LAYER, v))[b]).toBeCloseTo(dirMean, 4);
      expect(val(directionCossim(LAYER, v, 3))[b]).toBeCloseTo(dot * Math.max(0.1, cos) ** 3, 4);
      expect(val(classLogit(2))[b]).toBeCloseTo(lv[b]![2]!, 5);
      expect(val(sum(channel(LAYER, 3), scale(classLogit(2), 2)))[b]).toBeCloseTo(mean + 2 * lv[b]![2]!, 4);
      expect(val(sub(classLogit(2), classLogit(1)))[b]).toBeCloseTo(lv[b]![2]! - lv[b]![1]!, 4);
    }
    const per = val(batch([channel(LAYER, 3), classLogit(2)]));
    expect(per[0]).toBeCloseTo(val(channel(LAYER, 3))[0]!, 5);
    expect(per[1]).toBeCloseTo(lv[1]![2]!, 5);
    // A batch of channels on one layer takes the masked-sum path; it must equal each channel's own value.
    const chans = val(batch([channel(LAYER, 3), channel(LAYER, 11)]));
    expect(chans[0]).toBeCloseTo(val(channel(LAYER, 3))[0]!, 6);
    expect(chans[1]).toBeCloseTo(val(channel(LAYER, 11))[1]!, 6);
    expect(() => val(batch([channel(LAYER, 3), channel(LAYER, 16)]))).toThrow(/outside the 16 channels/);
    expect(() => val(batch([channel(LAYER, 3)]))).toThrow(/1 objectives for a batch of 2/);
    const vb = val(directionCossimBatch(LAYER, [v, v.map((q) => -q)], 2));
    expect(vb[0]).toBeCloseTo(val(directionCossim(LAYER, v, 2))[0]!, 5);
    expect(vb[1]).toBeCloseTo(val(directionCossim(LAYER, v.map((q) => -q), 2))[1]!, 5);
    tf.dispose([x, ...a.values()]);
  });
});

describe('each objective rises over 20 steps', () => {
  const v = Array.from({ length: 16 }, (_, k) => Math.cos(k));
  const cases: Array<[string, Objective]> = [
    ['channel', channel(LAYER, 3)],
    ['neuron', neuron(LAYER, 5)],
    ['direction', direction(LAYER, v)],
    ['directionCossim', directionCossim(LAYER, v, 2)],
    ['classLogit', classLogit(2)],
    ['sum', sum(channel(LAYER, 3), scale(classLogit(2), 0.5))],
  ];
  for (const [name, obj] of cases) {
    it(name, async () => {
      const r = await render({ classifier: c, objective: obj, param: (seed) => image(1, 32, 32, { seed }), steps: 20, seed: 1 });
      const first = r.trace[0]![0]![0]!;
      const last = r.trace[0]![19]![0]!;
      expect(last).toBeGreaterThan(first);
    });
  }
});
