import * as tf from '@tensorflow/tfjs';
import { NoNativeGradient } from '../engine/index.js';
import type { Classifier } from '../model/classifier.js';
import type { Objective } from './objectives.js';

/**
 * One optimisation step's gradients with the network on onnxruntime (the chain rule across engines), for feature
 * visualisation and for EOT patches alike (an objective on 'logits', `image` pasting the patch): the image-sized
 * parts (parameterisation, colour decorrelation, transforms, pasting) and the objective stay on the tfjs tape, the
 * network runs natively as one op of that tape (Classifier.nativeNet: forward-only session forward, backward graph
 * seeded with the tape's dy backward). One tape pass: the image is made and differentiated once.
 * Returns the objective per item and the gradients of −Σ objective (what the optimisers minimise), or undefined
 * where the classifier has no native gradients (the caller then keeps its all-tfjs step; `image` must give the same
 * image when called again, so draw the step's randomness replayably: util/random.ts `replaying`).
 */
export function nativeStepGrads(
  classifier: Classifier,
  objective: Objective,
  image: () => tf.Tensor4D,
  variables: tf.Variable[],
  /** Adds the milliseconds spent natively and on the tape (for the bench's split). */
  time?: { native: number; tape: number },
): { per: Float32Array; grads: tf.NamedTensorMap } | undefined {
  const start = performance.now();
  let native = 0;
  let per: tf.Tensor | undefined;
  try {
    const { grads, value } = tf.variableGrads(() => {
      // A model with one input size gets the step's image resampled to it, on the tape (as toModelInput does).
      const acts = classifier.nativeNet(classifier.atInputSize(image()), objective.layers, (ms) => (native += ms));
      per = tf.keep(objective.perItem(new Map(objective.layers.map((l, k) => [l, acts[k]!]))));
      return tf.neg(tf.sum(per)) as tf.Scalar;
    }, variables);
    value.dispose();
    return { per: Float32Array.from(per!.dataSync()), grads };
  } catch (e) {
    if (e instanceof NoNativeGradient) return undefined;
    throw e;
  } finally {
    per?.dispose();
    if (time) {
      time.native += native;
      time.tape += performance.now() - start - native;
    }
  }
}
