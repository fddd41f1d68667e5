import * as tf from '@tensorflow/tfjs';
import { INPUT, type Executor, type LayerInfo } from './executor.js';

interface GraphNodeDef {
  name: string;
  op: string;
}

const SKIP_OPS = new Set(['Const', 'Placeholder', 'NoOp', 'Identity']);

/**
 * Executes a tf.GraphModel by node name. GraphModel.execute already accepts feeds for any
 * node, so feeding a hidden activation (for gradients w.r.t. it) needs no rewriting.
 */
export class GraphExecutor implements Executor {
  readonly layers: LayerInfo[];
  readonly outputName: string;
  private readonly names: Set<string>;
  private readonly inputName: string;

  constructor(private readonly model: tf.GraphModel, nodes: GraphNodeDef[], inputNode?: string) {
    this.inputName = inputNode ?? model.inputs[0]!.name;
    this.layers = nodes.filter((n) => !SKIP_OPS.has(n.op)).map((n) => ({ name: n.name, type: n.op, shape: null }));
    this.names = new Set(nodes.map((n) => n.name));
    this.outputName = model.outputs[0]!.name;
  }

  /** [height, width] when the graph's input has a fixed size (TF-Hub and converted graphs often do). */
  get inputSize(): [number, number] | undefined {
    const input = this.model.inputs.find((i) => i.name === this.inputName) ?? this.model.inputs[0];
    const [, h, w] = input?.shape ?? [];
    return h && w && h > 0 && w > 0 ? [h, w] : undefined;
  }

  has(name: string): boolean {
    return name === INPUT || this.names.has(name.replace(/:\d+$/, ''));
  }

  run(feeds: ReadonlyMap<string, tf.Tensor>, outputs: readonly string[]): tf.Tensor[] {
    const map: tf.NamedTensorMap = {};
    for (const [k, v] of feeds) map[k === INPUT ? this.inputName : k] = v;
    const out = this.model.execute(map, outputs.map((o) => (o === INPUT ? this.inputName : o)) as string[]);
    return Array.isArray(out) ? out : [out];
  }

  dispose(): void {
    this.model.dispose();
  }
}
