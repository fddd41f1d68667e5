import * as tf from '@tensorflow/tfjs';
import { avgPoolGradConfig } from './avgpool.js';
import { depthwiseGradConfig } from './depthwise.js';
import { gatherGradConfig } from './gather.js';
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
 */

let installed = false;

/** Register the overrides once; safe before or after tf.setBackend (decisions are taken per call, per backend). */
export function installGradientFixes(): void {
  if (installed) return;
  installed = true;
  installKernelShims();
  // Capture tfjs's configs before replacing them: the overrides delegate to them where the backend is sound.
  const overrides = [
    depthwiseGradConfig(tf.getGradient(tf.DepthwiseConv2dNative)),
    maxPoolGradConfig(tf.getGradient(tf.MaxPool)),
    maxPool3DGradConfig(tf.getGradient(tf.MaxPool3D)),
    avgPoolGradConfig(tf.getGradient(tf.AvgPool)),
    gatherGradConfig(tf.getGradient(tf.GatherV2)),
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
