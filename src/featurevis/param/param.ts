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
  /**
   * Seed of the initialisation, so runs are reproducible; a list gives each item its own seed, so an
   * item starts the same whatever it is batched with.
   */
  seed?: number | readonly number[];
}

/** N(0, sd²) values of `shape` ([batch, …]): one seeded draw for the batch, or one per item with a seed list. */
export function initialValues(shape: readonly number[], sd: number, seed: number | readonly number[] | undefined): tf.Tensor {
  if (!Array.isArray(seed)) return tf.randomNormal([...shape], 0, sd, 'float32', seed as number | undefined);
  if (seed.length !== shape[0]) throw new Error(`initialValues: ${seed.length} seeds for a batch of ${shape[0]}`);
  return tf.tidy(() => tf.concat(seed.map((s) => tf.randomNormal([1, ...shape.slice(1)], 0, sd, 'float32', s)), 0));
}

/** Plain pixels (lucid's pixel_image): one variable holding the image itself. */
export function pixel(b: number, h: number, w: number, opts: InitOptions = {}): Param {
  const v = variableFrom(initialValues([b, h, w, 3], opts.sd ?? 0.01, opts.seed));
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
