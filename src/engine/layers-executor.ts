import * as tf from '@tensorflow/tfjs';
import { INPUT, type Executor, type LayerInfo } from './executor.js';
import { fuseSteps, layerStep, type LayerStep } from './fuse.js';
import { NamedStepExecutor, StepGraph } from './step-graph.js';
import { exportLayersModel, type ExportResult } from './onnx/export.js';

type SymbolicLike = { id: number };
type NodeLike = { inputTensors: SymbolicLike[]; outputTensors: SymbolicLike[] };

/**
 * Executes a tf.LayersModel layer by layer on concrete tensors. LayersModel.execute only accepts
 * the model's own inputs as feeds; attribution needs to start from a hidden layer's activation.
 */
export class LayersExecutor extends NamedStepExecutor implements Executor {
  readonly layers: LayerInfo[];
  readonly outputName: string;
  protected readonly unit = 'layer';
  /** How many conv → batch-norm → activation chains run as one fused kernel. */
  readonly fusedChains: number;

  weightsOf(layer: string): Array<{ values: Float32Array; shape: number[] }> | undefined {
    const l = this.model.layers.find((x) => x.name === layer);
    return l?.getWeights().map((w) => ({ values: Float32Array.from(w.dataSync() as Float32Array), shape: [...w.shape] }));
  }

  constructor(private readonly model: tf.LayersModel) {
    super();
    if (model.inputs.length !== 1) throw new Error('patch-atlas supports image models with exactly one input');
    const inputId = (model.inputs[0] as unknown as SymbolicLike).id;
    this.ids.set(INPUT, inputId);
    const steps: LayerStep[] = [];
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      // A layer reused by a nested model has several nodes; the one belonging to this model is the one
      // whose outputs are recorded for it. Plain Keras exports have exactly one.
      const node = (layer as unknown as { inboundNodes: NodeLike[] }).inboundNodes[0]!;
      const step = layerStep(layer, node.inputTensors.map((t) => t.id), node.outputTensors.map((t) => t.id));
      steps.push(step);
      this.ids.set(layer.name, step.outputs[0]!);
    }
    const modelOutputs = new Set(model.outputs.map((o) => (o as unknown as SymbolicLike).id));
    this.graph = new StepGraph(steps, fuseSteps(steps, modelOutputs), inputId);
    this.fusedChains = this.graph.fusedChains;
    this.layers = steps.map(({ layer }) => ({
      name: layer.name,
      type: layer.getClassName(),
      shape: shapeOf(layer.outputShape),
    }));
    this.outputName = model.outputs[0]!.sourceLayer.name;
  }

  /** The model as ONNX (for onnxruntime's forward passes); throws ExportUnsupported naming a layer it cannot write. */
  toOnnx(): ExportResult {
    return exportLayersModel(this.model);
  }

  dispose(): void {
    this.graph.dispose();
    this.model.dispose();
  }
}

function shapeOf(s: tf.Shape | tf.Shape[]): Array<number | null> | null {
  const first = Array.isArray(s[0]) ? (s[0] as tf.Shape) : (s as tf.Shape);
  return first.slice(1);
}
