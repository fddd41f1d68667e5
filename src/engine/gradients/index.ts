import * as tf from '@tensorflow/tfjs';
import { maximumGradConfig, minimumGradConfig, relu6GradConfig, reluGradConfig } from './activations.js';
import { avgPoolGradConfig } from './avgpool.js';
import { batchNormGradConfig } from './batchnorm.js';
import { depthwiseGradConfig } from './depthwise.js';
import { gatherGradConfig } from './gather.js';
import { installKernelOverrides } from './kernel-overrides.js';
import { installKernelShims } from './kernel-shims.js';
import { maxPool3DGradConfig, maxPoolGradConfig } from './maxpool.js';

/**
 * Correct input-gradients on every backend, wasm in particular (tfjs 4.22, measured):
 * - DepthwiseConv2dNativeBackpropInput/Filter and Conv2DBackpropFilter are missing on wasm → op-based gradient
 *   for depthwise conv, plus op-based kernels for the fused-conv paths that bypass the gradient registry;
 * - MaxPoolGrad / MaxPool3DGrad on wasm are wrong for windows whose max is <= 0 → exact rewrite from slices;
 * - UnsortedSegmentSum (gather's gradient) is missing on wasm → one-hot matMul;
 * - AvgPoolGrad (cpu and wasm) ignores that avgPool's border windows average fewer elements → corrected;
 * - and a 'smooth' max-pool gradient mode (the Activation Atlas relaxation) for attribution.
 * Each override keeps tfjs's own gradient where the backend's kernel exists and passes a probe.
 *
 * Fast input-gradients on wasm (same results within float32 rounding; tfjs's own paths elsewhere; all of them
 * forced on any backend by `withForcedRewrite`, so tests compare them with cpu's native gradients):
 * - Conv2DBackpropInput (native on wasm, ~10× slower than the forward conv) → forward XNNPACK convolutions of dy
 *   (`conv2d.ts`, `transpose-conv.ts`), by a kernel dispatcher since fused convs call the kernel directly;
 * - FusedBatchNorm's gradient tiles per-channel factors to full size (Tile is very slow on wasm) → broadcast;
 * - relu / relu6 / minimum / maximum masks from comparisons (slow bool kernels on wasm) → sub + step;
 * - depthwise stride-2 input gradient: zeros spread by one pad, padding inside the convolution;
 * - the Conv2DBackpropFilter shim (evaluated eagerly by fused linear convs) → one swapped-role convolution;
 * - wasm's Identity (every tensor saved for backprop is a clone) copies → shares the buffer, as cpu does;
 * - BatchMatMul with a transposed operand (tfjs's MatMul gradient, ONNX Gemm's transB) is ~20× slower than a plain
 *   product → the operand transposed first.
 */

let installed = false;

/** Register the overrides once; safe before or after tf.setBackend (decisions are taken per call, per backend). */
export function installGradientFixes(): void {
  if (installed) return;
  installed = true;
  installKernelShims();
  installKernelOverrides();
  // Capture tfjs's configs before replacing them: the overrides delegate to them where the backend is sound.
  const overrides = [
    depthwiseGradConfig(tf.getGradient(tf.DepthwiseConv2dNative)),
    maxPoolGradConfig(tf.getGradient(tf.MaxPool)),
    maxPool3DGradConfig(tf.getGradient(tf.MaxPool3D)),
    avgPoolGradConfig(tf.getGradient(tf.AvgPool)),
    gatherGradConfig(tf.getGradient(tf.GatherV2)),
    batchNormGradConfig(tf.getGradient(tf.FusedBatchNorm)),
    reluGradConfig(tf.getGradient(tf.Relu)),
    relu6GradConfig(tf.getGradient(tf.Relu6)),
    minimumGradConfig(tf.getGradient(tf.Minimum)),
    maximumGradConfig(tf.getGradient(tf.Maximum)),
  ];
  for (const config of overrides) tf.registerGradient(config);
}

export {
  getMaxPoolGradMode,
  hasNativeKernel,
  installedKernelShims,
  isRewriteForced,
  setMaxPoolGradMode,
  setRewriteForced,
  withForcedRewrite,
  withMaxPoolGrad,
  type MaxPoolGradMode,
} from './state.js';
export { avgPoolGradKernel, maxPool3DGradKernelIsSound, maxPoolGradKernelIsSound, probeAvgPoolGrad, probeMaxPoolGrad } from './probes.js';
export { SMOOTH_MAXPOOL_EPS, smoothMaxPool, smoothMaxPoolGrad } from './smooth-maxpool.js';
export { depthwiseConv2dFilterGrad, depthwiseConv2dInputGrad } from './depthwise.js';
export { conv2dFilterGrad } from './conv-filter.js';
export { maxPoolBackpropExact } from './maxpool.js';
export { avgPoolBackprop } from './avgpool.js';
export { gatherGrad } from './gather.js';
export { batchNormGrads } from './batchnorm.js';
export { conv2dInputGrad } from './conv2d.js';
export { installedKernelOverrides } from './kernel-overrides.js';
