import * as tf from '@tensorflow/tfjs';

/**
 * Direct access to tensors on tfjs-backend-wasm's heap (4.x: `makeOutput`, `typedArrayFromHeap`), for kernels
 * that copy whole runs of memory where wasm's own kernels move one element at a time.
 * A view is only valid until the next allocation: growing the heap detaches older views.
 */
export interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** A float32 tensor's data without a copy on wasm; a copy (dataSync) elsewhere. Read it before the next tensor op. */
export function heapView(t: tf.Tensor): Float32Array {
  if (tf.getBackend() === 'wasm' && t.dtype === 'float32') {
    const be = tf.backend() as unknown as Partial<WasmHeap>;
    if (typeof be.typedArrayFromHeap === 'function') return be.typedArrayFromHeap(t) as Float32Array;
  }
  return t.dataSync() as Float32Array;
}

/**
 * A new float32 tensor of `shape`, zeroed, then filled by `fill(out, inputs' values)` in JavaScript. On wasm both
 * are views of the heap: no copies (reading a tensor back copies byte by byte from the shared heap, ~300 MB/s here:
 * more than the loop itself for an image batch). Elsewhere the inputs are read with dataSync.
 */
export function computeOnHeap(shape: number[], inputs: readonly tf.Tensor[], fill: (out: Float32Array, ins: Float32Array[]) => void): tf.Tensor {
  const be = tf.backend() as unknown as Partial<WasmHeap>;
  if (tf.getBackend() === 'wasm' && typeof be.makeOutput === 'function' && typeof be.typedArrayFromHeap === 'function' && inputs.every((t) => t.dtype === 'float32')) {
    // Allocate first: an allocation can grow the heap and detach views taken before it.
    const info = be.makeOutput(shape, 'float32');
    const out = be.typedArrayFromHeap(info) as Float32Array;
    out.fill(0);
    fill(out, inputs.map((t) => be.typedArrayFromHeap!(t) as Float32Array));
    return tf.engine().makeTensorFromTensorInfo(info);
  }
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(out, inputs.map((t) => t.dataSync() as Float32Array));
  return tf.tensor(out, shape);
}

/**
 * The contiguous runs of a row-major copy between `extent` (the shape being walked) and a larger array: the
 * innermost axes that are `whole` (copied entire), times the extent of the first axis from the right that is
 * not. `axis` is that axis (−1 when every axis is whole, one run).
 */
export function innerRun(extent: readonly number[], whole: (axis: number) => boolean): { axis: number; run: number } {
  let axis = extent.length - 1;
  let run = 1;
  while (axis >= 0 && whole(axis)) run *= extent[axis--]!;
  if (axis >= 0) run *= extent[axis]!;
  return { axis, run };
}

/** Row-major strides including the last axis (1). */
export function fullStrides(shape: readonly number[]): number[] {
  return [...tf.util.computeStrides(shape as number[]), 1];
}

/**
 * Calls fn(offset, k) for the k-th run, in row-major order over the `outer` axes, where offset is
 * base + Σ index[d] · strides[d] (an odometer, no per-run allocation).
 */
export function forEachRun(outer: readonly number[], strides: readonly number[], base: number, fn: (offset: number, k: number) => void): void {
  const idx = new Array<number>(outer.length).fill(0);
  const total = outer.reduce((a, b) => a * b, 1);
  let offset = base;
  for (let k = 0; k < total; k++) {
    fn(offset, k);
    for (let d = outer.length - 1; d >= 0; d--) {
      offset += strides[d]!;
      if (++idx[d]! < outer[d]!) break;
      offset -= idx[d]! * strides[d]!;
      idx[d] = 0;
    }
  }
}
