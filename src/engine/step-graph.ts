import * as tf from '@tensorflow/tfjs';
import type { JvpResult } from './executor.js';
import type { Step } from './fuse.js';

/** One way to execute a model: its steps and which step produces each tensor id. */
interface Schedule {
  steps: Step[];
  producer: Map<number, number>;
}

/**
 * Runs a model given as steps over numbered tensors (Keras layers, ONNX nodes): only the steps needed for the
 * requested tensors run, any tensor can be fed in place of computing it, and intermediates are freed as soon as
 * nothing needs them. Two schedules: one step per layer or node, and one with fused chains (fuse.ts), used unless
 * a call reads or feeds a tensor that fusion does not materialise.
 */
export class StepGraph {
  private readonly plain: Schedule;
  private readonly fused: Schedule;
  private readonly fusedAway = new Set<number>();

  constructor(plain: Step[], fused: Step[], private readonly inputId: number) {
    this.plain = schedule(plain);
    this.fused = schedule(fused);
    for (const s of fused) for (const id of s.inner) this.fusedAway.add(id);
  }

  /** How many fused chains the fused schedule runs. */
  get fusedChains(): number {
    return this.fused.steps.filter((s) => s.inner.length > 0).length;
  }

  run(feeds: ReadonlyMap<number, tf.Tensor>, wanted: readonly number[]): tf.Tensor[] {
    const values = new Map<number, tf.Tensor>(feeds);
    const sched = this.scheduleFor(values.keys(), wanted);
    const needed = this.plan(sched, new Set(values.keys()), wanted);
    // Count remaining uses so intermediates are freed as soon as nothing needs them (tapes keep their own copies).
    const uses = new Map<number, number>();
    for (const s of needed) for (const i of sched.steps[s]!.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const keep = new Set<number>([...wanted, ...feeds.keys()]);
    for (const s of needed) {
      const step = sched.steps[s]!;
      const out = step.apply(step.inputs.map((i) => values.get(i)!));
      const outs = Array.isArray(out) ? out : [out];
      step.outputs.forEach((id, k) => {
        if (outs[k]) values.set(id, outs[k]!);
      });
      for (const i of step.inputs) {
        const left = uses.get(i)! - 1;
        uses.set(i, left);
        if (left === 0 && !keep.has(i)) values.get(i)!.dispose();
      }
      // Outputs nothing reads (a Dropout mask, a max-pool's indices) are freed at once.
      step.outputs.forEach((id, k) => {
        if (k > 0 && outs[k] && !uses.has(id) && !keep.has(id)) outs[k]!.dispose();
      });
    }
    return wanted.map((id) => values.get(id)!);
  }

  /**
   * Forward-mode product: the outputs and their derivatives along `tangent`, a perturbation of tensor `fromId`
   * (tangent batch = primal batch × groups, example-major). Undefined when a step on the path has no JVP rule.
   */
  jvp(feeds: ReadonlyMap<number, tf.Tensor>, fromId: number, tangent: tf.Tensor, groups: number, wanted: readonly number[]): JvpResult | undefined {
    const fed = new Set(feeds.keys());
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
      const values = new Map<number, tf.Tensor>(feeds);
      const tangents = new Map<number, tf.Tensor>([[fromId, tangent]]);
      for (const s of steps) {
        const step = sched.steps[s]!;
        const ins = step.inputs.map((i) => values.get(i)!);
        if (!step.inputs.some((i) => tangents.has(i))) {
          const out = step.apply(ins);
          values.set(step.outputs[0]!, Array.isArray(out) ? out[0]! : out);
          continue;
        }
        const tIns = step.inputs.map((i, k) => tangents.get(i) ?? tf.zeros([tangent.shape[0]!, ...ins[k]!.shape.slice(1)]));
        const { primal, tangent: t } = step.jvp(ins, tIns, groups);
        values.set(step.outputs[0]!, primal);
        // A step whose output carries no derivative (shape arithmetic) returns no tangent.
        if (t) tangents.set(step.outputs[0]!, t);
      }
      const zero = (id: number) => tf.zeros([tangent.shape[0]!, ...values.get(id)!.shape.slice(1)]);
      return { primal: wanted.map((id) => values.get(id)!), tangent: wanted.map((id) => tangents.get(id) ?? zero(id)) };
    });
  }

  dispose(): void {
    const all = new Set([...this.plain.steps, ...this.fused.steps]);
    for (const s of all) s.dispose();
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
        throw new Error(`no step produces tensor ${id}`);
      }
      if (needed.has(s)) continue;
      needed.add(s);
      for (const i of sched.steps[s]!.inputs) if (!fed.has(i)) stack.push(i);
    }
    return [...needed].sort((a, b) => a - b);
  }
}

function schedule(steps: Step[]): Schedule {
  const producer = new Map<number, number>();
  steps.forEach((s, k) => s.outputs.forEach((id) => producer.set(id, k)));
  return { steps, producer };
}

/**
 * An executor over a StepGraph whose tensors have names (Keras layer names, ONNX tensor names): the name → id map
 * and the calls every such executor makes the same way. Subclasses fill `ids` and set `graph` in their constructor.
 */
export abstract class NamedStepExecutor {
  protected readonly ids = new Map<string, number>();
  protected graph!: StepGraph;
  /** What an unknown name is called in the error ("layer", "tensor"). */
  protected abstract readonly unit: string;

  has(name: string): boolean {
    return this.ids.has(name);
  }

  run(feeds: ReadonlyMap<string, tf.Tensor>, outputs: readonly string[]): tf.Tensor[] {
    return this.graph.run(this.byId(feeds), outputs.map((o) => this.idOf(o)));
  }

  /**
   * Forward-mode product: the outputs and their derivatives along `tangent`, a perturbation of `from`'s value
   * (batch = primal batch × groups). Undefined when a step on the path has no JVP rule.
   */
  jvp(feeds: ReadonlyMap<string, tf.Tensor>, from: string, tangent: tf.Tensor, groups: number, outputs: readonly string[]): JvpResult | undefined {
    return this.graph.jvp(this.byId(feeds), this.idOf(from), tangent, groups, outputs.map((o) => this.idOf(o)));
  }

  protected byId(feeds: ReadonlyMap<string, tf.Tensor>): Map<number, tf.Tensor> {
    return new Map([...feeds].map(([name, t]) => [this.idOf(name), t]));
  }

  protected idOf(name: string): number {
    const id = this.ids.get(name);
    if (id === undefined) throw new Error(`unknown ${this.unit} ${name}`);
    return id;
  }
}
