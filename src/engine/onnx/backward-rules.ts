import { EngineError } from '../errors.js';
import { SMOOTH_MAXPOOL_EPS } from '../gradients/smooth-maxpool.js';
import { attr, AttrType, DataType, floatTensor, int64Tensor, type AttributeProto, type NodeProto, type TensorProto } from './proto.js';
import type { Attrs } from './attrs.js';

/**
 * The rules of backward.ts: each operator's vector-Jacobian product written as ONNX operators, added to the graph by
 * a Builder. A rule reads the node, its static shapes and the incoming gradient `dy`, and adds the gradient of each
 * input on the differentiated path (`add`); it throws UNSUPPORTED_OP, naming the node and why, where it cannot.
 */

export class Builder {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private k = 0;
  constructor(readonly shapes: Map<string, number[]>) {}
  fresh(base: string): string {
    return `${base}/${this.k++}`;
  }
  node(op_type: string, input: string[], output: string | string[], attribute: AttributeProto[] = []): string {
    const outs = Array.isArray(output) ? output : [output];
    this.nodes.push({ op_type, input, output: outs, name: outs[0], attribute });
    return outs[0]!;
  }
  f32(base: string, v: ArrayLike<number>, dims: number[]): string {
    const name = this.fresh(base);
    this.inits.push(floatTensor(name, v, dims));
    return name;
  }
  i64(base: string, v: number[]): string {
    const name = this.fresh(base);
    this.inits.push(int64Tensor(name, v));
    return name;
  }
  /** dy summed over the axes where `to` was broadcast against `from`, reshaped to `to` (ONNX broadcasting, from the right). */
  unbroadcast(dy: string, from: number[], to: number[], base: string): string {
    const r = from.length;
    const padded = [...Array(r - to.length).fill(1), ...to];
    const axes = padded.flatMap((d, i) => (d === 1 && from[i] !== 1 ? [i] : []));
    // The batch axis of a per-example tensor keeps its size (shapes here are read at batch 1).
    let g = dy;
    if (axes.length) g = this.node('ReduceSum', [dy, this.i64(`${base}/axes`, axes)], this.fresh(`${base}/sum`), [int('keepdims', 1)]);
    if (to.length !== r) g = this.node('Reshape', [g, this.i64(`${base}/shape`, to.length ? to : [])], this.fresh(`${base}/shape`));
    return g;
  }
}

export interface RuleArgs {
  n: NodeProto;
  a: Attrs;
  dy: string;
  ins: string[];
  out: string;
  xs: number[] | undefined;
  ys: number[];
  onPath: (i: number) => boolean;
  add: (t: string, g: string) => void;
  b: Builder;
  floatConst: (name: string) => Float32Array | undefined;
  intConst: (name: string) => number[] | undefined;
  constDims: (name: string) => number[] | undefined;
  shapes: Map<string, number[]>;
  /** onnxruntime will run the graph with its NCHWc layout ('all': no max-pool on the path), see `nchwcMask`. */
  nchwc: boolean;
  /** Max-pools backpropagate through the smooth relaxation (BackwardSpec.maxPool). */
  smooth: boolean;
}
type Rule = (r: RuleArgs) => void;

const { int, ints, float, string: str } = attr;

/**
 * The shape with the batch left to the runtime (every other dimension is static): 0 copies the gradient's first
 * dimension, which keeps the batch's symbolic name in onnxruntime's shape inference (−1 would make it anonymous,
 * and two shapes it cannot prove equal stay out of its NCHWc layout); −1 where that first dimension may not be the
 * batch.
 */
const batchFree = (s: number[], keepsBatch = true) => [keepsBatch ? 0 : -1, ...s.slice(1)];

const unsupported = (r: RuleArgs, why: string): never => {
  throw new EngineError('UNSUPPORTED_OP', `no backward rule for ${r.n.op_type} (node ${r.n.name || r.out}): ${why}`);
};

/** Explicit [top, left, bottom, right] pads of a conv or pool node (auto_pad resolved for the static sizes). */
function padsOf(r: RuleArgs, kernel: number[], strides: number[], dil: number[]): number[] {
  const auto = r.a.string('auto_pad', 'NOTSET');
  if (auto === 'VALID') return [0, 0, 0, 0];
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    const p = [0, 1].map((i) => {
      const n = r.xs![2 + i]!;
      const total = Math.max(0, (Math.ceil(n / strides[i]!) - 1) * strides[i]! + (kernel[i]! - 1) * dil[i]! + 1 - n);
      const small = Math.floor(total / 2);
      return auto === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
    });
    return [p[0]![0]!, p[1]![0]!, p[0]![1]!, p[1]![1]!];
  }
  return r.a.ints('pads') ?? [0, 0, 0, 0];
}

/** ConvTranspose with the conv's geometry, its output padded to exactly the input's size. */
function convTranspose(r: RuleArgs, dy: string, w: string, kernel: number[], strides: number[], dil: number[], pads: number[], group: number, base: string): string {
  const xs = r.xs!;
  const outPad = [0, 1].map((i) => xs[2 + i]! - ((r.ys[2 + i]! - 1) * strides[i]! - pads[i]! - pads[i + 2]! + dil[i]! * (kernel[i]! - 1) + 1));
  return r.b.node('ConvTranspose', [dy, w], r.b.fresh(base), [
    ints('kernel_shape', kernel), ints('strides', strides), ints('dilations', dil), ints('pads', pads), int('group', group), ints('output_padding', outPad),
  ]);
}

/**
 * dy where `cond` holds, else 0. Bool compares and Where: on MobileNet's backward graph (onnxruntime 1.23, batch 8)
 * they cost half of float masks (Sub, Mul, Sign), and a bool → float Cast cost more than the convolutions.
 */
const mask = (r: RuleArgs, cond: string, base: string): string => r.b.node('Where', [cond, r.dy, r.b.f32(`${base}/zero`, [0], [])], r.b.fresh(base));

/**
 * 2^120: 2^120·|y − bound| ≥ 1 for every float y on the inside of a bound (one step inside a bound b ≠ 0 is
 * |b|·2^-24 or more; for b = 0 every y ≥ 2^-120), and bound·2^120 stays finite for |bound| < 256 (MASK_BOUND).
 * A power of two, so the products are exact.
 */
const MASK_SCALE = 2 ** 120;
const MASK_BOUND = 64;

/**
 * dy where lo < y < hi (either bound optional), for a 4-D y under onnxruntime's NCHWc layout: each bound's mask is a
 * depthwise 1×1 conv of y (weight ±2^120, bias ∓bound·2^120) fused with Clip(0, 1), i.e. 1 inside and 0 on or past
 * the bound, exactly; the masks multiply dy. Convs, and products of tensors of proven equal shape, stay in the
 * NCHWc layout, where the compares and Where of `mask` each need the tensors reordered out and back: MobileNet's
 * input gradient (batch 8, the session alone) 85–88 against 66–69 images/s, the gradients bit for bit the same.
 * Undefined where this does not apply (then `mask`).
 */
function nchwcMask(r: RuleArgs, y: string, lo: number | undefined, hi: number | undefined): string | undefined {
  const C = r.ys[1]!;
  if (!r.nchwc || r.ys.length !== 4 || [lo, hi].some((v) => v !== undefined && !(Math.abs(v) < MASK_BOUND))) return undefined;
  const bound = (sign: 1 | -1, at: number, tag: string) => {
    const z = r.b.node('Conv', [y, r.b.f32(`grad/${y}/${tag}/w`, new Float32Array(C).fill(sign * MASK_SCALE), [C, 1, 1, 1]), r.b.f32(`grad/${y}/${tag}/b`, new Float32Array(C).fill(-sign * at * MASK_SCALE), [C])], r.b.fresh(`grad/${y}/${tag}`), [
      ints('kernel_shape', [1, 1]),
      int('group', C),
    ]);
    return r.b.node('Clip', [z, r.b.f32(`grad/${y}/${tag}/0`, [0], []), r.b.f32(`grad/${y}/${tag}/1`, [1], [])], r.b.fresh(`grad/${y}/${tag}/mask`));
  };
  const masks = [...(lo !== undefined ? [bound(1, lo, 'lo')] : []), ...(hi !== undefined ? [bound(-1, hi, 'hi')] : [])];
  // The masks' product first: where dy arrives in plain layout (from a strided layer's ConvTranspose), onnxruntime then
  // reorders one mask for the last product instead of two. Products of 0/1 masks are exact in any order.
  const both = masks.length === 2 ? r.b.node('Mul', masks, r.b.fresh(`grad/${y}/mask`)) : masks[0]!;
  return r.b.node('Mul', [r.dy, both], r.b.fresh(`grad/${y}/masked`));
}

/**
 * Aᵀ(dy) for A the average pool of this geometry (ceil_mode's overhang, which no window counts, included): dy over
 * each window's count, spread back over the window by a ConvTranspose with a ones filter (one group per channel).
 */
function poolAdjoint(r: RuleArgs, dy: string, kernel: number[], strides: number[], pads: number[], includePad: boolean, base: string): string {
  const xs = r.xs!;
  const C = xs[1]!;
  const [Ho, Wo] = [r.ys[2]!, r.ys[3]!];
  // ceil_mode: the last windows hang past the bottom/right padding; count that overhang as more end padding.
  const end = [0, 1].map((i) => pads[i + 2]! + Math.max(0, ((i ? Wo : Ho) - 1) * strides[i]! + kernel[i]! - (xs[2 + i]! + pads[i]! + pads[i + 2]!)));
  const counts = new Float32Array(Ho * Wo);
  for (let i = 0; i < Ho; i++)
    for (let j = 0; j < Wo; j++) {
      // The window's cells inside the input, or (count_include_pad) inside the input and its explicit pads.
      const span = (o: number, k: number) => {
        const start = o * strides[k]! - pads[k]!;
        const [lo, hi] = includePad ? [-pads[k]!, xs[2 + k]! + pads[k + 2]!] : [0, xs[2 + k]!];
        return Math.min(start + kernel[k]!, hi) - Math.max(start, lo);
      };
      counts[i * Wo + j] = span(i, 0) * span(j, 1);
    }
  const scaled = r.b.node('Div', [dy, r.b.f32(`${base}/counts`, counts, [1, 1, Ho, Wo])], r.b.fresh(`${base}/avg`));
  const ones = r.b.f32(`${base}/ones`, new Float32Array(C * kernel[0]! * kernel[1]!).fill(1), [C, 1, kernel[0]!, kernel[1]!]);
  return convTranspose(r, scaled, ones, kernel, strides, [1, 1], [pads[0]!, pads[1]!, end[0]!, end[1]!], C, base);
}

/**
 * The max-pool's input gradient through the Activation Atlas relaxation s(x) = N/D, N = A(x²), D = ε + A|x| (A: the
 * average pool of the max-pool's window, padding not counted, as tfjs's avgPool): dx = 2x·Aᵀ(dy/D) − sign(x)·Aᵀ(dy·N/D²),
 * the formula of engine/gradients/smooth-maxpool.ts.
 */
function smoothMaxPool(r: RuleArgs): void {
  const kernel = r.a.ints('kernel_shape') ?? unsupported(r, 'no kernel_shape');
  const strides = r.a.ints('strides') ?? [1, 1];
  if ((r.a.ints('dilations') ?? [1, 1]).some((d) => d !== 1)) unsupported(r, 'dilations');
  const pads = padsOf(r, kernel, strides, [1, 1]);
  const base = `grad/${r.out}/smooth`;
  const x = r.ins[0]!;
  const A = (t: string, tag: string) =>
    r.b.node('AveragePool', [t], r.b.fresh(`${base}/${tag}`), [ints('kernel_shape', kernel), ints('strides', strides), ints('pads', pads), int('ceil_mode', r.a.int('ceil_mode', 0)), int('count_include_pad', 0)]);
  const N = A(r.b.node('Mul', [x, x], r.b.fresh(`${base}/x2`)), 'N');
  const D = r.b.node('Add', [A(r.b.node('Abs', [x], r.b.fresh(`${base}/abs`)), 'A'), r.b.f32(`${base}/eps`, [SMOOTH_MAXPOOL_EPS], [])], r.b.fresh(`${base}/D`));
  const perD = r.b.node('Div', [r.dy, D], r.b.fresh(`${base}/dyD`));
  const viaN = poolAdjoint(r, perD, kernel, strides, pads, false, `${base}/viaN`);
  const viaD = poolAdjoint(r, r.b.node('Div', [r.b.node('Mul', [perD, N], r.b.fresh(`${base}/dyND`)), D], r.b.fresh(`${base}/dyND2`)), kernel, strides, pads, false, `${base}/viaD`);
  const first = r.b.node('Mul', [r.b.node('Mul', [viaN, x], r.b.fresh(`${base}/nx`)), r.b.f32(`${base}/2`, [2], [])], r.b.fresh(`${base}/first`));
  r.add(x, r.b.node('Sub', [first, r.b.node('Mul', [viaD, r.b.node('Sign', [x], r.b.fresh(`${base}/sign`))], r.b.fresh(`${base}/second`))], r.b.fresh(base)));
}

/** dy times an elementwise derivative, for the node's first input. */
function scaleBy(r: RuleArgs, d: string, tag: string): void {
  r.add(r.ins[0]!, r.b.node('Mul', [r.dy, d], r.b.fresh(`grad/${r.out}/${tag}`)));
}

/**
 * A Squeeze's or Unsqueeze's gradient: dy reshaped to the input's shape. Its axes (attribute before opset 13, input
 * after; negative ones counted in the larger rank) say whether the first dimension stays the batch.
 */
function reshapeBack(r: RuleArgs): void {
  const rank = Math.max(r.xs!.length, r.ys.length);
  const axes = (r.a.ints('axes') ?? (r.ins[1] ? r.intConst(r.ins[1]) : undefined) ?? []).map((v) => (v < 0 ? v + rank : v));
  r.add(r.ins[0]!, r.b.node('Reshape', [r.dy, r.b.i64(`grad/${r.out}/shape`, batchFree(r.xs!, !axes.includes(0)))], r.b.fresh(`grad/${r.out}/reshape`)));
}

/**
 * Reductions over `axes` (the attribute, or the input from opset 13 / 18; all axes when none are given): a mean or sum
 * spreads dy back evenly (scaled by 1 / count for a mean); a max or min sends dy to every element equal to the
 * result (tfjs's rule for ties).
 */
function reduction(r: RuleArgs, kind: 'mean' | 'sum' | 'extreme', fixed?: number[]): void {
  const xs = r.xs!;
  const given = fixed ?? r.a.ints('axes') ?? (r.ins[1] ? r.intConst(r.ins[1]) : undefined);
  if (!fixed && !given?.length && r.a.int('noop_with_empty_axes', 0)) return r.add(r.ins[0]!, r.dy);
  const axes = (given?.length ? given : xs.map((_, i) => i)).map((v) => (v < 0 ? v + xs.length : v));
  if (axes.includes(0)) unsupported(r, 'a reduction over the batch');
  const base = `grad/${r.out}/${kind}`;
  const keepShape = batchFree(xs.map((d, i) => (axes.includes(i) ? 1 : d)));
  const keep = (t: string) => (fixed || r.a.int('keepdims', 1) ? t : r.b.node('Reshape', [t, r.b.i64(`${base}/keep`, keepShape)], r.b.fresh(`${base}/keep`)));
  const dy = keep(r.dy);
  if (kind === 'extreme') {
    const at = r.b.node('Equal', [r.ins[0]!, keep(r.out)], r.b.fresh(`${base}/at`));
    return r.add(r.ins[0]!, r.b.node('Where', [at, dy, r.b.f32(`${base}/0`, [0], [])], r.b.fresh(base)));
  }
  const scaled = kind === 'mean' ? r.b.node('Mul', [dy, r.b.f32(`${base}/inv`, [1 / axes.reduce((p, i) => p * xs[i]!, 1)], [])], r.b.fresh(`${base}/s`)) : dy;
  r.add(r.ins[0]!, r.b.node('Expand', [scaled, r.b.i64(`${base}/xshape`, [1, ...xs.slice(1)])], r.b.fresh(base)));
}

/** Float zeros of the shape the int64 tensor `shape` holds (at run time). */
function zeros(r: RuleArgs, shape: string, base: string): string {
  const value = { name: 'value', type: AttrType.TENSOR, t: { dims: [1], data_type: DataType.FLOAT, raw_data: new Uint8Array(4) } };
  return r.b.node('ConstantOfShape', [shape], r.b.fresh(`${base}/zeros`), [value]);
}

/** Float zeros shaped as tensor `like`. */
const zerosLike = (r: RuleArgs, like: string, base: string): string => zeros(r, r.b.node('Shape', [like], r.b.fresh(`${base}/shape`)), base);

/**
 * A Gather's gradient for any indices, shapes read at run time: the indices flattened to k, dy reshaped to
 * x's shape with k along `axis`, the indices broadcast to that shape, and dy added into zeros at them
 * (ScatterElements, reduction add: repeats add up; negative indices count from the end, as in Gather).
 */
function scatterGather(r: RuleArgs, axis: number): string {
  const rank = r.xs!.length;
  const base = `grad/${r.out}/scatter`;
  const xshape = r.b.node('Shape', [r.ins[0]!], r.b.fresh(`${base}/xshape`));
  const part = (from: number, to: number) => r.b.node('Slice', [xshape, r.b.i64(`${base}/from`, [from]), r.b.i64(`${base}/to`, [to])], r.b.fresh(`${base}/dims`));
  const parts = [...(axis > 0 ? [part(0, axis)] : []), r.b.i64(`${base}/k`, [-1]), ...(axis < rank - 1 ? [part(axis + 1, rank)] : [])];
  const shape = parts.length > 1 ? r.b.node('Concat', parts, r.b.fresh(`${base}/dyshape`), [int('axis', 0)]) : parts[0]!;
  const dy = r.b.node('Reshape', [r.dy, shape], r.b.fresh(`${base}/dy`));
  const at = r.b.i64(`${base}/at`, [...Array(axis).fill(1), -1, ...Array(rank - axis - 1).fill(1)]);
  const flat = r.b.node('Reshape', [r.ins[1]!, at], r.b.fresh(`${base}/indices`));
  const indices = r.b.node('Expand', [flat, r.b.node('Shape', [dy], r.b.fresh(`${base}/like`))], r.b.fresh(`${base}/spread`));
  return r.b.node('ScatterElements', [zerosLike(r, r.ins[0]!, base), indices, dy], r.b.fresh(base), [int('axis', axis), str('reduction', 'add')]);
}

/**
 * A Slice's gradient for any steps: per sliced axis, from the last, dy added into zeros at the positions the slice
 * took (ScatterElements along that axis, with constant positions broadcast over the other axes).
 */
function scatterSlice(r: RuleArgs, axes: number[], starts: number[], ends: number[], steps: number[]): string {
  const xs = r.xs!;
  let g = r.dy;
  let shape = [...r.ys];
  for (let k = axes.length - 1; k >= 0; k--) {
    const axis = axes[k]!;
    const n = xs[axis]!;
    const step = steps[k]!;
    const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v < 0 ? v + n : v));
    // ONNX's bounds: clamped to [0, n] going forward, to [−1, n − 1] going backward.
    const [from, to] = step > 0 ? [clamp(starts[k]!, 0, n), clamp(ends[k]!, 0, n)] : [clamp(starts[k]!, 0, n - 1), ends[k]! < -n ? -1 : clamp(ends[k]!, -1, n - 1)];
    const positions: number[] = [];
    for (let p = from; step > 0 ? p < to : p > to; p += step) positions.push(p);
    const base = `grad/${r.out}/unslice${axis}`;
    const at = r.b.i64(`${base}/at`, positions);
    const placed = r.b.node('Reshape', [at, r.b.i64(`${base}/atshape`, shape.map((_, i) => (i === axis ? positions.length : 1)))], r.b.fresh(`${base}/positions`));
    const indices = r.b.node('Expand', [placed, r.b.node('Shape', [g], r.b.fresh(`${base}/like`))], r.b.fresh(`${base}/spread`));
    shape = shape.map((d, i) => (i === axis ? n : d));
    const target = r.b.node('Concat', [r.b.node('Slice', [r.b.node('Shape', [g], r.b.fresh(`${base}/gshape`)), r.b.i64(`${base}/0`, [0]), r.b.i64(`${base}/1`, [1])], r.b.fresh(`${base}/batch`)), r.b.i64(`${base}/rest`, shape.slice(1))], r.b.fresh(`${base}/shape`), [int('axis', 0)]);
    g = r.b.node('ScatterElements', [zeros(r, target, base), indices, g], r.b.fresh(base), [int('axis', axis), str('reduction', 'add')]);
  }
  return g;
}

/** Elementwise Max / Min of two inputs: dy goes to the one equal to the result, the first on a tie (as tfjs's maximum). */
function extreme(r: RuleArgs): void {
  if (r.ins.length !== 2) unsupported(r, `${r.ins.length} inputs (two are supported)`);
  const base = `grad/${r.out}/${r.n.op_type}`;
  const first = r.b.node('Equal', [r.ins[0]!, r.out], r.b.fresh(`${base}/first`));
  const zero = r.b.f32(`${base}/0`, [0], []);
  if (r.onPath(0)) r.add(r.ins[0]!, r.b.unbroadcast(r.b.node('Where', [first, r.dy, zero], r.b.fresh(`${base}/a`)), r.ys, r.shapes.get(r.ins[0]!)!, `${base}/0`));
  if (r.onPath(1)) r.add(r.ins[1]!, r.b.unbroadcast(r.b.node('Where', [first, zero, r.dy], r.b.fresh(`${base}/b`)), r.ys, r.shapes.get(r.ins[1]!)!, `${base}/1`));
}

export const RULES: Record<string, Rule> = {
  Identity: (r) => r.add(r.ins[0]!, r.dy),
  Dropout: (r) => r.add(r.ins[0]!, r.dy),
  Conv: (r) => {
    if (!r.onPath(0)) return;
    if (r.onPath(1)) unsupported(r, 'weights computed from the input');
    const w = r.ins[1]!;
    const kernel = r.a.ints('kernel_shape') ?? unsupported(r, 'no kernel_shape');
    const strides = r.a.ints('strides') ?? [1, 1];
    const dil = r.a.ints('dilations') ?? [1, 1];
    const pads = padsOf(r, kernel, strides, dil);
    const group = r.a.int('group', 1);
    const W = r.floatConst(w);
    const dims = r.constDims(w);
    // A forward conv of dy with the flipped, in↔out-transposed filter, at stride 1 (grouped ConvTranspose is slow on
    // onnxruntime's CPU kernels: measured on MobileNet). A strided grouped conv's dy first gets zeros between its
    // pixels, by a 1×1 ConvTranspose with a ones filter (one group per channel): against the grouped 3×3 ConvTranspose
    // of a depthwise stride-2 layer, 5.6 vs 9.0 ms (dy 8×48×56², 2 cores), 4.2–4.6 vs 6.3–6.7 (16×48×32²), 3.4–3.6 vs
    // 4.3–5.4 (8×1024×7²). A strided ungrouped conv keeps ConvTranspose, one GEMM: MobileNet's first conv (24 → 3
    // channels, 128 px, batch 16) took 3.3 ms that way against 12.1 ms spread and convolved (the conv's few output
    // channels fill onnxruntime's 8-wide blocks badly).
    const strided = strides.some((v) => v !== 1);
    if (W && dims?.length === 4 && (!strided || group > 1)) {
      const M = r.ys[1]!;
      // z[t] = dy[t / s] where s divides t, else 0: length s·(Ho − 1) + 1.
      const len = [0, 1].map((i) => strides[i]! * (r.ys[2 + i]! - 1) + 1);
      const back = [0, 1].map((i) => dil[i]! * (kernel[i]! - 1));
      const begin = [0, 1].map((i) => back[i]! - pads[i]!);
      const end = [0, 1].map((i) => r.xs![2 + i]! - len[i]! - begin[i]! + back[i]!);
      if ([...begin, ...end].every((v) => v >= 0)) {
        const z = strided
          ? r.b.node('ConvTranspose', [r.dy, r.b.f32(`grad/${r.out}/ones`, new Float32Array(M).fill(1), [M, 1, 1, 1])], r.b.fresh(`grad/${r.out}/spread`), [ints('kernel_shape', [1, 1]), ints('strides', strides), int('group', M)])
          : r.dy;
        const flipped = r.b.f32(`grad/${r.out}/flipped`, flipFilter(W, dims as [number, number, number, number], group), [dims[1]! * group, dims[0]! / group, dims[2]!, dims[3]!]);
        r.add(r.ins[0]!, r.b.node('Conv', [z, flipped], r.b.fresh(`grad/${r.out}/conv`), [ints('kernel_shape', kernel), ints('dilations', dil), int('group', group), ints('pads', [...begin, ...end])]));
        return;
      }
    }
    r.add(r.ins[0]!, convTranspose(r, r.dy, w, kernel, strides, dil, pads, group, `grad/${r.out}/conv`));
  },
  Relu: (r) => r.add(r.ins[0]!, nchwcMask(r, r.out, 0, undefined) ?? mask(r, r.b.node('Greater', [r.out, r.b.f32(`grad/${r.out}/zero`, [0], [])], r.b.fresh(`grad/${r.out}/pos`)), `grad/${r.out}/relu`)),
  LeakyRelu: (r) => {
    const alpha = r.a.float('alpha', 0.01);
    const pos = r.b.node('Greater', [r.ins[0]!, r.b.f32(`grad/${r.out}/zero`, [0], [])], r.b.fresh(`grad/${r.out}/pos`));
    r.add(r.ins[0]!, r.b.node('Where', [pos, r.dy, r.b.node('Mul', [r.dy, r.b.f32(`grad/${r.out}/alpha`, [alpha], [])], r.b.fresh(`grad/${r.out}/neg`))], r.b.fresh(`grad/${r.out}/leaky`)));
  },
  Clip: (r) => {
    const lo = r.ins[1] ? r.floatConst(r.ins[1])?.[0] : undefined;
    const hi = r.ins[2] ? r.floatConst(r.ins[2])?.[0] : undefined;
    if ((r.ins[1] && lo === undefined) || (r.ins[2] && hi === undefined)) unsupported(r, 'bounds computed at run time');
    const y = r.out;
    if (lo === undefined && hi === undefined) return r.add(r.ins[0]!, r.dy);
    const masked = nchwcMask(r, y, lo, hi);
    if (masked) return r.add(r.ins[0]!, masked);
    // Inside iff lo < y < hi, read from the output: a clipped input sits exactly on a bound and gets no gradient (an
    // input exactly on a bound, measure zero, gets none either, where tfjs's clipByValue passes it).
    const conds = [
      ...(lo !== undefined ? [r.b.node('Greater', [y, r.b.f32(`grad/${y}/lo`, [lo], [])], r.b.fresh(`grad/${y}/gt`))] : []),
      ...(hi !== undefined ? [r.b.node('Less', [y, r.b.f32(`grad/${y}/hi`, [hi], [])], r.b.fresh(`grad/${y}/lt`))] : []),
    ];
    const cond = conds.length === 2 ? r.b.node('And', conds, r.b.fresh(`grad/${y}/in`)) : conds[0]!;
    r.add(r.ins[0]!, mask(r, cond, `grad/${y}/clip`));
  },
  Sigmoid: (r) => {
    const one = r.b.f32(`grad/${r.out}/one`, [1], []);
    const d = r.b.node('Mul', [r.out, r.b.node('Sub', [one, r.out], r.b.fresh(`grad/${r.out}/1-y`))], r.b.fresh(`grad/${r.out}/d`));
    r.add(r.ins[0]!, r.b.node('Mul', [r.dy, d], r.b.fresh(`grad/${r.out}/sig`)));
  },
  Tanh: (r) => {
    const one = r.b.f32(`grad/${r.out}/one`, [1], []);
    const d = r.b.node('Sub', [one, r.b.node('Mul', [r.out, r.out], r.b.fresh(`grad/${r.out}/y2`))], r.b.fresh(`grad/${r.out}/d`));
    r.add(r.ins[0]!, r.b.node('Mul', [r.dy, d], r.b.fresh(`grad/${r.out}/tanh`)));
  },
  HardSigmoid: (r) => {
    const alpha = r.a.float('alpha', 0.2);
    const beta = r.a.float('beta', 0.5);
    // Slope alpha where 0 < alpha·x + beta < 1 (tfjs's clipByValue rule includes the bounds; ONNX-exported nets rarely sit on them).
    const z = r.b.node('Add', [r.b.node('Mul', [r.ins[0]!, r.b.f32(`grad/${r.out}/a`, [alpha], [])], r.b.fresh(`grad/${r.out}/ax`)), r.b.f32(`grad/${r.out}/b`, [beta], [])], r.b.fresh(`grad/${r.out}/z`));
    const cond = r.b.node('And', [r.b.node('GreaterOrEqual', [z, r.b.f32(`grad/${r.out}/0`, [0], [])], r.b.fresh(`grad/${r.out}/ge`)), r.b.node('LessOrEqual', [z, r.b.f32(`grad/${r.out}/1`, [1], [])], r.b.fresh(`grad/${r.out}/le`))], r.b.fresh(`grad/${r.out}/in`));
    r.add(r.ins[0]!, r.b.node('Mul', [mask(r, cond, `grad/${r.out}/hs`), r.b.f32(`grad/${r.out}/alpha`, [alpha], [])], r.b.fresh(`grad/${r.out}/hsig`)));
  },
  HardSwish: (r) => {
    // y = x·hs(x), hs = clip(x/6 + 1/2, 0, 1): dy·(hs(x) + x/6·[0 ≤ x/6 + 1/2 ≤ 1]).
    const x = r.ins[0]!;
    const hs = r.b.node('HardSigmoid', [x], r.b.fresh(`grad/${r.out}/hs`), [float('alpha', 1 / 6), float('beta', 0.5)]);
    const z = r.b.node('Add', [r.b.node('Mul', [x, r.b.f32(`grad/${r.out}/a`, [1 / 6], [])], r.b.fresh(`grad/${r.out}/ax`)), r.b.f32(`grad/${r.out}/b`, [0.5], [])], r.b.fresh(`grad/${r.out}/z`));
    const cond = r.b.node('And', [r.b.node('GreaterOrEqual', [z, r.b.f32(`grad/${r.out}/0`, [0], [])], r.b.fresh(`grad/${r.out}/ge`)), r.b.node('LessOrEqual', [z, r.b.f32(`grad/${r.out}/1`, [1], [])], r.b.fresh(`grad/${r.out}/le`))], r.b.fresh(`grad/${r.out}/in`));
    const slope = r.b.node('Where', [cond, r.b.node('Mul', [x, r.b.f32(`grad/${r.out}/s`, [1 / 6], [])], r.b.fresh(`grad/${r.out}/x6`)), r.b.f32(`grad/${r.out}/z0`, [0], [])], r.b.fresh(`grad/${r.out}/slope`));
    r.add(x, r.b.node('Mul', [r.dy, r.b.node('Add', [hs, slope], r.b.fresh(`grad/${r.out}/d`))], r.b.fresh(`grad/${r.out}/hswish`)));
  },
  Add: (r) => [0, 1].forEach((i) => r.onPath(i) && r.add(r.ins[i]!, r.b.unbroadcast(r.dy, r.ys, r.shapes.get(r.ins[i]!)!, `grad/${r.out}/${i}`))),
  Sub: (r) => {
    if (r.onPath(0)) r.add(r.ins[0]!, r.b.unbroadcast(r.dy, r.ys, r.shapes.get(r.ins[0]!)!, `grad/${r.out}/0`));
    if (r.onPath(1)) r.add(r.ins[1]!, r.b.node('Neg', [r.b.unbroadcast(r.dy, r.ys, r.shapes.get(r.ins[1]!)!, `grad/${r.out}/1`)], r.b.fresh(`grad/${r.out}/neg`)));
  },
  Mul: (r) => {
    for (const i of [0, 1]) {
      if (!r.onPath(i)) continue;
      const other = r.ins[1 - i]!;
      r.add(r.ins[i]!, r.b.unbroadcast(r.b.node('Mul', [r.dy, other], r.b.fresh(`grad/${r.out}/m${i}`)), r.ys, r.shapes.get(r.ins[i]!)!, `grad/${r.out}/${i}`));
    }
  },
  Div: (r) => {
    const shapeOf = (i: number) => r.shapes.get(r.ins[i]!)!;
    if (r.onPath(0)) r.add(r.ins[0]!, r.b.unbroadcast(r.b.node('Div', [r.dy, r.ins[1]!], r.b.fresh(`grad/${r.out}/d`)), r.ys, shapeOf(0), `grad/${r.out}/0`));
    // d(a/b)/db = −a/b² = −y/b.
    if (r.onPath(1)) {
      const t = r.b.node('Mul', [r.dy, r.b.node('Div', [r.out, r.ins[1]!], r.b.fresh(`grad/${r.out}/yb`))], r.b.fresh(`grad/${r.out}/dyb`));
      r.add(r.ins[1]!, r.b.node('Neg', [r.b.unbroadcast(t, r.ys, shapeOf(1), `grad/${r.out}/1`)], r.b.fresh(`grad/${r.out}/negb`)));
    }
  },
  BatchNormalization: (r) => {
    const [scale, , , variance] = [1, 2, 3, 4].map((i) => r.floatConst(r.ins[i]!) ?? unsupported(r, 'statistics that are not constants'));
    const eps = r.a.float('epsilon', 1e-5);
    const k = Array.from(scale!, (s, c) => s / Math.sqrt(variance![c]! + eps));
    const shape = [k.length, ...Array(r.ys.length - 2).fill(1)];
    r.add(r.ins[0]!, r.b.node('Mul', [r.dy, r.b.f32(`grad/${r.out}/k`, k, shape)], r.b.fresh(`grad/${r.out}/bn`)));
  },
  MaxPool: (r) => {
    if (r.smooth) return smoothMaxPool(r);
    // The forward node also returns its argmax (flat NCHW indices); the gradient is scattered to it.
    if (r.n.output!.length < 2 || !r.n.output![1]) r.n.output = [r.out, `${r.out}/indices`];
    const idx = r.n.output![1]!;
    const xs = r.xs!;
    const flat = (t: string, base: string) => r.b.node('Reshape', [t, r.b.i64(`${base}/shape`, [-1])], r.b.fresh(base));
    const blank = zerosLike(r, r.ins[0]!, `grad/${r.out}/x`);
    const scattered = r.b.node('ScatterElements', [flat(blank, `grad/${r.out}/zf`), flat(idx, `grad/${r.out}/if`), flat(r.dy, `grad/${r.out}/df`)], r.b.fresh(`grad/${r.out}/scatter`), [str('reduction', 'add')]);
    r.add(r.ins[0]!, r.b.node('Reshape', [scattered, r.b.i64(`grad/${r.out}/xs`, batchFree(xs, false))], r.b.fresh(`grad/${r.out}/maxpool`)));
  },
  AveragePool: (r) => {
    const kernel = r.a.ints('kernel_shape') ?? unsupported(r, 'no kernel_shape');
    const strides = r.a.ints('strides') ?? [1, 1];
    r.add(r.ins[0]!, poolAdjoint(r, r.dy, kernel, strides, padsOf(r, kernel, strides, [1, 1]), r.a.int('count_include_pad', 0) === 1, `grad/${r.out}/pool`));
  },
  GlobalAveragePool: (r) => reduction(r, 'mean', [2, 3]),
  ReduceMean: (r) => reduction(r, 'mean'),
  ReduceSum: (r) => reduction(r, 'sum'),
  ReduceMax: (r) => reduction(r, 'extreme'),
  ReduceMin: (r) => reduction(r, 'extreme'),
  GlobalMaxPool: (r) => reduction(r, 'extreme', [2, 3]),
  Abs: (r) => scaleBy(r, r.b.node('Sign', [r.ins[0]!], r.b.fresh(`grad/${r.out}/sign`)), 'abs'),
  Neg: (r) => r.add(r.ins[0]!, r.b.node('Neg', [r.dy], r.b.fresh(`grad/${r.out}/neg`))),
  Exp: (r) => scaleBy(r, r.out, 'exp'),
  Log: (r) => r.add(r.ins[0]!, r.b.node('Div', [r.dy, r.ins[0]!], r.b.fresh(`grad/${r.out}/log`))),
  // d√x = 1 / (2√x); d(1/x) = −1/x² = −y².
  Sqrt: (r) => r.add(r.ins[0]!, r.b.node('Div', [r.dy, r.b.node('Add', [r.out, r.out], r.b.fresh(`grad/${r.out}/2y`))], r.b.fresh(`grad/${r.out}/sqrt`))),
  Reciprocal: (r) => r.add(r.ins[0]!, r.b.node('Neg', [r.b.node('Mul', [r.dy, r.b.node('Mul', [r.out, r.out], r.b.fresh(`grad/${r.out}/y2`))], r.b.fresh(`grad/${r.out}/dyy2`))], r.b.fresh(`grad/${r.out}/reciprocal`))),
  Erf: (r) => {
    // d erf(x) = 2/√π · exp(−x²).
    const x = r.ins[0]!;
    const e = r.b.node('Exp', [r.b.node('Neg', [r.b.node('Mul', [x, x], r.b.fresh(`grad/${r.out}/x2`))], r.b.fresh(`grad/${r.out}/-x2`))], r.b.fresh(`grad/${r.out}/e`));
    scaleBy(r, r.b.node('Mul', [e, r.b.f32(`grad/${r.out}/k`, [2 / Math.sqrt(Math.PI)], [])], r.b.fresh(`grad/${r.out}/d`)), 'erf');
  },
  Elu: (r) => {
    // x > 0: 1; else α·eˣ = y + α.
    const pos = r.b.node('Greater', [r.ins[0]!, r.b.f32(`grad/${r.out}/0`, [0], [])], r.b.fresh(`grad/${r.out}/pos`));
    const neg = r.b.node('Add', [r.out, r.b.f32(`grad/${r.out}/alpha`, [r.a.float('alpha', 1)], [])], r.b.fresh(`grad/${r.out}/y+a`));
    scaleBy(r, r.b.node('Where', [pos, r.b.f32(`grad/${r.out}/1`, [1], []), neg], r.b.fresh(`grad/${r.out}/d`)), 'elu');
  },
  Softplus: (r) => scaleBy(r, r.b.node('Sigmoid', [r.ins[0]!], r.b.fresh(`grad/${r.out}/sig`)), 'softplus'),
  Pow: (r) => {
    const p = r.ins[1] ? r.floatConst(r.ins[1]) : undefined;
    if (r.onPath(1) || !p || p.length !== 1) unsupported(r, 'an exponent that is not one constant');
    if (!r.onPath(0)) return;
    // d xᵖ = p·xᵖ⁻¹.
    const d = r.b.node('Mul', [r.b.node('Pow', [r.ins[0]!, r.b.f32(`grad/${r.out}/p-1`, [p![0]! - 1], [])], r.b.fresh(`grad/${r.out}/xp`)), r.b.f32(`grad/${r.out}/p`, [p![0]!], [])], r.b.fresh(`grad/${r.out}/d`));
    scaleBy(r, d, 'pow');
  },
  Max: (r) => extreme(r),
  Min: (r) => extreme(r),
  Squeeze: (r) => reshapeBack(r),
  Unsqueeze: (r) => reshapeBack(r),
  Expand: (r) => r.add(r.ins[0]!, r.b.unbroadcast(r.dy, r.ys, r.xs!, `grad/${r.out}/expand`)),
  Gather: (r) => {
    // Constant indices (a scalar or a list) along a non-batch axis: dy times the one-hot matrix G [q, n] of the
    // indices along that axis (repeated indices add up). Other indices (computed at run time, several dimensions):
    // dy scattered back with ScatterElements (add). Indices carry no gradient.
    const xs = r.xs!;
    const axis = r.a.int('axis', 0) < 0 ? r.a.int('axis', 0) + xs.length : r.a.int('axis', 0);
    const idx = r.onPath(1) ? undefined : r.intConst(r.ins[1]!);
    const dims = r.constDims(r.ins[1]!);
    // Shapes are read at batch 1, where indices into a batch do not exist.
    if (axis === 0) unsupported(r, 'a gather along the batch');
    if (!idx || !dims || dims.length > 1) return r.add(r.ins[0]!, scatterGather(r, axis));
    const n = xs[axis]!;
    const G = new Float32Array(idx.length * n);
    idx.forEach((v, j) => (G[j * n + (v < 0 ? v + n : v)] += 1));
    const base = `grad/${r.out}/gather`;
    let g = dims.length ? r.dy : r.b.node('Unsqueeze', [r.dy, r.b.i64(`${base}/axis`, [axis])], r.b.fresh(`${base}/unsqueeze`));
    const last = xs.length - 1;
    const perm = [...xs.keys()].filter((i) => i !== axis).concat(axis);
    if (axis !== last) g = r.b.node('Transpose', [g], r.b.fresh(`${base}/last`), [ints('perm', perm)]);
    g = r.b.node('MatMul', [g, r.b.f32(`${base}/onehot`, G, [idx.length, n])], r.b.fresh(`${base}/spread`));
    if (axis !== last) g = r.b.node('Transpose', [g], r.b.fresh(`${base}/back`), [ints('perm', perm.map((_, i) => perm.indexOf(i)))]);
    r.add(r.ins[0]!, g);
  },
  Cast: (r) => {
    if (r.a.int('to', 0) !== DataType.FLOAT) unsupported(r, 'a cast to a type other than float');
    r.add(r.ins[0]!, r.dy);
  },
  Flatten: (r) => r.add(r.ins[0]!, r.b.node('Reshape', [r.dy, r.b.i64(`grad/${r.out}/shape`, batchFree(r.xs!, r.a.int('axis', 1) >= 1))], r.b.fresh(`grad/${r.out}/unflat`))),
  Reshape: (r) => {
    // The output's first dimension is the batch when the target shape copies it (0) or infers it (−1) from static rest.
    const target = r.ins[1] ? r.intConst(r.ins[1]) : undefined;
    const rest = target?.slice(1) ?? [];
    const keepsBatch = !!target && (target[0] === 0 || target[0] === -1) && rest.every((d) => d > 0) && rest.reduce((p, d) => p * d, 1) === r.xs!.slice(1).reduce((p, d) => p * d, 1);
    r.add(r.ins[0]!, r.b.node('Reshape', [r.dy, r.b.i64(`grad/${r.out}/shape`, batchFree(r.xs!, keepsBatch))], r.b.fresh(`grad/${r.out}/unshape`)));
  },
  Transpose: (r) => {
    const perm = r.a.ints('perm') ?? r.xs!.map((_, i) => r.xs!.length - 1 - i);
    const inv = perm.map((_, i) => perm.indexOf(i));
    r.add(r.ins[0]!, r.b.node('Transpose', [r.dy], r.b.fresh(`grad/${r.out}/untranspose`), [ints('perm', inv)]));
  },
  Concat: (r) => {
    const axis = r.a.int('axis', 0) < 0 ? r.a.int('axis', 0) + r.ys.length : r.a.int('axis', 0);
    let at = 0;
    r.ins.forEach((t, i) => {
      const size = (r.shapes.get(t) ?? r.constDims(t) ?? unsupported(r, `a part (${t}) of unknown size`))[axis]!;
      if (r.onPath(i)) r.add(t, r.b.node('Slice', [r.dy, r.b.i64(`grad/${r.out}/s`, [at]), r.b.i64(`grad/${r.out}/e`, [at + size]), r.b.i64(`grad/${r.out}/a`, [axis])], r.b.fresh(`grad/${r.out}/part`)));
      at += size;
    });
  },
  Gemm: (r) => {
    if (r.onPath(1)) unsupported(r, 'a B computed from the input');
    if (r.a.int('transA', 0)) unsupported(r, 'transA');
    const alpha = r.a.float('alpha', 1);
    // dA = alpha·dy·Bᵀ (B as stored: transB flips it).
    const g = r.b.node('Gemm', [r.dy, r.ins[1]!], r.b.fresh(`grad/${r.out}/gemm`), [float('alpha', alpha), int('transB', r.a.int('transB', 0) ? 0 : 1)]);
    r.add(r.ins[0]!, g);
  },
  MatMul: (r) => {
    if (r.onPath(1) || r.ys.length !== 2) unsupported(r, 'a B computed from the input, or operands that are not matrices');
    r.add(r.ins[0]!, r.b.node('Gemm', [r.dy, r.ins[1]!], r.b.fresh(`grad/${r.out}/matmul`), [int('transB', 1)]));
  },
  Pad: (r) => {
    const mode = r.a.string('mode', 'constant');
    const p = r.ins[1] ? r.intConst(r.ins[1]) : r.a.ints('pads');
    if (!p) return unsupported(r, 'pads computed at run time');
    const xs = r.xs!;
    const rank = xs.length;
    if (rank !== 4 || [0, 1].some((i) => p[i] !== 0 || p[i + rank] !== 0)) unsupported(r, 'padding outside the spatial axes');
    // Each spatial axis as a [padded, original] matrix that routes every padded position to its source (none for a
    // constant pad; the mirrored pixel for reflect; the nearest edge for edge): dx = Rhᵀ · dy · Rw.
    const route = (axis: number): Float32Array => {
      const n = xs[axis]!;
      const before = p[axis]!;
      const total = n + before + p[axis + rank]!;
      const m = new Float32Array(total * n);
      for (let o = 0; o < total; o++) {
        let i = o - before;
        if (i < 0 || i >= n) {
          if (mode === 'constant') continue;
          if (mode === 'reflect') i = i < 0 ? -i : 2 * (n - 1) - i;
          else if (mode === 'edge') i = Math.min(n - 1, Math.max(0, i));
          else unsupported(r, `${mode} padding`);
        }
        m[o * n + i] = 1;
      }
      return m;
    };
    const [H, W] = [xs[2]!, xs[3]!];
    const Hp = r.ys[2]!;
    const Wp = r.ys[3]!;
    const rw = r.b.f32(`grad/${r.out}/rw`, route(3), [Wp, W]);
    const rh = route(2);
    const rhT = new Float32Array(H * Hp);
    for (let o = 0; o < Hp; o++) for (let i = 0; i < H; i++) rhT[i * Hp + o] = rh[o * H + i]!;
    const cols = r.b.node('MatMul', [r.dy, rw], r.b.fresh(`grad/${r.out}/cols`));
    r.add(r.ins[0]!, r.b.node('MatMul', [r.b.f32(`grad/${r.out}/rh`, rhT, [H, Hp]), cols], r.b.fresh(`grad/${r.out}/unpad`)));
  },
  Slice: (r) => {
    const xs = r.xs!;
    const starts = r.ins[1] ? r.intConst(r.ins[1]) : r.a.ints('starts');
    const ends = r.ins[2] ? r.intConst(r.ins[2]) : r.a.ints('ends');
    if (!starts || !ends) return unsupported(r, 'bounds computed at run time');
    const axes = ((r.ins[3] ? r.intConst(r.ins[3]) : r.a.ints('axes')) ?? starts.map((_, i) => i)).map((v) => (v < 0 ? v + xs.length : v));
    const steps = (r.ins[4] ? r.intConst(r.ins[4]) : undefined) ?? starts.map(() => 1);
    // The preprocessing's channel reversal (a whole axis, step −1) is its own inverse.
    if (steps.length === 1 && steps[0] === -1 && starts[0] === -1 && ends[0]! <= -xs[axes[0]!]! - 1) {
      return r.add(r.ins[0]!, r.b.node('Slice', [r.dy, r.ins[1]!, r.ins[2]!, r.ins[3]!, r.ins[4]!], r.b.fresh(`grad/${r.out}/unreverse`)));
    }
    if (axes.includes(0)) unsupported(r, 'a slice of the batch');
    if (steps.some((v) => v !== 1)) return r.add(r.ins[0]!, scatterSlice(r, axes, starts, ends, steps));
    // Step 1: dy padded with zeros back to the input's extent.
    const pads = new Array<number>(2 * xs.length).fill(0);
    axes.forEach((axis, k) => {
      const n = xs[axis]!;
      const at = (v: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
      const from = at(starts[k]!);
      pads[axis] = from;
      pads[axis + xs.length] = n - Math.max(from, at(ends[k]!));
    });
    r.add(r.ins[0]!, r.b.node('Pad', [r.dy, r.b.i64(`grad/${r.out}/pads`, pads)], r.b.fresh(`grad/${r.out}/unslice`)));
  },
  Softmax: (r) => {
    const axis = r.a.int('axis', -1);
    const dot = r.b.node('ReduceSum', [r.b.node('Mul', [r.dy, r.out], r.b.fresh(`grad/${r.out}/dyy`)), r.b.i64(`grad/${r.out}/axes`, [axis])], r.b.fresh(`grad/${r.out}/dot`), [int('keepdims', 1)]);
    r.add(r.ins[0]!, r.b.node('Mul', [r.out, r.b.node('Sub', [r.dy, dot], r.b.fresh(`grad/${r.out}/d`))], r.b.fresh(`grad/${r.out}/softmax`)));
  },
  LogSoftmax: (r) => {
    // dx = dy − softmax(x)·Σ dy, softmax(x) = exp(y).
    const axis = r.a.int('axis', -1);
    const total = r.b.node('ReduceSum', [r.dy, r.b.i64(`grad/${r.out}/axes`, [axis])], r.b.fresh(`grad/${r.out}/total`), [int('keepdims', 1)]);
    const share = r.b.node('Mul', [r.b.node('Exp', [r.out], r.b.fresh(`grad/${r.out}/p`)), total], r.b.fresh(`grad/${r.out}/share`));
    r.add(r.ins[0]!, r.b.node('Sub', [r.dy, share], r.b.fresh(`grad/${r.out}/logsoftmax`)));
  },
  LRN: (r) => {
    // y = x·s^−β, s = bias + α/size·Σ_window x². dx = dy·s^−β − 2αβ/size · x · Σ_window(dy·x·s^(−β−1)).
    const C = r.xs![1]!;
    const size = r.a.int('size', 5);
    const alpha = r.a.float('alpha', 1e-4);
    const beta = r.a.float('beta', 0.75);
    const bias = r.a.float('bias', 1);
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    // Σ_window as a 1×1 conv with a banded matrix; the backward window is the transposed band.
    const band = (transpose: boolean) => {
      const w = new Float32Array(C * C);
      for (let c = 0; c < C; c++) for (let j = Math.max(0, c - lo); j <= Math.min(C - 1, c + hi); j++) w[transpose ? j * C + c : c * C + j] = 1;
      return r.b.f32(`grad/${r.out}/band`, w, [C, C, 1, 1]);
    };
    const x = r.ins[0]!;
    const sq = r.b.node('Mul', [x, x], r.b.fresh(`grad/${r.out}/x2`));
    const win = r.b.node('Conv', [sq, band(false)], r.b.fresh(`grad/${r.out}/win`), [ints('kernel_shape', [1, 1])]);
    const s = r.b.node('Add', [r.b.node('Mul', [win, r.b.f32(`grad/${r.out}/a`, [alpha / size], [])], r.b.fresh(`grad/${r.out}/aw`)), r.b.f32(`grad/${r.out}/bias`, [bias], [])], r.b.fresh(`grad/${r.out}/s`));
    const sb = r.b.node('Pow', [s, r.b.f32(`grad/${r.out}/-b`, [-beta], [])], r.b.fresh(`grad/${r.out}/sb`));
    const sb1 = r.b.node('Div', [sb, s], r.b.fresh(`grad/${r.out}/sb1`));
    const inner = r.b.node('Mul', [r.b.node('Mul', [r.dy, x], r.b.fresh(`grad/${r.out}/dyx`)), sb1], r.b.fresh(`grad/${r.out}/inner`));
    const back = r.b.node('Conv', [inner, band(true)], r.b.fresh(`grad/${r.out}/back`), [ints('kernel_shape', [1, 1])]);
    const second = r.b.node('Mul', [r.b.node('Mul', [x, back], r.b.fresh(`grad/${r.out}/xb`)), r.b.f32(`grad/${r.out}/k`, [(2 * alpha * beta) / size], [])], r.b.fresh(`grad/${r.out}/second`));
    r.add(x, r.b.node('Sub', [r.b.node('Mul', [r.dy, sb], r.b.fresh(`grad/${r.out}/first`)), second], r.b.fresh(`grad/${r.out}/lrn`)));
  },
};

/**
 * The filter of a conv's input gradient at stride 1: W [M, C/g, kh, kw] (group g, M = g·m) → [C, m, kh, kw], each
 * tap rotated 180° and, within each group, input and output channels swapped.
 */
function flipFilter(W: Float32Array, [M, cg, kh, kw]: [number, number, number, number], g: number): Float32Array {
  const m = M / g;
  const out = new Float32Array(W.length);
  for (let gi = 0; gi < g; gi++)
    for (let j = 0; j < m; j++)
      for (let c = 0; c < cg; c++)
        for (let u = 0; u < kh; u++)
          for (let v = 0; v < kw; v++) out[(((gi * cg + c) * m + j) * kh + u) * kw + v] = W[(((gi * m + j) * cg + c) * kh + (kh - 1 - u)) * kw + (kw - 1 - v)]!;
  return out;
}
