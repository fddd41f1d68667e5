import * as tf from '@tensorflow/tfjs';
import { hasNativeKernel, isRewriteForced } from './state.js';

/**
 * tfjs differentiates gather with unsortedSegmentSum, which wasm 4.22 lacks. Here the scatter-add is a matrix
 * product with a one-hot of the indices: dx[n] = Σ_i [indices_i = n] · dy_i. Exact (each term is dy or 0) and
 * only equal / matMul / transpose; memory grows with (#indices × axis length), fine for the small gathers of
 * this project (class logits, sampled positions), not for large embedding tables.
 */
export function gatherGrad(dy: tf.Tensor, x: tf.Tensor, indices: tf.Tensor, axis: number, batchDims: number): tf.Tensor {
  return tf.tidy(() => {
    const ax = axis < 0 ? axis + x.rank : axis;
    const size = (dims: number[]) => dims.reduce((p, d) => p * d, 1);
    const batch = size(x.shape.slice(0, batchDims));
    const outer = size(x.shape.slice(batchDims, ax));
    const depth = x.shape[ax];
    const inner = size(x.shape.slice(ax + 1));
    const count = indices.size / batch;
    // dy is [batch…, outer…, indices…, inner…]; bring the index axis next to batch for the product.
    const values = dy.reshape([batch, outer, count, inner]).transpose([0, 2, 1, 3]).reshape([batch, count, outer * inner]);
    // One-hot by comparison, not tf.oneHot: wasm 4.22's OneHot with dtype 'float32' writes int32 bit patterns.
    const hot = tf.equal(indices.reshape([batch, count, 1]).toInt(), tf.range(0, depth, 1, 'int32')).toFloat();
    // [batch, depth, outer·inner]; explicit transpose because transposed-operand matMul is slow on wasm.
    const summed = tf.matMul(hot.transpose([0, 2, 1]) as tf.Tensor3D, values as tf.Tensor3D);
    return summed.reshape([batch, depth, outer, inner]).transpose([0, 2, 1, 3]).reshape(x.shape);
  });
}

/** GatherV2 gradient: tfjs's where the backend has UnsortedSegmentSum, else (or when forced) the one-hot product. */
export function gatherGradConfig(original: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: tf.GatherV2,
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, saved, attrs) => {
      if (original && !isRewriteForced() && hasNativeKernel(tf.UnsortedSegmentSum)) return original.gradFunc(dy, saved, attrs);
      const [x, indices] = saved;
      const a = attrs as unknown as tf.GatherV2Attrs;
      // indices are integers and never on a differentiable path; tfjs's own config answers the same way.
      return { x: () => gatherGrad(dy as tf.Tensor, x, indices, a.axis, a.batchDims ?? 0), indices: () => indices };
    },
  };
}
