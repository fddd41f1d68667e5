import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../model/classifier.js';
import type { Objective } from './objectives.js';

/**
 * One optimisation step's gradients with the network on onnxruntime (the chain rule across engines), for feature
 * visualisation and for EOT patches alike (an objective on 'logits', `image` pasting the patch): the
 * image-sized parts (parameterisation, colour decorrelation, transforms) stay on the tfjs tape, the network's forward
 * and backward run natively, and the image gradient is fed back into the tape. Three pieces per step:
 * 1. the image x = image() and the objective's activations at x (a native forward-only pass);
 * 2. dObjective/dactivations on the tape (small), then dObjective/dx from the backward graph seeded with it;
 * 3. the variables' gradients as the vector-Jacobian product of image() with that dx.
 * `image` must give the same image when called twice (draw the step's transform randomness once, outside).
 * Returns the objective per item and the gradients of −Σ objective (what render's optimiser minimises), or undefined
 * where the classifier has no native gradients (the caller keeps its all-tfjs step).
 */
export async function nativeStepGrads(
  classifier: Classifier,
  objective: Objective,
  image: () => tf.Tensor4D,
  variables: tf.Variable[],
  /** Adds the milliseconds spent natively and on the tape (for the bench's split). */
  time?: { native: number; tape: number },
): Promise<{ per: Float32Array; grads: tf.NamedTensorMap } | undefined> {
  let t = performance.now();
  const lap = (k: 'native' | 'tape') => {
    const now = performance.now();
    if (time) time[k] += now - t;
    t = now;
  };
  // A model with one input size gets the step's image resampled to it, on the tape (as toModelInput does).
  const fitted = () => classifier.atInputSize(image());
  const x = tf.tidy(fitted);
  lap('tape');
  try {
    // The activations first (a forward-only session), then the backward graph seeded with dObjective/dactivations.
    const values = await classifier.nativeActivations(x, objective.layers);
    lap('native');
    if (!values) return undefined;
    // The objective per item and its gradient w.r.t. the activations (the seeds) in one pass on the tape.
    let per: tf.Tensor | undefined;
    const seeds = tf.tidy(() =>
      tf.grads((...hs: tf.Tensor[]) => {
        per = tf.keep(objective.perItem(new Map(objective.layers.map((l, k) => [l, hs[k]!]))));
        return tf.sum(per);
      })(values),
    );
    const perValues = Float32Array.from(per!.dataSync());
    tf.dispose([per!, ...values]);
    lap('tape');
    const r = await classifier.nativeGradient(x, objective.layers, seeds);
    lap('native');
    tf.dispose(seeds);
    if (!r) return undefined;
    tf.dispose(r.values);
    // d(−Σ objective)/dθ = −(dx)ᵀ · dx/dθ.
    const { grads, value } = tf.variableGrads(() => tf.neg(tf.sum(tf.mul(fitted(), r.grad))) as tf.Scalar, variables);
    value.dataSync();
    tf.dispose([value, r.grad]);
    lap('tape');
    return { per: perValues, grads };
  } finally {
    x.dispose();
  }
}
