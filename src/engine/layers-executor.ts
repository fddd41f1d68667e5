import * as tf from '@tensorflow/tfjs';
import { INPUT, type Executor, type LayerInfo, type JvpResult } from './executor.js';
import { fuseSteps, layerStep, type LayerStep, type Step } from './fuse.js';

/** One way to execute the model: its steps and which step produces each tensor id. */
interface Schedule {
  steps: Step[];
  producer: Map<number, number>;
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
  private readonly outputIdOf = new Map<string, number>();
  private readonly inputId: number;
  /** Layer by layer: every layer's output can be read or fed. */
  private readonly plain: Schedule;
  /** Conv → batch norm → ReLU6 chains fused (fuse.ts); used unless a call reads or feeds a fused-away tensor. */
  private readonly fused: Schedule;
  private readonly fusedAway = new Set<number>();
  /** How many conv → batch-norm → activation chains run as one fused kernel. */
  readonly fusedChains: number;

  weightsOf(layer: string): Array<{ values: Float32Array; shape: number[] }> | undefined {
    const l = this.model.layers.find((x) => x.name === layer);
    return l?.getWeights().map((w) => ({ values: Float32Array.from(w.dataSync() as Float32Array), shape: [...w.shape] }));
  }

  constructor(private readonly model: tf.LayersModel) {
    if (model.inputs.length !== 1) throw new Error('patch-atlas supports image models with exactly one input');
    this.inputId = (model.inputs[0] as unknown as SymbolicLike).id;
    this.outputIdOf.set(INPUT, this.inputId);
    const steps: LayerStep[] = [];
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      // A layer reused by a nested model has several nodes; the one belonging to this model is the one
      // whose outputs are recorded for it. Plain Keras exports have exactly one.
      const node = (layer as unknown as { inboundNodes: NodeLike[] }).inboundNodes[0]!;
      const step = layerStep(layer, node.inputTensors.map((t) => t.id), node.outputTensors.map((t) => t.id));
      steps.push(step);
      this.outputIdOf.set(layer.name, step.outputs[0]!);
    }
    this.plain = schedule(steps);
    const modelOutputs = new Set(model.outputs.map((o) => (o as unknown as SymbolicLike).id));
    this.fused = schedule(fuseSteps(steps, modelOutputs));
    for (const s of this.fused.steps) for (const id of s.inner) this.fusedAway.add(id);
    this.fusedChains = this.fused.steps.filter((s) => !('layer' in s)).length;
    this.layers = steps.map(({ layer }) => ({
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
    const sched = this.scheduleFor(values.keys(), wanted);
    const needed = this.plan(sched, new Set(values.keys()), wanted);
    // Count remaining uses so intermediates are freed as soon as nothing needs them (tapes keep their own copies).
    const uses = new Map<number, number>();
    for (const s of needed) for (const i of sched.steps[s]!.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const keep = new Set<number>([...wanted, ...[...feeds.keys()].map((n) => this.idOf(n))]);
    for (const s of needed) {
      const step = sched.steps[s]!;
      const ins = step.inputs.map((i) => values.get(i)!);
      const out = step.apply(ins);
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
    const sched = this.scheduleFor([...fed, fromId], wanted);
    const steps = this.plan(sched, fed, wanted);
    const carries = new Set<number>([fromId]);
    for (const s of steps) {
      const step = sched.steps[s]!;
      if (!step.inputs.some((i) => carries.has(i))) continue;
      if (!step.supportsJvp) return undefined;
      step.outputs.forEach((o) => carries.add(o));
    }
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>();
      for (const [name, t] of feeds) values.set(this.idOf(name), t);
      const tangents = new Map<number, tf.Tensor>([[fromId, tangent]]);
      for (const s of steps) {
        const step = sched.steps[s]!;
        const ins = step.inputs.map((i) => values.get(i)!);
        if (!step.inputs.some((i) => tangents.has(i))) {
          values.set(step.outputs[0]!, step.apply(ins) as tf.Tensor);
          continue;
        }
        const tIns = step.inputs.map((i, k) => tangents.get(i) ?? tf.zeros([tangent.shape[0]!, ...ins[k]!.shape.slice(1)]));
        const { primal, tangent: t } = step.jvp(ins, tIns, groups);
        values.set(step.outputs[0]!, primal);
        tangents.set(step.outputs[0]!, t);
      }
      const zero = (id: number) => tf.zeros([tangent.shape[0]!, ...values.get(id)!.shape.slice(1)]);
      return { primal: wanted.map((id) => values.get(id)!), tangent: wanted.map((id) => tangents.get(id) ?? zero(id)) };
    });
  }

  /** The fused schedule, unless the call reads or feeds a tensor that fusion does not materialise. */
  private scheduleFor(fed: Iterable<number>, wanted: readonly number[]): Schedule {
    for (const id of [...fed, ...wanted]) if (this.fusedAway.has(id)) return this.plain;
    return this.fused;
  }

  /** Indices of the steps needed to compute `wanted` from the fed tensors, in execution order. */
  private plan(sched: Schedule, fed: ReadonlySet<number>, wanted: readonly number[]): number[] {
    const needed = new Set<number>();
    const stack = wanted.filter((id) => !fed.has(id));
    while (stack.length) {
      const id = stack.pop()!;
      const s = sched.producer.get(id);
      if (s === undefined) {
        if (id === this.inputId) throw new Error('the model input must be fed to compute the requested outputs');
        throw new Error(`no layer produces tensor ${id}`);
      }
      if (needed.has(s)) continue;
      needed.add(s);
      for (const i of sched.steps[s]!.inputs) if (!fed.has(i)) stack.push(i);
    }
    return [...needed].sort((a, b) => a - b);
  }

  private idOf(name: string): number {
    const id = this.outputIdOf.get(name);
    if (id === undefined) throw new Error(`unknown layer ${name}`);
    return id;
  }

  dispose(): void {
    for (const s of this.fused.steps) s.dispose();
    this.model.dispose();
  }
}

function schedule(steps: Step[]): Schedule {
  const producer = new Map<number, number>();
  steps.forEach((s, k) => s.outputs.forEach((id) => producer.set(id, k)));
  return { steps, producer };
}

function shapeOf(s: tf.Shape | tf.Shape[]): Array<number | null> | null {
  const first = Array.isArray(s[0]) ? (s[0] as tf.Shape) : (s as tf.Shape);
  return first.slice(1);
}
