import * as tf from '@tensorflow/tfjs';
import { Attrs } from '../../src/engine/onnx/attrs.js';
import { decodeModel, type TensorProto } from '../../src/engine/onnx/proto.js';
import type { Classifier } from '../../src/model/classifier.js';

/**
 * Whether an input is tie-free for a comparison of two engines' gradients: every ReLU / Clip unit on the same side
 * of its kinks in both engines, and every max-pool window's first maximum (row-major, the rule both engines use for
 * ties) at the same place. Where one of those differs, a value sat within rounding of a kink or of another window
 * value, and the two engines' gradients legitimately differ there.
 */
export interface KinkMap {
  /** ReLU / Clip outputs with their bounds. */
  units: Array<{ name: string; lo: number; hi: number }>;
  /** Max-pool inputs with their geometry. */
  pools: Array<{ input: string; kernel: number[]; strides: number[]; pads: number[]; ceil: boolean }>;
}

const scalar = (inits: Map<string, TensorProto>, name: string | undefined): number | undefined => {
  const t = name ? inits.get(name) : undefined;
  if (!t) return undefined;
  return t.raw_data?.length ? new Float32Array(new Uint8Array(t.raw_data).buffer)[0] : t.float_data?.[0];
};

/** The kinks of a classifier's ONNX form (its ReLU, Clip and MaxPool nodes). */
export function kinkMap(c: Classifier): KinkMap {
  const g = decodeModel(c.onnx!.bytes).graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const units: KinkMap['units'] = [];
  const pools: KinkMap['pools'] = [];
  for (const n of g.node ?? []) {
    const a = new Attrs(n.attribute, n.name ?? '');
    if (n.op_type === 'Relu') units.push({ name: n.output![0]!, lo: 0, hi: Infinity });
    if (n.op_type === 'Clip') units.push({ name: n.output![0]!, lo: scalar(inits, n.input?.[1]) ?? a.float('min', -Infinity), hi: scalar(inits, n.input?.[2]) ?? a.float('max', Infinity) });
    if (n.op_type === 'MaxPool') {
      pools.push({ input: n.input![0]!, kernel: a.ints('kernel_shape')!, strides: a.ints('strides') ?? [1, 1], pads: a.ints('pads') ?? [0, 0, 0, 0], ceil: a.int('ceil_mode', 0) === 1 });
    }
  }
  return { units, pools };
}

/** The first maximum of each window of an NHWC [1, H, W, C] tensor, as flat input indices. */
function firstMaxima(x: Float32Array, [H, W, C]: number[], p: KinkMap['pools'][number]): Int32Array {
  const out = (n: number, k: number, s: number, b: number, e: number) => {
    const span = n + b + e - k;
    let o = (p.ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (p.ceil && (o - 1) * s >= n + b) o--;
    return o;
  };
  const [Ho, Wo] = [out(H!, p.kernel[0]!, p.strides[0]!, p.pads[0]!, p.pads[2]!), out(W!, p.kernel[1]!, p.strides[1]!, p.pads[1]!, p.pads[3]!)];
  const at = new Int32Array(Ho * Wo * C!);
  for (let i = 0; i < Ho; i++)
    for (let j = 0; j < Wo; j++)
      for (let c = 0; c < C!; c++) {
        let best = -Infinity;
        let where = -1;
        for (let u = 0; u < p.kernel[0]!; u++)
          for (let v = 0; v < p.kernel[1]!; v++) {
            const y = i * p.strides[0]! - p.pads[0]! + u;
            const xx = j * p.strides[1]! - p.pads[1]! + v;
            if (y < 0 || y >= H! || xx < 0 || xx >= W!) continue;
            const k = (y * W! + xx) * C! + c;
            if (x[k]! > best) [best, where] = [x[k]!, k];
          }
        at[(i * Wo + j) * C! + c] = where;
      }
  return at;
}

/** How many units and windows the two engines (tfjs tape, onnxruntime) put on different sides of a tie, for one image. */
export function tieCount(c: Classifier, x: tf.Tensor4D, kinks: KinkMap): number {
  const names = [...kinks.units.map((u) => u.name), ...kinks.pools.map((p) => p.input)];
  const ours = c.run(x, names);
  const theirs = c.nativeNet(x, names);
  try {
    let ties = 0;
    kinks.units.forEach((u, k) => {
      const side = (v: number) => (v <= u.lo ? 0 : v >= u.hi ? 2 : 1);
      const a = ours[k]!.dataSync();
      const b = theirs[k]!.dataSync();
      for (let i = 0; i < a.length; i++) if (side(a[i]!) !== side(b[i]!)) ties++;
    });
    kinks.pools.forEach((p, k) => {
      const t = ours[kinks.units.length + k]!;
      const a = firstMaxima(t.dataSync() as Float32Array, t.shape.slice(1), p);
      const b = firstMaxima(theirs[kinks.units.length + k]!.dataSync() as Float32Array, t.shape.slice(1), p);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) ties++;
    });
    return ties;
  } finally {
    tf.dispose([...ours, ...theirs]);
  }
}
