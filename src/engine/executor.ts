import * as tf from '@tensorflow/tfjs';

/** One layer (layers model) or node (graph model) whose output can be read or fed. */
export interface LayerInfo {
  name: string;
  type: string;
  /** Output shape without the batch dimension; null where unknown. */
  shape: Array<number | null> | null;
}

/** The key under which the model's (preprocessed) input is fed. */
export const INPUT = '__input__';

/**
 * Runs a model by layer name: any layer's output can be fetched, and any layer's output can be
 * fed in place of computing it (for gradients with respect to a hidden layer). Only the layers
 * needed for the requested outputs run.
 */
export interface Executor {
  readonly layers: readonly LayerInfo[];
  readonly outputName: string;
  has(name: string): boolean;
  run(feeds: ReadonlyMap<string, tf.Tensor>, outputs: readonly string[]): tf.Tensor[];
  /** A layer's weight tensors (kernel first), as plain arrays with their shapes; absent where the executor cannot tell. */
  weightsOf?(layer: string): Array<{ values: Float32Array; shape: number[] }> | undefined;
  /** Forward-mode product from layer `from` (see LayersExecutor.jvp); absent or undefined where unsupported. */
  jvp?(feeds: ReadonlyMap<string, tf.Tensor>, from: string, tangent: tf.Tensor, groups: number, outputs: readonly string[]): JvpResult | undefined;
  dispose(): void;
}

export interface JvpResult {
  primal: tf.Tensor[];
  tangent: tf.Tensor[];
}

/**
 * Fill in every layer's output shape (batch dropped) by running one input through the model, for formats whose files
 * carry no shapes (tfjs graphs, ONNX): shapes as fetched, NHWC for image tensors.
 */
export function probeShapes(exec: Executor, input: tf.Tensor): void {
  const names = exec.layers.map((l) => l.name);
  tf.tidy(() => {
    const outs = exec.run(new Map([[INPUT, input]]), names);
    outs.forEach((t, i) => (exec.layers[i]!.shape = t.shape.slice(1)));
  });
}
