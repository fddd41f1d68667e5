import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../errors.js';
import { DataType, type TensorProto } from './proto.js';

/**
 * TensorProto → tf.Tensor. Floating types become float32, integer types int32 (ONNX shape arithmetic is int64;
 * values beyond ±2^31 are clamped), bool stays bool. External data comes through `external` (the engine reads no
 * files), after its location is checked to be a relative path that stays inside the model's folder.
 */
export function tensorFromProto(t: TensorProto, external: ExternalData | undefined): tf.Tensor {
  const shape = (t.dims ?? []).map(Number);
  const size = shape.reduce((a, b) => a * b, 1);
  const type = t.data_type ?? 0;
  const raw = t.data_location === 1 ? readExternal(t, external) : t.raw_data && t.raw_data.length ? t.raw_data : undefined;
  const bytes = raw ? new Uint8Array(raw) : undefined; // a copy: aligned, and independent of the protobuf buffer
  const view = bytes ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) : undefined;
  const need = (per: number) => {
    if (bytes && bytes.byteLength !== size * per)
      throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}" holds ${bytes.byteLength} bytes where its shape [${shape}] needs ${size * per}`);
  };
  switch (type) {
    case DataType.FLOAT: {
      need(4);
      const v = bytes ? new Float32Array(bytes.buffer, bytes.byteOffset, size) : Float32Array.from(t.float_data ?? []);
      return tf.tensor(checkSize(v, size, t), shape, 'float32');
    }
    case DataType.DOUBLE: {
      need(8);
      const v = view ? Float32Array.from({ length: size }, (_, i) => view.getFloat64(i * 8, true)) : Float32Array.from(t.double_data ?? []);
      return tf.tensor(checkSize(v, size, t), shape, 'float32');
    }
    case DataType.FLOAT16: {
      need(2);
      const v = view ? Float32Array.from({ length: size }, (_, i) => half(view.getUint16(i * 2, true))) : Float32Array.from(t.int32_data ?? [], half);
      return tf.tensor(checkSize(v, size, t), shape, 'float32');
    }
    case DataType.INT64: {
      need(8);
      const v = view ? Array.from({ length: size }, (_, i) => Number(view.getBigInt64(i * 8, true))) : (t.int64_data ?? []).map(Number);
      return tf.tensor(Int32Array.from(checkSize(v, size, t), (x) => int32(x, t)), shape, 'int32');
    }
    case DataType.INT32:
    case DataType.INT8:
    case DataType.UINT8: {
      const per = type === DataType.INT32 ? 4 : 1;
      need(per);
      const v = view
        ? Array.from({ length: size }, (_, i) => (type === DataType.INT32 ? view.getInt32(i * 4, true) : type === DataType.INT8 ? view.getInt8(i) : view.getUint8(i)))
        : t.int32_data ?? [];
      return tf.tensor(Int32Array.from(checkSize(v, size, t)), shape, 'int32');
    }
    case DataType.BOOL: {
      need(1);
      const v = bytes ? Array.from(bytes) : t.int32_data ?? [];
      return tf.tensor(Uint8Array.from(checkSize(v, size, t)), shape, 'bool');
    }
    default:
      throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}" has data type ${type}, which patch-atlas does not read (float, double, float16, int8/32/64, uint8, bool)`);
  }
}

function checkSize<T extends ArrayLike<number>>(v: T, size: number, t: TensorProto): T {
  if (v.length !== size) throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}" holds ${v.length} values where its shape [${t.dims}] needs ${size}`);
  return v;
}

function int32(x: number, t: TensorProto): number {
  // INT64_MAX / INT64_MIN are ONNX's "to the end" in Slice; clamp those rather than refuse them.
  if (x > 2 ** 31 - 1) return 2 ** 31 - 1;
  if (x < -(2 ** 31)) return -(2 ** 31);
  if (!Number.isFinite(x)) throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}" holds a non-finite integer`);
  return x;
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Reads `length` bytes (all, if undefined) at `offset` of a file beside the model; throws a one-line Error if it cannot. */
export type ExternalData = (location: string, offset: number, length: number | undefined) => Uint8Array;

/** External data: `location` relative to the model's folder (and inside it), optional offset and length. */
function readExternal(t: TensorProto, external: ExternalData | undefined): Uint8Array {
  const kv = new Map((t.external_data ?? []).map((e) => [e.key, e.value]));
  const location = kv.get('location');
  if (!location || !external) throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}" keeps its data in an external file, but ${location ? 'the model was not read from a folder' : 'names no location'}`);
  if (location.startsWith('/') || location.startsWith('\\') || /^[a-zA-Z]:/.test(location) || location.split(/[\\/]/).includes('..') || location.includes('\0'))
    throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}": external data location "${location}" must be a relative path inside the model's folder`);
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : undefined;
  if (!Number.isInteger(offset) || offset < 0 || (length !== undefined && (!Number.isInteger(length) || length < 0)))
    throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}": external data offset/length must be whole numbers ≥ 0`);
  try {
    return external(location, offset, length);
  } catch (e) {
    throw new EngineError('MODEL_INVALID', `ONNX tensor "${t.name}": ${(e as Error).message}`, 'keep the .onnx file and its data files together in one folder');
  }
}
