import * as tf from '@tensorflow/tfjs';
import { depthwiseConv2dInputGrad } from './gradients/depthwise.js';
import { jvpKind, layerJvp, perGroup } from './linearise.js';

/** One unit of execution: a Keras layer, or a fused conv → batch-norm → activation chain. */
export interface Step {
  inputs: number[];
  outputs: number[];
  /** Tensor ids computed inside the step and not materialised (empty for a plain layer). */
  inner: number[];
  supportsJvp: boolean;
  apply(ins: tf.Tensor[]): tf.Tensor | tf.Tensor[];
  /** Output and its derivative along the input tangents (see linearise.ts). Only where supportsJvp. */
  jvp(ins: tf.Tensor[], tangents: tf.Tensor[], groups: number): { primal: tf.Tensor; tangent: tf.Tensor | null };
  dispose(): void;
}

export interface LayerStep extends Step {
  layer: tf.layers.Layer;
}

export function layerStep(layer: tf.layers.Layer, inputs: number[], outputs: number[]): LayerStep {
  const apply = (ins: tf.Tensor[]) => layer.apply(ins.length === 1 ? ins[0]! : ins, { training: false }) as tf.Tensor | tf.Tensor[];
  return {
    layer,
    inputs,
    outputs,
    inner: [],
    supportsJvp: jvpKind(layer) !== 'unsupported',
    apply,
    jvp: (ins, tangents, groups) => ({ primal: apply(ins) as tf.Tensor, tangent: layerJvp(layer, ins, tangents, groups) }),
    dispose: () => {},
  };
}

export type Activation = 'linear' | 'relu' | 'relu6';

/**
 * Fold inference-mode batch norm into the preceding convolution and run conv + bias + ReLU/ReLU6 as one
 * fused kernel. On wasm the separate BatchNorm and ReLU6 (relu then minimum, with broadcasting) kernels are
 * single-threaded and cost more than the convolutions (measured: 229 of 343 ms for MobileNet at batch 8).
 * A chain is fused only when its intermediate tensors feed nothing else; callers that ask for those
 * intermediates get the plain layers (see LayersExecutor).
 */
export function fuseSteps(steps: readonly LayerStep[], modelOutputs: ReadonlySet<number>): Step[] {
  const consumers = new Map<number, number>();
  for (const s of steps) for (const i of s.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const solo = (id: number) => consumers.get(id) === 1 && !modelOutputs.has(id);
  const out: Step[] = [];
  for (let k = 0; k < steps.length; k++) {
    const conv = steps[k]!;
    if (!isFusableConv(conv.layer)) {
      out.push(conv);
      continue;
    }
    let next = k + 1;
    let bn: tf.layers.Layer | undefined;
    let act: Activation = 'linear';
    let tail = conv;
    const follows = (s: LayerStep | undefined): s is LayerStep => !!s && s.inputs.length === 1 && s.inputs[0] === tail.outputs[0] && solo(tail.outputs[0]!);
    if (follows(steps[next]) && isFoldableBatchNorm(steps[next]!.layer)) {
      bn = steps[next]!.layer;
      tail = steps[next++]!;
    }
    const a = follows(steps[next]) ? activationOf(steps[next]!.layer) : undefined;
    if (a) {
      act = a;
      tail = steps[next++]!;
    }
    if (!bn && act === 'linear') {
      out.push(conv);
      continue;
    }
    const chain = steps.slice(k, next);
    out.push(fusedConvStep(kerasConv(conv.layer, bn), act, conv.inputs, tail.outputs, chain.slice(0, -1).flatMap((s) => s.outputs)));
    k = next - 1;
  }
  return out;
}

function isFusableConv(layer: tf.layers.Layer): boolean {
  const cls = layer.getClassName();
  if (cls !== 'Conv2D' && cls !== 'DepthwiseConv2D') return false;
  const c = layer.getConfig() as { activation?: string; dataFormat?: string; padding?: string };
  return (c.activation ?? 'linear') === 'linear' && (c.dataFormat ?? 'channelsLast') === 'channelsLast' && (c.padding === 'same' || c.padding === 'valid');
}

function isFoldableBatchNorm(layer: tf.layers.Layer): boolean {
  if (layer.getClassName() !== 'BatchNormalization') return false;
  const axis = (layer.getConfig() as { axis?: number }).axis;
  return axis === -1 || axis === 3;
}

function activationOf(layer: tf.layers.Layer): Activation | undefined {
  const cls = layer.getClassName();
  const c = layer.getConfig() as { activation?: string; maxValue?: number | null; negativeSlope?: number; threshold?: number };
  if (cls === 'Activation') return c.activation === 'relu' || c.activation === 'relu6' ? c.activation : undefined;
  if (cls === 'ReLU' && !c.negativeSlope && !c.threshold) {
    if (c.maxValue == null) return 'relu';
    if (c.maxValue === 6) return 'relu6';
  }
  return undefined;
}

/** Folded filter and bias: w' = w·s, b' = (b − mean)·s + beta with s = gamma / sqrt(var + eps) per output channel. */
export function foldedWeights(conv: tf.layers.Layer, bn: tf.layers.Layer | undefined): { filter: tf.Tensor4D; bias: tf.Tensor1D | undefined } {
  return tf.tidy(() => {
    const [w, b] = conv.getWeights() as [tf.Tensor4D, tf.Tensor1D | undefined];
    if (!bn) return { filter: tf.clone(w), bias: b ? tf.clone(b) : undefined };
    const c = bn.getConfig() as { center?: boolean; scale?: boolean; epsilon?: number };
    const ws = [...bn.getWeights()];
    const gamma = c.scale !== false ? ws.shift()! : undefined;
    const beta = c.center !== false ? ws.shift()! : undefined;
    const [mean, variance] = ws as [tf.Tensor1D, tf.Tensor1D];
    const inv = tf.rsqrt(tf.add(variance, c.epsilon ?? 1e-3));
    const s = gamma ? tf.mul(gamma, inv) : inv;
    // Depthwise filters are [kh, kw, in, multiplier] with output channel in·multiplier + m.
    const sShape = conv.getClassName() === 'DepthwiseConv2D' ? [w.shape[2], w.shape[3]] : [w.shape[3]];
    const filter = tf.mul(w, tf.reshape(s, sShape)) as tf.Tensor4D;
    let bias = tf.mul(b ? tf.sub(b, mean) : tf.neg(mean), s);
    if (beta) bias = tf.add(bias, beta);
    return { filter, bias: bias as tf.Tensor1D };
  });
}

export type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];

/** A convolution as one kernel sees it (NHWC); the step that runs it owns and disposes the tensors. */
export interface ConvSpec {
  /** [kh, kw, in, out], or [kh, kw, in, multiplier] when depthwise. */
  filter: tf.Tensor4D;
  bias: tf.Tensor1D | undefined;
  depthwise: boolean;
  strides: [number, number];
  /** 'same', 'valid', symmetric pixels, or explicit [[0,0],[top,bottom],[left,right],[0,0]]. */
  pad: 'same' | 'valid' | number | ExplicitPad;
  dilations: [number, number];
}

function kerasConv(conv: tf.layers.Layer, bn: tf.layers.Layer | undefined): ConvSpec {
  const { filter, bias } = foldedWeights(conv, bn);
  const c = conv.getConfig() as { strides: [number, number]; padding: 'same' | 'valid'; dilationRate?: number | [number, number] };
  const d = c.dilationRate ?? 1;
  return { filter, bias, depthwise: conv.getClassName() === 'DepthwiseConv2D', strides: c.strides, pad: c.padding, dilations: Array.isArray(d) ? d : [d, d] };
}

/**
 * Conv + bias + activation as one fused kernel, differentiable with respect to its input only (the weights are
 * constants). `inner` lists the tensor ids the chain computes without materialising.
 */
export function fusedConvStep(spec: ConvSpec, act: Activation, inputs: number[], outputs: number[], inner: number[]): Step {
  const { filter, bias, depthwise, dilations } = spec;
  const c = { strides: spec.strides, padding: spec.pad };
  // Depthwise kernels take no explicit (asymmetric) padding: pad first, then a 'valid' convolution.
  const prePad = depthwise && Array.isArray(spec.pad) ? spec.pad : undefined;
  const kernelPad = prePad ? 'valid' : (spec.pad as Exclude<ConvSpec['pad'], ExplicitPad>);
  const padded = (x: tf.Tensor) => (prePad ? tf.pad(x, prePad) : x);
  const run = (x: tf.Tensor, withBias: boolean, activation: Activation) => {
    const common = { x: padded(x) as tf.Tensor4D, filter, strides: c.strides, dilations, bias: withBias ? bias : undefined, activation };
    return depthwise ? tf.fused.depthwiseConv2d({ ...common, pad: kernelPad }) : tf.fused.conv2d({ ...common, pad: c.padding });
  };
  const activate = (z: tf.Tensor) => (act === 'relu6' ? tf.relu6(z) : act === 'relu' ? tf.relu(z) : z);
  // The adjoint filter, made once: for MobileNet's stride-1 layers the input gradient is then one forward
  // convolution whose weights XNNPACK packs once and caches (a fresh transposed filter per call is repacked).
  const adjoint = adjointFilter(filter, depthwise, c.strides, c.padding, dilations);
  const inputGrad = (dy: tf.Tensor4D, xShape: number[]) => {
    if (adjoint) return depthwise ? tf.depthwiseConv2d(dy, adjoint, 1, 'same') : tf.conv2d(dy, adjoint, 1, 'same');
    return depthwise
      ? depthwiseConv2dInputGrad(xShape, dy, filter, c.strides, c.padding, 1)
      : (tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter }, { strides: c.strides, pad: c.padding, dataFormat: 'NHWC', inputShape: xShape } as unknown as tf.NamedAttrMap) as tf.Tensor4D);
  };
  // The kernel itself: under a tape the op would split again (tfjs fuses only at gradient depth 0 or when linear).
  const fusedKernel = (x: tf.Tensor) =>
    tf.engine().runKernel(depthwise ? tf.FusedDepthwiseConv2D : tf.FusedConv2D, { x: padded(x), filter, ...(bias ? { bias } : {}) }, {
      strides: c.strides, pad: depthwise ? kernelPad : c.padding, dataFormat: 'NHWC', dilations, activation: act,
    } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  /**
   * Under a gradient tape tfjs splits a fused conv with an activation into conv, add and activation (three ops and
   * their backward passes), and a linear one computes the filter gradient eagerly. This keeps the one fused kernel
   * and differentiates it with respect to its input only (the folded weights are constants): dy masked where the
   * activation is flat, then the convolution's input gradient. The mask comes from the output y: relu6 passes
   * 0 < y < 6, so a pre-activation of exactly 6.0 gets 0 where tf.relu6's gradient gives 1 (measure-zero ties).
   */
  const applyDifferentiable = tf.customGrad(((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const y = fusedKernel(x);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, [out]: tf.Tensor[]) => {
        const masked = act === 'relu6' ? tf.mul(dy, tf.step(tf.mul(out!, tf.sub(6, out!)))) : act === 'relu' ? tf.mul(dy, tf.step(out!)) : dy;
        return inputGrad(masked as tf.Tensor4D, x.shape);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor4D;
  // Conv2DBackpropInput has no dilation; dilated convs keep tfjs's own path.
  const dilated = dilations.some((d) => d !== 1);
  const taping = () => (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
  return {
    inputs,
    outputs,
    inner,
    supportsJvp: true,
    apply: ([x]) => (taping() && !dilated ? applyDifferentiable(x!) : run(x!, true, act)),
    jvp: ([x], [t], groups) =>
      tf.tidy(() => {
        const z = run(x!, true, 'linear');
        const primal = activate(z);
        const lin = run(t!, false, 'linear');
        if (act === 'linear') return { primal, tangent: lin };
        // f'(z) from the registered gradient, so the kink convention matches tf.grad (as in linearise.ts).
        const d = tf.grad((v: tf.Tensor) => tf.sum(activate(v)))(z);
        return { primal, tangent: perGroup(lin, d, groups) };
      }),
    dispose: () => {
      filter.dispose();
      bias?.dispose();
      adjoint?.dispose();
    },
  };
}

/**
 * The filter whose forward convolution is the input gradient, where that is a plain stride-1 convolution:
 * a 1×1 conv's is its transpose (in ↔ out channels); an odd k×k conv with 'same' padding has the 180°-rotated
 * filter (in ↔ out swapped unless depthwise with one filter per channel) with 'same' padding. Undefined elsewhere
 * (the general path runs).
 */
function adjointFilter(filter: tf.Tensor4D, depthwise: boolean, strides: [number, number], padding: ConvSpec['pad'], dilations: number | [number, number]): tf.Tensor4D | undefined {
  const [kh, kw, , mult] = filter.shape;
  const ones = (v: number | [number, number]) => (Array.isArray(v) ? v.every((d) => d === 1) : v === 1);
  if (!ones(strides) || !ones(dilations)) return undefined;
  if (!depthwise && kh === 1 && kw === 1) return tf.tidy(() => tf.transpose(filter, [0, 1, 3, 2]));
  // An odd k×k conv with 'same' padding (stride 1): the rotated filter with in ↔ out swapped, again 'same'.
  if (!depthwise && padding === 'same' && kh % 2 === 1 && kw % 2 === 1) return tf.tidy(() => tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]));
  if (depthwise && mult === 1 && padding === 'same' && kh % 2 === 1 && kw % 2 === 1) return tf.tidy(() => tf.reverse(filter, [0, 1]));
  return undefined;
}
