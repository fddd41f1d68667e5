import * as tf from '@tensorflow/tfjs';

/**
 * An image parameterisation: trainable variables and the image they describe, [B,H,W,3].
 * Raw parameterisations (`pixel`, `fourier`) are unbounded; `toRgb` / `image` map them into [0,1].
 * `image()` is called inside the optimiser's gradient scope, so it must use differentiable ops only.
 */
export interface Param {
  readonly variables: tf.Variable[];
  /** [batch, height, width] of the image. */
  readonly shape: readonly [number, number, number];
  image(): tf.Tensor4D;
  /** Releases the variables and any constants the parameterisation holds. */
  dispose(): void;
}

export interface InitOptions {
  /** Standard deviation of the random initialisation (lucid: 0.01). */
  sd?: number;
  /** Seed of the initialisation, so runs are reproducible. */
  seed?: number;
}

/** Plain pixels (lucid's pixel_image): one variable holding the image itself. */
export function pixel(b: number, h: number, w: number, opts: InitOptions = {}): Param {
  const v = variableFrom(tf.randomNormal([b, h, w, 3], 0, opts.sd ?? 0.01, 'float32', opts.seed));
  return {
    variables: [v],
    shape: [b, h, w],
    image: () => v.clone() as tf.Tensor4D,
    dispose: () => v.dispose(),
  };
}

/** A trainable variable holding `init`'s values; `init` is disposed (tf.variable keeps its own reference). */
export function variableFrom(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init);
  init.dispose();
  return v;
}
