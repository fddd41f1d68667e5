import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../errors.js';
import type { ConvSpec, ExplicitPad } from '../fuse.js';
import { SMOOTH_MAXPOOL_EPS } from '../gradients/smooth-maxpool.js';
import { perGroup } from '../linearise.js';
import { Attrs } from './attrs.js';
import { tensorFromProto } from './tensors.js';

/**
 * ONNX operators as TensorFlow.js operations. ONNX images are NCHW; here every 4-D image tensor is kept NHWC
 * (tfjs's layout, and the layout patch-atlas reads activations in), converted once at load for weights and at
 * the few places where an operator's meaning depends on the memory order (Flatten, Reshape, Transpose, Gather…).
 * Each tensor's layout is fixed at load: 'nhwc' (a 4-D image tensor stored permuted) or 'plain' (ONNX order).
 */
export type Layout = 'nhwc' | 'plain';

export interface OpInput {
  /** Empty for an omitted optional input. */
  name: string;
  /** The value, when known at load (an initializer or a folded constant). */
  constant: tf.Tensor | undefined;
  layout: Layout;
}

export interface OpContext {
  op: string;
  /** Node name, or its first output where the node has none (for messages). */
  node: string;
  opset: number;
  attrs: Attrs;
  inputs: OpInput[];
}

/** A tangent rule: the derivative of output 0 along the inputs' tangents (undefined: no tangent on that input). */
export type JvpRule = (ins: Array<tf.Tensor | undefined>, tangents: Array<tf.Tensor | undefined>, groups: number, out: tf.Tensor) => tf.Tensor | null;

export interface OpImpl {
  /** All inputs in ONNX order (constants filled in, undefined where omitted) → outputs in ONNX order. */
  apply(ins: Array<tf.Tensor | undefined>): tf.Tensor[];
  layouts: Layout[];
  /** Absent where the operator has no forward-mode rule (the caller falls back to reverse mode). */
  jvp?: JvpRule;
  /** A convolution, run by fuse.ts's step (and fused with a following ReLU / ReLU6 where possible). */
  conv?: ConvSpec;
  /** The activation this op is, when it can be fused into a preceding convolution. */
  activation?: 'relu' | 'relu6';
  dispose?(): void;
}

type Builder = (c: OpContext) => OpImpl;

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** NHWC → NCHW. */
export function toNchw(t: tf.Tensor): tf.Tensor {
  return tf.transpose(t, TO_NCHW);
}

/** An ONNX-order tensor (rank ≤ 4, broadcast from the right as ONNX does) into the NHWC layout. */
export function toNhwc(t: tf.Tensor): tf.Tensor {
  if (t.rank === 0) return t;
  if (t.rank > 4) throw new Error(`cannot combine a rank-${t.rank} tensor with an image tensor`);
  const four = t.rank === 4 ? t : tf.reshape(t, [...new Array(4 - t.rank).fill(1), ...t.shape]);
  return tf.transpose(four, TO_NHWC);
}

/** An ONNX axis of a 4-D tensor → its axis in NHWC. */
function nhwcAxis(axis: number): number {
  return TO_NCHW[axis < 0 ? axis + 4 : axis]!;
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** The input in ONNX order whatever its layout. */
function plain(x: tf.Tensor, layout: Layout): tf.Tensor {
  return layout === 'nhwc' ? toNchw(x) : x;
}

function ints(t: tf.Tensor | undefined): number[] {
  return t ? Array.from(t.dataSync(), Number) : [];
}

function unsupported(c: OpContext, what: string): never {
  throw new EngineError('UNSUPPORTED_OP', `ONNX ${c.op} node "${c.node}" (opset ${c.opset}): ${what} is not supported`);
}

/** Pointwise f: the tangent is f'(x)·t, with f' from the registered gradient (kink conventions as tf.grad). */
function pointwise(f: (x: tf.Tensor) => tf.Tensor, layouts: Layout[] = ['plain']): OpImpl {
  return {
    apply: ([x]) => [f(x!)],
    layouts,
    jvp: ([x], [t], groups) => (t ? perGroup(t, tf.grad((v: tf.Tensor) => tf.sum(f(v)))(x!), groups) : null),
  };
}

/**
 * Linear in the data inputs (`data` lists their indices): the tangent is the op applied to the tangents, other
 * inputs (shapes, indices) kept. `affine` subtracts the op at zero (a bias, a pad value).
 */
function linearJvp(apply: OpImpl['apply'], data: number[], affine = false): JvpRule {
  return (ins, tans) => {
    const sub = ins.map((v, k) => (data.includes(k) ? tans[k] ?? (v ? tf.zerosLike(v) : undefined) : v));
    if (!data.some((k) => tans[k])) return null;
    const y = apply(sub)[0]!;
    if (!affine) return y;
    const zero = ins.map((v, k) => (data.includes(k) && v ? tf.zeros(v.rank === 0 ? [] : [1, ...v.shape.slice(1)]) : v));
    return tf.sub(y, apply(zero)[0]!);
  };
}

/** Elementwise with ONNX broadcasting: NHWC if any input is, with the others brought into NHWC. */
function broadcastInputs(c: OpContext): { layout: Layout; prep: (ins: Array<tf.Tensor | undefined>) => tf.Tensor[]; dispose: () => void } {
  const layout: Layout = c.inputs.some((i) => !i.constant && i.layout === 'nhwc') ? 'nhwc' : 'plain';
  if (layout === 'plain') return { layout, prep: (ins) => ins.filter((x): x is tf.Tensor => !!x), dispose: () => {} };
  const converted = c.inputs.map((i) => (i.constant ? tf.tidy(() => tf.keep(toNhwc(i.constant!))) : undefined));
  return {
    layout,
    prep: (ins) => ins.filter((x): x is tf.Tensor => !!x).map((x, k) => converted[k] ?? (c.inputs[k]!.layout === 'nhwc' ? x : toNhwc(x))),
    dispose: () => converted.forEach((t) => t?.dispose()),
  };
}

function binary(f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, kind: 'add' | 'mul' | 'div' | 'none'): Builder {
  return (c) => {
    const { layout, prep, dispose } = broadcastInputs(c);
    const apply: OpImpl['apply'] = (ins) => {
      const [a, b] = prep(ins);
      return [f(a!, b!)];
    };
    const runtime = c.inputs.map((i) => !i.constant);
    let jvp: JvpRule | undefined;
    // With a constant operand (x + b) the op is affine: its value at zero is subtracted.
    if (kind === 'add') jvp = linearJvp(apply, [0, 1], c.inputs.some((i) => i.constant));
    else if (kind === 'mul' || kind === 'div') {
      jvp = (ins, tans, groups) => {
        if (!tans[0] && !tans[1]) return null;
        const [a, b] = prep(ins);
        const [ta, tb] = prep(tans.map((t, k) => t ?? tf.zerosLike(ins[k]!)));
        // Constants broadcast like any tensor; runtime operands are per example, repeated over each tangent group.
        const scale = (t: tf.Tensor, x: tf.Tensor, k: number) => (runtime[k] ? perGroup(t, x, groups) : tf.mul(t, x));
        const terms: tf.Tensor[] = [];
        // d(a·b) = ta·b + a·tb;  d(a/b) = ta/b − tb·a/b²
        if (tans[0]) terms.push(scale(ta!, kind === 'mul' ? b! : tf.reciprocal(b!), 1));
        if (tans[1]) terms.push(scale(tb!, kind === 'mul' ? a! : tf.neg(tf.div(a!, tf.square(b!))), 0));
        return terms.length === 1 ? terms[0]! : tf.add(terms[0]!, terms[1]!);
      };
    }
    return { apply, layouts: [layout], ...(jvp ? { jvp } : {}), dispose };
  };
}

function convPads(c: OpContext, kernel: number[], strides: number[], dilations: number[]): ConvSpec['pad'] | 'SAME_UPPER' | 'SAME_LOWER' {
  const auto = c.attrs.string('auto_pad', 'NOTSET');
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') return auto;
  if (auto === 'VALID') return 'valid';
  const p = c.attrs.ints('pads') ?? [0, 0, 0, 0];
  const [top, left, bottom, right] = p as [number, number, number, number];
  if (p.every((v) => v === 0)) return 'valid';
  const symmetric = top === bottom && left === right && top === left;
  // For stride 1, symmetric (k − 1)/2 padding is exactly TF's 'same' (which lets fuse.ts use its adjoint filters).
  const same = strides.every((s) => s === 1) && kernel.every((k, i) => (k - 1) * dilations[i]! === 2 * p[i]!);
  if (symmetric && same) return 'same';
  if (symmetric) return top;
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/** Explicit NHWC padding for TF 'same' semantics with the upper / lower extra pixel, for a known input size. */
function autoPad(mode: 'SAME_UPPER' | 'SAME_LOWER', size: number[], kernel: number[], strides: number[], dilations: number[]): ExplicitPad {
  const pads = size.map((n, i) => {
    const out = Math.ceil(n / strides[i]!);
    const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - n);
    const small = Math.floor(total / 2);
    return (mode === 'SAME_UPPER' ? [small, total - small] : [total - small, small]) as [number, number];
  });
  return [[0, 0], pads[0]!, pads[1]!, [0, 0]];
}

const conv: Builder = (c) => {
  const [, w, b] = c.inputs;
  if (!w?.constant) unsupported(c, 'a weight that is not a constant');
  if (b?.name && !b.constant) unsupported(c, 'a bias that is not a constant');
  if (w.constant!.rank !== 4) unsupported(c, `a ${w.constant!.rank - 2}-D convolution`);
  const group = c.attrs.int('group', 1);
  const strides = (c.attrs.ints('strides') ?? [1, 1]) as [number, number];
  // tfjs has no gradient for dilated convolutions: a dilated kernel becomes a plain one with zeros between its taps.
  const W = dilate(w.constant!, (c.attrs.ints('dilations') ?? [1, 1]) as [number, number]);
  const dilations: [number, number] = [1, 1];
  const [M, perGroupIn, kh, kw] = W.shape as [number, number, number, number];
  const pad = convPads(c, [kh, kw], strides, dilations);
  const cin = perGroupIn * group;
  const depthwise = group > 1 && group === cin;
  // SAME_UPPER is TensorFlow's 'same' (the odd pixel at the end), which tfjs computes for any input size.
  if (pad === 'SAME_LOWER') unsupported(c, `auto_pad ${pad} (export with explicit pads)`);
  const spec = (pad === 'SAME_UPPER' ? 'same' : pad) as ConvSpec['pad'];
  if (group === 1 || depthwise) {
    const filter = tf.tidy(() =>
      depthwise
        ? // [M, 1, kh, kw] with M = cin·mult, output m = c·mult + k → [kh, kw, cin, mult]
          tf.reshape(tf.transpose(tf.reshape(W, [cin, M / cin, kh, kw]), [2, 3, 0, 1]), [kh, kw, cin, M / cin])
        : tf.transpose(W, [2, 3, 1, 0]),
    ) as tf.Tensor4D;
    const bias = b?.constant ? (tf.clone(b.constant) as tf.Tensor1D) : undefined;
    if (W !== w.constant) W.dispose();
    return { apply: () => unsupported(c, 'running a convolution outside its step'), layouts: ['nhwc'], conv: { filter, bias, depthwise, strides, pad: spec, dilations } };
  }
  // Grouped convolution: one convolution per group, concatenated along channels.
  const filters = tf.tidy(() => tf.split(tf.transpose(W, [2, 3, 1, 0]), group, 3)) as tf.Tensor4D[];
  if (W !== w.constant) W.dispose();
  const bias = b?.constant ? tf.clone(b.constant) : undefined;
  const apply: OpImpl['apply'] = ([xs]) => {
    const parts = tf.split(xs!, group, 3).map((p, g) => tf.conv2d(p as tf.Tensor4D, filters[g]!, strides, spec, 'NHWC', dilations));
    const y = tf.concat(parts, 3);
    return [bias ? tf.add(y, bias) : y];
  };
  return { apply, layouts: ['nhwc'], jvp: linearJvp(apply, [0], true), dispose: () => tf.dispose([...filters, ...(bias ? [bias] : [])]) };
};

/** [M, C, kh, kw] with dilation d → [M, C, (kh−1)d+1, (kw−1)d+1], zeros between the taps (owned by the caller). */
function dilate(W: tf.Tensor, [dh, dw]: [number, number]): tf.Tensor {
  if (dh === 1 && dw === 1) return W;
  const [M, C, kh, kw] = W.shape as [number, number, number, number];
  const src = W.dataSync();
  const KH = (kh - 1) * dh + 1;
  const KW = (kw - 1) * dw + 1;
  const out = new Float32Array(M * C * KH * KW);
  for (let mc = 0; mc < M * C; mc++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) out[(mc * KH + i * dh) * KW + j * dw] = src[(mc * kh + i) * kw + j]!;
  return tf.tensor4d(out, [M, C, KH, KW]);
}

/** Pool geometry: explicit NHWC padding including ceil_mode's extra bottom/right rows (PyTorch / ONNX rule). */
function poolPad(c: OpContext, xShape: number[], kernel: number[], strides: number[]): ExplicitPad {
  const auto = c.attrs.string('auto_pad', 'NOTSET');
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') return autoPad(auto, xShape.slice(1, 3), kernel, strides, [1, 1]);
  const p = auto === 'VALID' ? [0, 0, 0, 0] : c.attrs.ints('pads') ?? [0, 0, 0, 0];
  const ceil = c.attrs.int('ceil_mode', 0) === 1;
  const extra = [0, 1].map((i) => {
    const n = xShape[1 + i]!;
    const span = n + p[i]! + p[i + 2]! - kernel[i]!;
    if (!ceil) return 0;
    let out = Math.ceil(span / strides[i]!) + 1;
    // The last window must start inside the input or its leading padding.
    if ((out - 1) * strides[i]! >= n + p[i]!) out--;
    return Math.max(0, (out - 1) * strides[i]! + kernel[i]! - (n + p[i]! + p[i + 2]!));
  });
  return [[0, 0], [p[0]!, p[2]! + extra[0]!], [p[1]!, p[3]! + extra[1]!], [0, 0]];
}

const maxPool: Builder = (c) => {
  const kernel = c.attrs.ints('kernel_shape') ?? unsupported(c, 'a missing kernel_shape');
  if (kernel.length !== 2) unsupported(c, `${kernel.length}-D pooling`);
  const strides = c.attrs.ints('strides') ?? [1, 1];
  if ((c.attrs.ints('dilations') ?? [1, 1]).some((d) => d !== 1)) unsupported(c, 'dilated max-pooling');
  if (c.attrs.int('storage_order', 0) !== 0) unsupported(c, 'storage_order 1');
  const k = kernel as [number, number];
  const s = strides as [number, number];
  const apply: OpImpl['apply'] = ([x]) => [tf.maxPool(x as tf.Tensor4D, k, s, poolPad(c, x!.shape, kernel, strides))];
  /**
   * Forward-mode rule: the article's relaxation s(x) = A(x²) / (ε + A|x|) (A: average pool with the same window),
   * the same one 'smooth' max-pool gradients backpropagate through, so forward- and reverse-mode attribution agree.
   */
  const jvp: JvpRule = ([x], [t], groups) => {
    if (!t) return null;
    const pad = poolPad(c, x!.shape, kernel, strides);
    const A = (v: tf.Tensor) => tf.avgPool(v as tf.Tensor4D, k, s, pad);
    const xs = x!;
    const N = A(tf.square(xs));
    const D = tf.add(A(tf.abs(xs)), SMOOTH_MAXPOOL_EPS);
    const viaN = A(perGroup(t, tf.mul(xs, 2), groups));
    const viaD = A(perGroup(t, tf.sign(xs), groups));
    return tf.sub(perGroup(viaN, tf.reciprocal(D), groups), perGroup(viaD, tf.div(N, tf.square(D)), groups));
  };
  return { apply, layouts: ['nhwc'], jvp };
};

const averagePool: Builder = (c) => {
  const kernel = (c.attrs.ints('kernel_shape') ?? unsupported(c, 'a missing kernel_shape')) as [number, number];
  if (kernel.length !== 2) unsupported(c, `${kernel.length}-D pooling`);
  const strides = (c.attrs.ints('strides') ?? [1, 1]) as [number, number];
  const includePad = c.attrs.int('count_include_pad', 0) === 1;
  const p = c.attrs.ints('pads') ?? [0, 0, 0, 0];
  // sum over the window / the number of counted cells: the explicit pads count when count_include_pad is set,
  // ceil_mode's overhang never does (as ONNX and PyTorch define it).
  const apply: OpImpl['apply'] = ([x]) => {
    const pad = poolPad(c, x!.shape, kernel, strides);
    const sums = tf.avgPool(tf.pad(x!, pad) as tf.Tensor4D, kernel, strides, 'valid');
    const [, H, W] = x!.shape as number[];
    const counted = includePad ? tf.pad(tf.ones([1, H! + p[0]! + p[2]!, W! + p[1]! + p[3]!, 1]), [[0, 0], [0, pad[1][1] - p[2]!], [0, pad[2][1] - p[3]!], [0, 0]]) : tf.pad(tf.ones([1, H!, W!, 1]), pad);
    const share = tf.avgPool(counted as tf.Tensor4D, kernel, strides, 'valid');
    return [tf.div(sums, share)];
  };
  return { apply, layouts: ['nhwc'], jvp: linearJvp(apply, [0]) };
};

/** ONNX LRN: x / (bias + α/n · Σ x² over a channel window)^β, the window sum as a matmul with a band matrix. */
const lrn: Builder = (c) => {
  const size = c.attrs.int('size', 0);
  if (size < 1) unsupported(c, 'a missing size');
  const alpha = c.attrs.float('alpha', 1e-4) / size;
  const beta = c.attrs.float('beta', 0.75);
  const bias = c.attrs.float('bias', 1);
  const bands = new Map<number, tf.Tensor2D>();
  const band = (C: number) => {
    let m = bands.get(C);
    if (!m) {
      const v = new Float32Array(C * C);
      const lo = Math.floor((size - 1) / 2);
      const hi = Math.ceil((size - 1) / 2);
      for (let out = 0; out < C; out++) for (let i = Math.max(0, out - lo); i <= Math.min(C - 1, out + hi); i++) v[i * C + out] = 1;
      m = tf.keep(tf.tensor2d(v, [C, C]));
      bands.set(C, m);
    }
    return m;
  };
  const windowSum = (v: tf.Tensor) => {
    const C = v.shape[3]!;
    return tf.reshape(tf.matMul(tf.reshape(v, [-1, C]), band(C)), v.shape);
  };
  const scale = (x: tf.Tensor) => tf.add(tf.mul(windowSum(tf.square(x)), alpha), bias);
  return {
    apply: ([x]) => [tf.mul(x!, tf.pow(scale(x!), -beta))],
    layouts: ['nhwc'],
    // dy = t·s^−β − β·x·s^(−β−1)·α·W(2x·t)
    jvp: ([x], [t], groups) => {
      if (!t) return null;
      const s = scale(x!);
      const first = perGroup(t, tf.pow(s, -beta), groups);
      const inner = windowSum(perGroup(t, tf.mul(x!, 2 * alpha), groups));
      return tf.sub(first, perGroup(inner, tf.mul(tf.mul(x!, beta), tf.pow(s, -beta - 1)), groups));
    },
    dispose: () => bands.forEach((m) => m.dispose()),
  };
};

const batchNorm: Builder = (c) => {
  const [x, scale, bias, mean, variance] = c.inputs;
  if (![scale, bias, mean, variance].every((i) => i?.constant)) unsupported(c, 'statistics that are not constants (training mode)');
  const eps = c.attrs.float('epsilon', 1e-5);
  const { a, b } = tf.tidy(() => {
    const a = tf.mul(scale!.constant!, tf.rsqrt(tf.add(variance!.constant!, eps)));
    return { a: tf.keep(a), b: tf.keep(tf.sub(bias!.constant!, tf.mul(mean!.constant!, a))) };
  });
  const apply: OpImpl['apply'] = ([v]) => {
    // NHWC: channels last. ONNX order [N, C, ...]: channels second, so reshape to [C, 1, ...].
    const shape = x!.layout === 'nhwc' || v!.rank === 2 ? [-1] : [-1, ...new Array(v!.rank - 2).fill(1)];
    return [tf.add(tf.mul(v!, tf.reshape(a, shape)), tf.reshape(b, shape))];
  };
  return { apply, layouts: [x!.layout], jvp: linearJvp(apply, [0], true), dispose: () => tf.dispose([a, b]) };
};

const concat: Builder = (c) => {
  const nhwc = c.inputs.some((i) => !i.constant && i.layout === 'nhwc');
  const axis = c.attrs.int('axis', 1);
  const apply: OpImpl['apply'] = (ins) => {
    const xs = ins.filter((x): x is tf.Tensor => !!x);
    if (!nhwc) return [tf.concat(xs, normAxis(axis, xs[0]!.rank))];
    return [tf.concat(xs.map((x, k) => (c.inputs[k]!.layout === 'nhwc' && !c.inputs[k]!.constant ? x : toNhwc(x))), nhwcAxis(axis))];
  };
  return { apply, layouts: [nhwc ? 'nhwc' : 'plain'], jvp: linearJvp(apply, c.inputs.map((_, k) => k)) };
};

/** Reshape to `shape` (ONNX order), with 0 copying the input's dimension (unless allowzero) and −1 inferred. */
function reshapeTo(x: tf.Tensor, shape: number[], allowZero: boolean): tf.Tensor {
  const target = shape.map((d, i) => (d === 0 && !allowZero ? x.shape[i]! : d));
  return tf.reshape(x, target);
}

/** Output 0 has the primal's shape with the batch (first) dimension taken from the tangent (in ONNX order). */
const reshapeLikeOut = (layout: Layout): JvpRule => (_ins, [t], _g, out) => (t ? tf.reshape(plain(t, layout), [t.shape[0]!, ...out.shape.slice(1)]) : null);

const reshape: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const allowZero = c.attrs.int('allowzero', 0) === 1;
  const constShape = c.inputs[1]?.constant ? ints(c.inputs[1].constant) : undefined;
  return {
    apply: ([x, s]) => [reshapeTo(plain(x!, layout), constShape ?? ints(s), allowZero)],
    layouts: ['plain'],
    jvp: reshapeLikeOut(layout),
  };
};

const flatten: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const axis = c.attrs.int('axis', 1);
  const apply: OpImpl['apply'] = ([x]) => {
    const a = normAxis(axis, x!.rank);
    // [N,1,1,C] is the same in both orders: no transpose needed after a global pool.
    const v = layout === 'nhwc' && !(x!.shape[1] === 1 && x!.shape[2] === 1) ? toNchw(x!) : x!;
    const lead = v.shape.slice(0, a).reduce((p, q) => p * q, 1);
    return [tf.reshape(v, [lead, v.size / lead])];
  };
  return { apply, layouts: ['plain'], jvp: axis === 1 ? linearJvp(apply, [0]) : reshapeLikeOut(layout) };
};

const transpose: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const perm = c.attrs.ints('perm');
  const apply: OpImpl['apply'] = ([x]) => {
    const p = perm ?? [...x!.shape.keys()].reverse();
    // Composed with NHWC → NCHW, one transpose.
    return [tf.transpose(x!, layout === 'nhwc' ? p.map((i) => TO_NCHW[i]!) : p)];
  };
  return { apply, layouts: ['plain'], jvp: linearJvp(apply, [0]) };
};

const gemm: Builder = (c) => {
  const alpha = c.attrs.float('alpha', 1);
  const beta = c.attrs.float('beta', 1);
  const transA = c.attrs.int('transA', 0) === 1;
  const transB = c.attrs.int('transB', 0) === 1;
  const [A, B] = c.inputs;
  // A constant weight stored transposed (transB: how exporters write a classifier) is transposed once here: a
  // product with a transposed operand costs a transpose every call (GoogLeNet's classifier on wasm, batch 8: 7.2 ms
  // that way, 0.4 ms plain; engine/gradients/kernel-overrides.ts).
  const bT = transB && B?.constant ? tf.transpose(B.constant) : undefined;
  const apply: OpImpl['apply'] = ([a, b, bias]) => {
    let y = tf.matMul(plain(a!, A!.layout) as tf.Tensor2D, (bT ?? b) as tf.Tensor2D, transA, transB && !bT);
    if (alpha !== 1) y = tf.mul(y, alpha);
    if (bias) y = tf.add(y, beta === 1 ? bias : tf.mul(bias, beta));
    return [y];
  };
  const jvp = B?.constant ? linearJvp(apply, [0], true) : undefined;
  return { apply, layouts: ['plain'], ...(jvp ? { jvp } : {}), ...(bT ? { dispose: () => bT.dispose() } : {}) };
};

const matMul: Builder = (c) => {
  const [A, B] = c.inputs;
  const apply: OpImpl['apply'] = ([a, b]) => [tf.matMul(plain(a!, A!.layout), plain(b!, B!.layout))];
  const data = [A!.constant ? -1 : 0, B!.constant ? -1 : 1].filter((k) => k >= 0);
  return { apply, layouts: ['plain'], ...(data.length === 1 ? { jvp: linearJvp(apply, data) } : {}) };
};

const softmaxOf = (f: (x: tf.Tensor) => tf.Tensor): Builder => (c) => {
  const layout = c.inputs[0]!.layout;
  const legacy = c.opset < 13;
  const axis = c.attrs.int('axis', legacy ? 1 : -1);
  return {
    apply: ([x]) => {
      const v = plain(x!, layout);
      const a = normAxis(axis, v.rank);
      if (legacy) {
        // Opset < 13: the input is coerced to 2-D at `axis` and normalised over everything after it.
        const lead = v.shape.slice(0, a).reduce((p, q) => p * q, 1);
        return [tf.reshape(f(tf.reshape(v, [lead, v.size / lead])), v.shape)];
      }
      if (a === v.rank - 1) return [f(v)];
      const perm = [...v.shape.keys()];
      [perm[a], perm[v.rank - 1]] = [perm[v.rank - 1]!, perm[a]!];
      return [tf.transpose(f(tf.transpose(v, perm)), perm)];
    },
    layouts: ['plain'],
  };
};
const softmax = softmaxOf((x) => tf.softmax(x));
const logSoftmax = softmaxOf((x) => tf.logSoftmax(x));

const pass: Builder = (c) => {
  const apply: OpImpl['apply'] = ([x]) => [x!.clone()];
  return { apply, layouts: [c.inputs[0]!.layout], jvp: linearJvp(apply, [0]) };
};

const pad: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const mode = c.attrs.string('mode', 'constant');
  if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') unsupported(c, `mode "${mode}"`);
  if (c.inputs[3]?.name) unsupported(c, 'the axes input');
  const apply: OpImpl['apply'] = ([x, p, v]) => {
    const pads = c.opset < 11 ? c.attrs.ints('pads') ?? [] : ints(p);
    const value = c.opset < 11 ? c.attrs.float('value', 0) : v ? v.dataSync()[0]! : 0;
    const r = pads.length / 2;
    let pairs = Array.from({ length: r }, (_, i) => [pads[i]!, pads[i + r]!] as [number, number]);
    if (layout === 'nhwc') pairs = TO_NHWC.map((i) => pairs[i]!);
    if (pairs.some(([a, b]) => a < 0 || b < 0)) unsupported(c, 'negative pads (cropping)');
    if (mode === 'constant') return [tf.pad(x!, pairs, value)];
    return [slicePad(x!, pairs, mode)];
  };
  return { apply, layouts: [layout], jvp: linearJvp(apply, [0], true) };
};

/**
 * Reflect / edge padding from slices of the input, one axis at a time. (tf.mirrorPad's gradient keeps only the
 * centre and drops what the reflected border contributes, so it is not used.)
 */
function slicePad(x: tf.Tensor, pairs: Array<[number, number]>, mode: 'reflect' | 'edge'): tf.Tensor {
  let y = x;
  pairs.forEach(([before, after], axis) => {
    if (!before && !after) return;
    const n = y.shape[axis]!;
    const take = (start: number, count: number) => tf.slice(y, y.shape.map((_, i) => (i === axis ? start : 0)), y.shape.map((d, i) => (i === axis ? count : d)));
    const parts: tf.Tensor[] = [];
    if (mode === 'reflect') {
      if (before >= n || after >= n) throw new Error(`reflect padding of ${Math.max(before, after)} needs more than ${n} values along axis ${axis}`);
      if (before) parts.push(tf.reverse(take(1, before), axis));
      parts.push(y);
      if (after) parts.push(tf.reverse(take(n - 1 - after, after), axis));
    } else {
      const first = take(0, 1);
      const last = take(n - 1, 1);
      parts.push(...new Array<tf.Tensor>(before).fill(first), y, ...new Array<tf.Tensor>(after).fill(last));
    }
    y = tf.concat(parts, axis);
  });
  return y;
}

function reduce(kind: 'mean' | 'sum' | 'max' | 'min'): Builder {
  return (c) => {
    const layout = c.inputs[0]!.layout;
    const keep = c.attrs.int('keepdims', 1) === 1;
    const axesFromInput = kind === 'sum' ? c.opset >= 13 : c.opset >= 18;
    const noopEmpty = c.attrs.int('noop_with_empty_axes', 0) === 1;
    const nhwc = layout === 'nhwc' && keep;
    const f = { mean: tf.mean, sum: tf.sum, max: tf.max, min: tf.min }[kind];
    const apply: OpImpl['apply'] = ([x, a]) => {
      const axes = axesFromInput ? ints(a) : c.attrs.ints('axes') ?? [];
      const v = nhwc ? x! : plain(x!, layout);
      if (axes.length === 0 && noopEmpty) return [v.clone()];
      const list = axes.length ? axes.map((ax) => (nhwc ? nhwcAxis(ax) : normAxis(ax, v.rank))) : [...v.shape.keys()];
      return [f(v, list, keep)];
    };
    const linear = kind === 'mean' || kind === 'sum';
    return { apply, layouts: [nhwc ? 'nhwc' : 'plain'], ...(linear ? { jvp: linearJvp(apply, [0]) } : {}) };
  };
}

const globalPool = (kind: 'mean' | 'max'): Builder => (c) => {
  const apply: OpImpl['apply'] = ([x]) => [kind === 'mean' ? tf.mean(x!, [1, 2], true) : tf.max(x!, [1, 2], true)];
  if (c.inputs[0]!.layout !== 'nhwc') unsupported(c, 'a non-image input');
  return { apply, layouts: ['nhwc'], ...(kind === 'mean' ? { jvp: linearJvp(apply, [0]) } : {}) };
};

const noTangent: JvpRule = () => null;

const shape: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const start = c.attrs.int('start', 0);
  const end = c.attrs.has('end') ? c.attrs.int('end', 0) : undefined;
  return {
    apply: ([x]) => {
      const s = layout === 'nhwc' ? TO_NCHW.map((i) => x!.shape[i]!) : x!.shape;
      return [tf.tensor1d(s.slice(start, end), 'int32')];
    },
    layouts: ['plain'],
    jvp: noTangent,
  };
};

const gather: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const axis = c.attrs.int('axis', 0);
  const apply: OpImpl['apply'] = ([x, i]) => {
    const v = plain(x!, layout);
    const a = normAxis(axis, v.rank);
    const n = v.shape[a]!;
    const idx = Array.from(i!.dataSync(), (k) => (k < 0 ? k + n : k));
    const g = tf.gather(v, tf.tensor(idx, i!.shape, 'int32'), a);
    return [g];
  };
  return { apply, layouts: ['plain'], jvp: linearJvp(apply, [0]) };
};

function axesOf(c: OpContext, a: tf.Tensor | undefined): number[] {
  return c.opset >= 13 ? ints(a) : c.attrs.ints('axes') ?? [];
}

const unsqueeze: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  return {
    apply: ([x, a]) => {
      const v = plain(x!, layout);
      const axes = axesOf(c, a);
      const rank = v.rank + axes.length;
      const set = new Set(axes.map((ax) => normAxis(ax, rank)));
      const out: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : v.shape[k++]!);
      return [tf.reshape(v, out)];
    },
    layouts: ['plain'],
    jvp: reshapeLikeOut(layout),
  };
};

const squeeze: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  return {
    apply: ([x, a]) => {
      const v = plain(x!, layout);
      const axes = axesOf(c, a).map((ax) => normAxis(ax, v.rank));
      return [axes.length ? tf.squeeze(v, axes) : tf.squeeze(v)];
    },
    layouts: ['plain'],
    jvp: reshapeLikeOut(layout),
  };
};

const slice: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const apply: OpImpl['apply'] = ([x, s, e, a, st]) => {
    const v = plain(x!, layout);
    const starts = c.opset < 10 ? c.attrs.ints('starts') ?? [] : ints(s);
    const ends = c.opset < 10 ? c.attrs.ints('ends') ?? [] : ints(e);
    const axes = (c.opset < 10 ? c.attrs.ints('axes') : a ? ints(a) : undefined) ?? starts.map((_, i) => i);
    const steps = st ? ints(st) : starts.map(() => 1);
    // Reverse where the step is negative, then slice with positive steps (wasm's stridedSlice mangles int32).
    const begin = v.shape.map(() => 0);
    const size = [...v.shape];
    const stride = v.shape.map(() => 1);
    const reversed: number[] = [];
    axes.forEach((ax0, i) => {
      const ax = normAxis(ax0, v.rank);
      const n = v.shape[ax]!;
      let step = steps[i]!;
      const clampIdx = (k: number, lo: number, hi: number) => Math.min(Math.max(k < -n ? lo : k < 0 ? k + n : k, lo), hi);
      let from: number;
      let to: number;
      if (step > 0) {
        from = clampIdx(starts[i]!, 0, n);
        to = clampIdx(ends[i]!, 0, n);
      } else {
        // In the reversed axis, index k is n − 1 − k; the exclusive end −1 becomes n.
        from = n - 1 - clampIdx(starts[i]!, -1, n - 1);
        to = n - 1 - (ends[i]! < -n ? -1 : clampIdx(ends[i]!, -1, n - 1));
        step = -step;
        reversed.push(ax);
      }
      begin[ax] = from;
      size[ax] = Math.max(0, Math.ceil((to - from) / step));
      stride[ax] = step;
    });
    let y = reversed.length ? tf.reverse(v, reversed) : v;
    y = tf.slice(y, begin, size.map((n, ax) => (stride[ax] === 1 ? n : v.shape[ax]! - begin[ax]!)));
    stride.forEach((st, ax) => {
      if (st !== 1) y = tf.gather(y, tf.tensor1d(Array.from({ length: size[ax]! }, (_, k) => k * st), 'int32'), ax);
    });
    return [y];
  };
  return { apply, layouts: ['plain'], jvp: linearJvp(apply, [0]) };
};

const DTYPES: Record<number, tf.DataType> = { 1: 'float32', 10: 'float32', 11: 'float32', 2: 'int32', 3: 'int32', 5: 'int32', 6: 'int32', 7: 'int32', 12: 'int32', 13: 'int32', 9: 'bool' };

const cast: Builder = (c) => {
  const to = DTYPES[c.attrs.int('to', 1)] ?? unsupported(c, `casting to data type ${c.attrs.int('to', 1)}`);
  const layout = c.inputs[0]!.layout;
  const apply: OpImpl['apply'] = ([x]) => [x!.dtype === to ? x!.clone() : tf.cast(x!, to)];
  return { apply, layouts: [layout], ...(to === 'float32' ? { jvp: linearJvp(apply, [0]) } : { jvp: noTangent }) };
};

const constant: Builder = (c) => {
  const t = c.attrs.tensor('value');
  const value = (): tf.Tensor => {
    if (t) return tensorFromProto(t, undefined);
    if (c.attrs.has('value_float')) return tf.scalar(c.attrs.float('value_float', 0));
    if (c.attrs.has('value_floats')) return tf.tensor1d(c.attrs.floats('value_floats')!);
    if (c.attrs.has('value_int')) return tf.scalar(c.attrs.int('value_int', 0), 'int32');
    if (c.attrs.has('value_ints')) return tf.tensor1d(c.attrs.ints('value_ints')!, 'int32');
    return unsupported(c, 'a value that is not a tensor, float(s) or int(s)');
  };
  return { apply: () => [value()], layouts: ['plain'] };
};

const constantOfShape: Builder = (c) => {
  const t = c.attrs.tensor('value');
  return {
    apply: ([s]) => {
      const v = t ? tensorFromProto(t, undefined) : tf.scalar(0);
      const filled = tf.fill(ints(s), v.dataSync()[0]!, v.dtype);
      v.dispose();
      return [filled];
    },
    layouts: ['plain'],
    jvp: noTangent,
  };
};

const expand: Builder = (c) => {
  const layout = c.inputs[0]!.layout;
  const apply: OpImpl['apply'] = ([x, s]) => {
    const v = plain(x!, layout);
    const target = ints(s);
    const rank = Math.max(v.rank, target.length);
    const a = [...new Array(rank - v.rank).fill(1), ...v.shape];
    const b = [...new Array(rank - target.length).fill(1), ...target];
    return [tf.broadcastTo(tf.reshape(v, a), a.map((d, i) => Math.max(d, b[i]!)))];
  };
  return { apply, layouts: ['plain'], jvp: linearJvp(apply, [0]) };
};

const clip: Builder = (c) => {
  const legacy = c.opset < 11;
  const lo = legacy ? c.attrs.float('min', -Infinity) : c.inputs[1]?.name ? constantNumber(c, 1) : -Infinity;
  const hi = legacy ? c.attrs.float('max', Infinity) : c.inputs[2]?.name ? constantNumber(c, 2) : Infinity;
  const impl = pointwise((x) => tf.clipByValue(x, lo, hi), [c.inputs[0]!.layout]);
  return { ...impl, ...(lo === 0 && hi === 6 ? { activation: 'relu6' as const } : lo === 0 && hi === Infinity ? { activation: 'relu' as const } : {}) };
};

function constantNumber(c: OpContext, k: number): number {
  const t = c.inputs[k]!.constant ?? unsupported(c, `input ${k} that is not a constant`);
  return t.dataSync()[0]!;
}

/** A pointwise operator keeping its input's layout. */
const unary = (f: (x: tf.Tensor, c: OpContext) => tf.Tensor): Builder => (c) => pointwise((x) => f(x, c), [c.inputs[0]!.layout]);

const hardSigmoid = (x: tf.Tensor, alpha: number, beta: number) => tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);

const BUILDERS: Record<string, Builder> = {
  Conv: conv,
  BatchNormalization: batchNorm,
  Relu: (c) => ({ ...pointwise(tf.relu, [c.inputs[0]!.layout]), activation: 'relu' }),
  Clip: clip,
  LeakyRelu: unary((x, c) => tf.leakyRelu(x, c.attrs.float('alpha', 0.01))),
  Sigmoid: unary((x) => tf.sigmoid(x)),
  Tanh: unary((x) => tf.tanh(x)),
  HardSigmoid: unary((x, c) => hardSigmoid(x, c.attrs.float('alpha', 0.2), c.attrs.float('beta', 0.5))),
  HardSwish: unary((x) => tf.mul(x, hardSigmoid(x, 1 / 6, 0.5))),
  Elu: unary((x, c) => {
    const a = c.attrs.float('alpha', 1);
    // (1 − α)·relu(x) + α·elu(x): x above 0, α(eˣ − 1) below, and differentiable on the tape (a where() over a
    // compare is not: tfjs then asks the compare for a gradient).
    return a === 1 ? tf.elu(x) : tf.add(tf.mul(tf.relu(x), 1 - a), tf.mul(tf.elu(x), a));
  }),
  Softplus: unary((x) => tf.softplus(x)),
  Exp: unary((x) => tf.exp(x)),
  Log: unary((x) => tf.log(x)),
  Sqrt: unary((x) => tf.sqrt(x)),
  Neg: unary((x) => tf.neg(x)),
  Abs: unary((x) => tf.abs(x)),
  Reciprocal: unary((x) => tf.reciprocal(x)),
  Erf: unary((x) => tf.erf(x)),
  Add: binary(tf.add, 'add'),
  Sub: binary(tf.sub, 'add'),
  Mul: binary(tf.mul, 'mul'),
  Div: binary(tf.div, 'div'),
  Pow: binary(tf.pow, 'none'),
  Max: binary(tf.maximum, 'none'),
  Min: binary(tf.minimum, 'none'),
  MatMul: matMul,
  Gemm: gemm,
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalPool('mean'),
  GlobalMaxPool: globalPool('max'),
  LRN: lrn,
  Concat: concat,
  Flatten: flatten,
  Reshape: reshape,
  Transpose: transpose,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  Dropout: pass,
  Identity: pass,
  Pad: pad,
  ReduceMean: reduce('mean'),
  ReduceSum: reduce('sum'),
  ReduceMax: reduce('max'),
  ReduceMin: reduce('min'),
  Shape: shape,
  Gather: gather,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Slice: slice,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Cast: cast,
  Expand: expand,
};

/** Operators whose first input must be an image tensor in NHWC; a plain 4-D input is converted before them. */
export const IMAGE_INPUT_OPS = new Set(['Conv', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LRN']);

export const SUPPORTED_OPS = Object.keys(BUILDERS).sort();

/** The implementation of one node; an operator outside the list is one line naming it, the node and the opset. */
export function buildOp(c: OpContext, domain: string | undefined): OpImpl {
  const b = domain && domain !== 'ai.onnx' ? undefined : BUILDERS[c.op];
  if (!b)
    throw new EngineError(
      'UNSUPPORTED_OP',
      `ONNX operator ${domain && domain !== 'ai.onnx' ? `${domain}.` : ''}${c.op} (node "${c.node}", opset ${c.opset}) is not supported`,
      `supported: ${SUPPORTED_OPS.join(', ')}`,
    );
  return b(c);
}
