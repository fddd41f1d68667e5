import * as tf from '@tensorflow/tfjs';

/**
 * Forward-mode rules (Jacobian-vector products) for Keras layers, used to get a point's attribution to
 * every class in one extra pass (the article's JVP trick) instead of one backward pass per class.
 * Affine layers map a tangent t to f(t) - f(0); elementwise activations multiply it by f'(primal input).
 * Anything else (max-pool, softmax, layers with fused non-linear activations) is unsupported and the
 * caller falls back to reverse mode.
 */
const AFFINE = new Set([
  'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Conv1D', 'Dense', 'BatchNormalization', 'GlobalAveragePooling2D',
  'GlobalAveragePooling1D', 'AveragePooling2D', 'Reshape', 'Flatten', 'Dropout', 'SpatialDropout1D', 'ZeroPadding2D',
  'Cropping2D', 'Add', 'Concatenate', 'Permute', 'Average', 'Subtract', 'UpSampling2D', 'RepeatVector',
]);
const ELEMENTWISE_ACTIVATIONS = new Set(['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'tanh', 'softplus', 'softsign', 'swish', 'mish', 'gelu']);
const ELEMENTWISE = new Set(['ReLU', 'LeakyReLU', 'ELU', 'ThresholdedReLU', 'PReLU']);

type Kind = 'affine' | 'elementwise' | 'unsupported';

export function jvpKind(layer: tf.layers.Layer): Kind {
  const cls = layer.getClassName();
  const activation = (layer.getConfig() as { activation?: string }).activation;
  if (AFFINE.has(cls)) return !activation || activation === 'linear' ? 'affine' : 'unsupported';
  if (ELEMENTWISE.has(cls)) return 'elementwise';
  if (cls === 'Activation') return activation && ELEMENTWISE_ACTIVATIONS.has(activation) ? 'elementwise' : 'unsupported';
  return 'unsupported';
}

/**
 * Tangent of one layer's output. `groups` tangents share each primal example (tangent batch = primal
 * batch × groups, example-major), so per-example derivatives are broadcast over their group.
 */
export function layerJvp(layer: tf.layers.Layer, primalIns: tf.Tensor[], tangentIns: tf.Tensor[], groups: number): tf.Tensor {
  const apply = (xs: tf.Tensor[]) => layer.apply(xs.length === 1 ? xs[0]! : xs, { training: false }) as tf.Tensor;
  return tf.tidy(() => {
    if (jvpKind(layer) === 'affine') {
      const zeros = tangentIns.map((t) => tf.zeros([1, ...t.shape.slice(1)]));
      return tf.sub(apply(tangentIns), apply(zeros));
    }
    // Elementwise: f'(x) from the registered gradient, so the kink convention (e.g. relu6 at 0 and 6) matches tf.grad.
    const x = primalIns[0]!;
    const d = tf.grad((v: tf.Tensor) => tf.sum(apply([v])))(x);
    return perGroup(tangentIns[0]!, d, groups);
  });
}

/**
 * t [B·G, ...] times d [B, ...] broadcast over each example's group of G tangents (example-major); a d without a
 * batch of its own (rank 0, or batch 1) multiplies every tangent.
 */
export function perGroup(t: tf.Tensor, d: tf.Tensor, groups: number): tf.Tensor {
  if (d.rank === 0 || d.shape[0] === 1 || groups === 1) return tf.mul(t, d);
  const b = d.shape[0]!;
  const prod = tf.mul(tf.reshape(t, [b, groups, ...t.shape.slice(1)]), tf.expandDims(d, 1));
  return tf.reshape(prod, [b * groups, ...prod.shape.slice(2)]);
}
