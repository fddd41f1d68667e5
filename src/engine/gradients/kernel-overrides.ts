import * as tf from '@tensorflow/tfjs';
import { conv2dInputGrad, prefersConv2dInputRewrite } from './conv2d.js';
import { withTensors } from './kernel-shims.js';
import { isRewriteForced } from './state.js';
import { forEachRun, fullStrides, innerRun, type WasmHeap } from '../wasm-heap.js';

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
  supports: (attrs: tf.NamedAttrMap, inputs: tf.NamedTensorInfoMap, backend: string) => boolean;
  rewrite: (args: { inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap; backend: unknown }) => tf.TensorInfo;
}

interface RefCounted {
  incRef(dataId: tf.DataId): void;
}

/**
 * Slice as a copy of contiguous runs straight between wasm heap views. wasm's own Slice reads the whole input
 * back into a JS copy and then moves one element at a time (measured: 15–25 ms to crop [16, 132, 132, 3] by
 * 4 pixels, the feature-visualisation jitter; this: ~1 ms).
 */
function sliceByRuns(x: tf.TensorInfo, beginAttr: number | number[], sizeAttr: number | number[], backend: WasmHeap): tf.TensorInfo {
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, beginAttr, sizeAttr);
  const out = backend.makeOutput(size, x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  if (dst.length === 0) return out;
  const strides = fullStrides(x.shape);
  const { axis, run } = innerRun(size, (d) => begin[d] === 0 && size[d] === x.shape[d]);
  const base = begin.reduce((acc, b, d) => acc + b * strides[d]!, 0);
  forEachRun(size.slice(0, Math.max(0, axis)), strides, base, (off, k) => dst.set(src.subarray(off, off + run), k * run));
  return out;
}

/**
 * Constant padding as a fill plus one copy per contiguous run of the input. wasm's PadV2 moves thin runs slowly:
 * padding [16, 128, 128, 3] by 2 pixels took ~5 ms (a crop's gradient is a pad, so every transform step pays it).
 */
function padByRuns(x: tf.TensorInfo, paddings: Array<[number, number]>, value: number, backend: WasmHeap): tf.TensorInfo {
  const outShape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
  const out = backend.makeOutput(outShape, x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  dst.fill(value);
  if (src.length === 0) return out;
  const strides = fullStrides(outShape);
  const { axis, run } = padRun(x.shape, paddings);
  const base = paddings.reduce((acc, [b], d) => acc + b * strides[d]!, 0);
  // Input runs are consecutive; only their place in the output moves.
  forEachRun(x.shape.slice(0, Math.max(0, axis)), strides, base, (off, k) => dst.set(src.subarray(k * run, (k + 1) * run), off));
  return out;
}

/** The contiguous input runs padByRuns copies: the innermost unpadded axes, times the first padded one. */
function padRun(shape: number[], paddings: Array<[number, number]>): { axis: number; run: number } {
  return innerRun(shape, (d) => paddings[d]![0] === 0 && paddings[d]![1] === 0);
}

/** x with its last two axes swapped. */
function swapLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  return tf.transpose(x, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
}

const OVERRIDES: Override[] = [
  {
    // wasm's BatchMatMul with a transposed operand is 17–26× slower than a plain product of the same size
    // (wasm 4.22, 2 cores: [8,1024]·[1000,1024]ᵀ 10.0 against 0.38 ms; [25088,64]·[64,64]ᵀ 77.6 against 3.7 ms), and
    // tfjs's MatMul gradient uses both flags (ONNX Gemm's transB too). Transposing the operand first costs one pass.
    kernelName: tf.BatchMatMul,
    prefer: (backend, attrs) => backend === 'wasm' && Boolean(attrs.transposeA || attrs.transposeB),
    supports: (attrs, inputs) => Boolean(attrs.transposeA || attrs.transposeB) && [inputs.a, inputs.b].every((t) => (t as tf.TensorInfo).shape.length >= 2),
    rewrite: ({ inputs, attrs }) => withTensors([inputs.a, inputs.b], (a, b) => tf.matMul(attrs.transposeA ? swapLast(a) : a, attrs.transposeB ? swapLast(b) : b)),
  },
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
    kernelName: tf.Slice,
    prefer: (backend) => backend === 'wasm',
    // It reads the wasm heap directly, so it is wasm-only even when rewrites are forced.
    supports: (_attrs, inputs, backend) => backend === 'wasm' && (inputs.x as tf.TensorInfo).dtype !== 'string',
    rewrite: ({ inputs, attrs, backend }) => {
      const a = attrs as unknown as tf.SliceAttrs;
      return sliceByRuns(inputs.x as tf.TensorInfo, a.begin, a.size, backend as WasmHeap);
    },
  },
  {
    kernelName: tf.PadV2,
    prefer: (backend) => backend === 'wasm',
    // Runs shorter than ~64 values cost more per JS copy than wasm's own loop (measured: the 6-D zero-spread pad
    // of a strided conv gradient, runs of 24, 4.4 ms vs 3.6 ms native).
    supports: (attrs, inputs, backend) =>
      backend === 'wasm' && (inputs.x as tf.TensorInfo).dtype !== 'string' && padRun((inputs.x as tf.TensorInfo).shape, (attrs as unknown as tf.PadV2Attrs).paddings as Array<[number, number]>).run >= 64,
    rewrite: ({ inputs, attrs, backend }) => {
      const a = attrs as unknown as tf.PadV2Attrs;
      return padByRuns(inputs.x as tf.TensorInfo, a.paddings as Array<[number, number]>, a.constantValue, backend as WasmHeap);
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
          const use = (isRewriteForced() || o.prefer(backendName, attrs)) && o.supports(attrs, args.inputs, backendName);
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
