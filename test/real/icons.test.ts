import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { batch, classLogit } from '../../src/featurevis/objectives.js';
import { image } from '../../src/featurevis/param/index.js';
import { render } from '../../src/featurevis/render.js';
import { standardTransforms } from '../../src/featurevis/transforms.js';
import { Classifier } from '../../src/model/classifier.js';
import { describeReal } from '../helpers/real.js';

describeReal('feature visualisation on the real model', () => {
  it('class-logit icons for grey whale, great white shark and baseball are classified as their class with p > 0.5', async () => {
    const c = await Classifier.load();
    const classes = ['grey whale', 'great white shark', 'baseball'].map((q) => c.labels.resolve(q));
    const size = 128;
    // A small step budget keeps CI fast; the whole recipe (Fourier param, decorrelation, transforms, wasm gradients) must work for this to pass.
    const r = await render({
      classifier: c,
      objective: batch(classes.map((k) => classLogit(k.index))),
      param: (seed) => image(classes.length, size, size, { seed }),
      transforms: standardTransforms(),
      steps: 96,
      seed: 1,
    });
    // Classified at the resolution they were optimised at (MobileNet ends in global pooling, so any size
    // works); the saved 8-bit PNG bytes are what is classified.
    const probs = tf.tidy(() => c.probabilities(tf.stack(r.images.map((rgb) => tf.div(tf.tensor3d(rgb, [size, size, 3], 'float32'), 255))) as tf.Tensor4D));
    const p = probs.arraySync();
    probs.dispose();
    classes.forEach((k, i) => {
      console.log(`icon for ${k.name}: p = ${p[i]![k.index]!.toFixed(3)}, objective ${r.values[i]!.toFixed(1)}`);
      expect(p[i]![k.index]!).toBeGreaterThan(0.5);
    });
    c.dispose();
  });
});
