import * as tf from '@tensorflow/tfjs';
import { NoNativeGradient } from '../engine/index.js';
import type { Classifier } from '../model/classifier.js';
import type { Objective } from './objectives.js';

export interface NativeStepOptions {
  /** Adds the milliseconds spent natively and on the tape (for the bench's split). */
  time?: { native: number; tape: number };
  /** Also return the objective's outputs (`objective.layers`, as `run` names them), as values. */
  keep?: boolean;
}

/**
 * One optimisation step's gradients with the network on onnxruntime (the chain rule across engines), for feature
 * visualisation and for EOT patches alike (an objective on 'logits', `image` pasting the patch): the image-sized
 * parts (parameterisation, colour decorrelation, transforms, pasting) stay on the tfjs tape, the network runs
 * natively as one op of that tape. An objective that is a readout (objectives.ts) runs inside the native graph too:
 * one native run gives its values and gradient (Classifier.nativeReadout). Any other objective stays on the tape
 * between a forward-only run and the backward graph seeded with its dy (Classifier.nativeNet). One tape pass either
 * way: the image is made and differentiated once.
 * Returns the objective per item and the gradients of −Σ objective (what the optimisers minimise), or undefined
 * where the classifier has no native gradients (the caller then keeps its all-tfjs step; `image` must give the same
 * image when called again, so draw the step's randomness replayably: util/random.ts `replaying`).
 */
export function nativeStepGrads(
  classifier: Classifier,
  objective: Objective,
  image: () => tf.Tensor4D,
  variables: tf.Variable[],
  { time, keep = false }: NativeStepOptions = {},
): { per: Float32Array; grads: tf.NamedTensorMap; outputs: tf.Tensor[] } | undefined {
  const start = performance.now();
  let native = 0;
  const onNative = (ms: number) => (native += ms);
  let per: tf.Tensor | undefined;
  let outputs: tf.Tensor[] = [];
  try {
    const { grads, value } = tf.variableGrads(() => {
      // A model with one input size gets the step's image resampled to it, on the tape (as toModelInput does).
      const x = classifier.atInputSize(image());
      const { readout } = objective;
      if (readout) {
        const r = classifier.nativeReadout(x, readout.form, (widths) => readout.weights(widths), keep ? objective.layers : [], onNative);
        per = tf.keep(r.value);
        outputs = r.kept.map((t) => tf.keep(t));
      } else {
        const acts = classifier.nativeNet(x, objective.layers, onNative);
        per = tf.keep(objective.perItem(new Map(objective.layers.map((l, k) => [l, acts[k]!]))));
        if (keep) outputs = acts.map((t) => tf.keep(t));
      }
      return tf.neg(tf.sum(per)) as tf.Scalar;
    }, variables);
    value.dispose();
    return { per: Float32Array.from(per!.dataSync()), grads, outputs };
  } catch (e) {
    tf.dispose(outputs);
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
