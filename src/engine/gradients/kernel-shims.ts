import * as tf from '@tensorflow/tfjs';
import { conv2dFilterGrad } from './conv-filter.js';
import { depthwiseConv2dFilterGrad, depthwiseConv2dInputGrad } from './depthwise.js';
import { recordShim } from './state.js';

/**
 * Kernels built from ops, registered only where a backend lacks them (wasm, tfjs 4.22).
 *
 * Why kernels and not only gradient overrides: fused conv2d / depthwiseConv2d with a *linear* activation keep
 * their fused form under tf.grad and use a customGrad that calls the backprop ops directly — the gradient
 * registry is never consulted — and that customGrad computes the filter gradient eagerly, even when only the
 * input gradient is requested. tf.layers Conv2D (linear by default) and graph-model Conv+BiasAdd take that path.
 */

const BACKENDS = ['wasm'];

type Inputs = tf.NamedTensorInfoMap;

/** Kernel inputs are Tensors when they come through ops; wrap a bare TensorInfo (and release the wrapper after). */
export function withTensors<T extends tf.Tensor>(infos: Array<tf.TensorInfo | undefined>, fn: (...ts: tf.Tensor[]) => T): T {
  const owned: tf.Tensor[] = [];
  const ts = infos.map((info) => {
    if (info == null) throw new Error('gradient shim: missing kernel input');
    if (info instanceof tf.Tensor) return info;
    const t = tf.engine().makeTensorFromTensorInfo(info);
    owned.push(t);
    return t;
  });
  try {
    return tf.tidy(() => fn(...ts));
  } finally {
    owned.forEach((t) => t.dispose());
  }
}

/** NCHW callers get the NHWC computation between two transposes. */
function toNHWC(t: tf.Tensor, dataFormat: string | undefined): tf.Tensor4D {
  return (dataFormat === 'NCHW' ? tf.transpose(t, [0, 2, 3, 1]) : t) as tf.Tensor4D;
}

const SHIMS: Array<Omit<tf.KernelConfig, 'backendName'>> = [
  {
    kernelName: tf.Conv2DBackpropFilter,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const { x, dy } = inputs as Inputs;
      return withTensors([x, dy], (xt, dyt) =>
        conv2dFilterGrad(toNHWC(xt, a.dataFormat), toNHWC(dyt, a.dataFormat), a.filterShape, a.strides, a.pad, 1, a.dimRoundingMode),
      );
    },
  },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropInput,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
      const { dy, filter } = inputs as Inputs;
      return withTensors([dy, filter], (dyt, ft) =>
        depthwiseConv2dInputGrad(a.inputShape, dyt as tf.Tensor4D, ft as tf.Tensor4D, a.strides, a.pad, a.dilations ?? 1, a.dimRoundingMode),
      );
    },
  },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
      const { x, dy } = inputs as Inputs;
      return withTensors([x, dy], (xt, dyt) =>
        depthwiseConv2dFilterGrad(xt as tf.Tensor4D, dyt as tf.Tensor4D, a.filterShape, a.strides, a.pad, a.dilations ?? 1, a.dimRoundingMode),
      );
    },
  },
];

/** Register the missing kernels; a kernel the backend already has (natively or from an earlier call) is left alone. */
export function installKernelShims(): void {
  for (const backendName of BACKENDS) {
    for (const shim of SHIMS) {
      if (tf.getKernel(shim.kernelName, backendName) != null) continue;
      tf.registerKernel({ ...shim, backendName });
      recordShim(backendName, shim.kernelName);
    }
  }
}
