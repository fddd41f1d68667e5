import * as tf from '@tensorflow/tfjs';
import { conv2dInputGrad, prefersConv2dInputRewrite } from './conv2d.js';
import { withTensors } from './kernel-shims.js';
import { isRewriteForced } from './state.js';

/**
 * Native kernels wrapped by a dispatcher that runs an op-based rewrite where it is faster (or when the rewrites
 * are forced, so tests can compare it with the native kernel on cpu) and the native kernel otherwise.
 *
 * Why the kernel and not only the gradient registry: fused conv2d (tf.layers Conv2D, graph-model Conv+BiasAdd)
 * differentiates through a customGrad that calls the Conv2DBackpropInput kernel directly.
 */

const BACKENDS = ['wasm', 'cpu'];

/** `backend/kernel` → the native config it replaced. */
const natives = new Map<string, tf.KernelConfig>();

interface Override {
  kernelName: string;
  /** Use the rewrite for this call? (`isRewriteForced()` is checked separately.) */
  prefer: (backend: string, attrs: tf.NamedAttrMap) => boolean;
  /** Whether the rewrite can handle this call at all (else the native kernel runs even when forced). */
  supports: (attrs: tf.NamedAttrMap, inputs: tf.NamedTensorInfoMap) => boolean;
  rewrite: (args: { inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap; backend: unknown }) => tf.TensorInfo;
}

interface RefCounted {
  incRef(dataId: tf.DataId): void;
}

const OVERRIDES: Override[] = [
  {
    kernelName: tf.Conv2DBackpropInput,
    prefer: (backend, attrs) => prefersConv2dInputRewrite(backend, (attrs as unknown as tf.Conv2DBackpropInputAttrs).dataFormat),
    supports: (attrs) => (attrs as unknown as tf.Conv2DBackpropInputAttrs).dataFormat !== 'NCHW',
    rewrite: ({ inputs, attrs }) => {
      const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
      return withTensors([inputs.dy, inputs.filter], (dy, filter) =>
        conv2dInputGrad(a.inputShape, dy as tf.Tensor4D, filter as tf.Tensor4D, a.strides, a.pad, 1, a.dimRoundingMode),
      );
    },
  },
  {
    // tfjs saves every tensor a gradient needs as a clone (Identity). wasm's Identity copies the data (cpu and
    // webgl share it: tensors are immutable), ~300 full-size copies per MobileNet forward pass on the tape.
    // Sharing the buffer by reference count, as wasm's own Reshape does, makes them free.
    kernelName: tf.Identity,
    prefer: (backend) => backend === 'wasm',
    // Strings live outside the wasm heap; cpu already shares (its Identity is the same reference count).
    supports: (_attrs, inputs) => (inputs.x as tf.TensorInfo).dtype !== 'string',
    rewrite: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      (backend as RefCounted).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  },
];

export function installKernelOverrides(): void {
  for (const backendName of BACKENDS) {
    for (const o of OVERRIDES) {
      const key = `${backendName}/${o.kernelName}`;
      const native = tf.getKernel(o.kernelName, backendName);
      if (native == null || natives.has(key)) continue;
      natives.set(key, native);
      tf.unregisterKernel(o.kernelName, backendName);
      tf.registerKernel({
        ...native,
        kernelFunc: (args) => {
          const attrs = args.attrs ?? {};
          const use = (isRewriteForced() || o.prefer(backendName, attrs)) && o.supports(attrs, args.inputs);
          return use ? o.rewrite({ inputs: args.inputs, attrs, backend: args.backend }) : native.kernelFunc(args);
        },
      });
    }
  }
}

/** `backend/kernel` of every native kernel wrapped by a dispatcher. */
export function installedKernelOverrides(): string[] {
  return [...natives.keys()].sort();
}
