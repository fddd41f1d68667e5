import * as tf from '@tensorflow/tfjs';
import { INPUT, type Executor, type LayerInfo, type JvpResult } from './executor.js';
import { jvpKind, layerJvp } from './linearise.js';

interface Step {
  layer: tf.layers.Layer;
  inputs: number[];
  outputs: number[];
}

type SymbolicLike = { id: number };
type NodeLike = { inputTensors: SymbolicLike[]; outputTensors: SymbolicLike[] };

/**
 * Executes a tf.LayersModel layer by layer on concrete tensors. LayersModel.execute only accepts
 * the model's own inputs as feeds; attribution needs to start from a hidden layer's activation.
 */
export class LayersExecutor implements Executor {
  readonly layers: LayerInfo[];
  readonly outputName: string;
  private readonly steps: Step[] = [];
  private readonly outputIdOf = new Map<string, number>();
  private readonly producer = new Map<number, number>(); // tensor id -> step index
  private readonly inputId: number;

  constructor(private readonly model: tf.LayersModel) {
    if (model.inputs.length !== 1) throw new Error('patch-atlas supports image models with exactly one input');
    this.inputId = (model.inputs[0] as unknown as SymbolicLike).id;
    this.outputIdOf.set(INPUT, this.inputId);
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      // A layer reused by a nested model has several nodes; the one belonging to this model is the one
      // whose outputs are recorded for it. Plain Keras exports have exactly one.
      const node = (layer as unknown as { inboundNodes: NodeLike[] }).inboundNodes[0]!;
      const step: Step = { layer, inputs: node.inputTensors.map((t) => t.id), outputs: node.outputTensors.map((t) => t.id) };
      this.steps.push(step);
      this.outputIdOf.set(layer.name, step.outputs[0]!);
      for (const id of step.outputs) this.producer.set(id, this.steps.length - 1);
    }
    this.layers = this.steps.map(({ layer }) => ({
      name: layer.name,
      type: layer.getClassName(),
      shape: shapeOf(layer.outputShape),
    }));
    this.outputName = model.outputs[0]!.sourceLayer.name;
  }

  has(name: string): boolean {
    return this.outputIdOf.has(name);
  }

  run(feeds: ReadonlyMap<string, tf.Tensor>, outputs: readonly string[]): tf.Tensor[] {
    const values = new Map<number, tf.Tensor>();
    for (const [name, t] of feeds) values.set(this.idOf(name), t);
    const wanted = outputs.map((o) => this.idOf(o));
    const needed = this.plan(new Set(values.keys()), wanted);
    // Count remaining uses so intermediates are freed as soon as nothing needs them (tapes keep their own copies).
    const uses = new Map<number, number>();
    for (const s of needed) for (const i of this.steps[s]!.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const keep = new Set<number>([...wanted, ...[...feeds.keys()].map((n) => this.idOf(n))]);
    for (const s of needed) {
      const step = this.steps[s]!;
      const ins = step.inputs.map((i) => values.get(i)!);
      const out = step.layer.apply(ins.length === 1 ? ins[0]! : ins, { training: false }) as tf.Tensor | tf.Tensor[];
      const outs = Array.isArray(out) ? out : [out];
      step.outputs.forEach((id, k) => values.set(id, outs[k]!));
      for (const i of step.inputs) {
        const left = uses.get(i)! - 1;
        uses.set(i, left);
        if (left === 0 && !keep.has(i)) values.get(i)!.dispose();
      }
    }
    return wanted.map((id) => values.get(id)!);
  }

  /**
   * Forward-mode product: the outputs and their derivatives along `tangent`, a perturbation of layer
   * `from`'s output (batch = primal batch × groups). Undefined when a layer on the path has no JVP rule.
   */
  jvp(feeds: ReadonlyMap<string, tf.Tensor>, from: string, tangent: tf.Tensor, groups: number, outputs: readonly string[]): JvpResult | undefined {
    const fromId = this.idOf(from);
    const wanted = outputs.map((o) => this.idOf(o));
    const fed = new Set([...feeds.keys()].map((n) => this.idOf(n)));
    const steps = this.plan(fed, wanted);
    const carries = new Set<number>([fromId]);
    for (const s of steps) {
      const step = this.steps[s]!;
      if (!step.inputs.some((i) => carries.has(i))) continue;
      if (jvpKind(step.layer) === 'unsupported') return undefined;
      step.outputs.forEach((o) => carries.add(o));
    }
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>();
      for (const [name, t] of feeds) values.set(this.idOf(name), t);
      const tangents = new Map<number, tf.Tensor>([[fromId, tangent]]);
      for (const s of steps) {
        const step = this.steps[s]!;
        const ins = step.inputs.map((i) => values.get(i)!);
        values.set(step.outputs[0]!, step.layer.apply(ins.length === 1 ? ins[0]! : ins, { training: false }) as tf.Tensor);
        if (!step.inputs.some((i) => tangents.has(i))) continue;
        const tIns = step.inputs.map((i, k) => tangents.get(i) ?? tf.zeros([tangent.shape[0]!, ...ins[k]!.shape.slice(1)]));
        tangents.set(step.outputs[0]!, layerJvp(step.layer, ins, tIns, groups));
      }
      const zero = (id: number) => tf.zeros([tangent.shape[0]!, ...values.get(id)!.shape.slice(1)]);
      return { primal: wanted.map((id) => values.get(id)!), tangent: wanted.map((id) => tangents.get(id) ?? zero(id)) };
    });
  }

  /** Indices of the steps needed to compute `wanted` from the fed tensors, in execution order. */
  private plan(fed: ReadonlySet<number>, wanted: readonly number[]): number[] {
    const needed = new Set<number>();
    const stack = wanted.filter((id) => !fed.has(id));
    while (stack.length) {
      const id = stack.pop()!;
      const s = this.producer.get(id);
      if (s === undefined) {
        if (id === this.inputId) throw new Error('the model input must be fed to compute the requested outputs');
        throw new Error(`no layer produces tensor ${id}`);
      }
      if (needed.has(s)) continue;
      needed.add(s);
      for (const i of this.steps[s]!.inputs) if (!fed.has(i)) stack.push(i);
    }
    return [...needed].sort((a, b) => a - b);
  }

  private idOf(name: string): number {
    const id = this.outputIdOf.get(name);
    if (id === undefined) throw new Error(`unknown layer ${name}`);
    return id;
  }

  dispose(): void {
    this.model.dispose();
  }
}

function shapeOf(s: tf.Shape | tf.Shape[]): Array<number | null> | null {
  const first = Array.isArray(s[0]) ? (s[0] as tf.Shape) : (s as tf.Shape);
  return first.slice(1);
}
