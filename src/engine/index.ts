/**
 * The tensor engine: TensorFlow.js on wasm (threads, fused conv→BN→ReLU kernels, heap access) with the
 * gradient fixes the wasm backend needs, and the executors that run a model by layer name. It imports
 * nothing from the rest of patch-atlas; the model layer (src/model/) is its one client for models.
 */
export { activeBackend, BACKENDS, ENGINE_CHOICES, initBackend, tf, tfjsBackendOf, type BackendName, type EngineChoice } from './backend.js';
export { engineInfo, setForwardEngine, type EngineInfo } from './info.js';
export { EngineError, NoNativeGradient, type EngineErrorCode } from './errors.js';
export { INPUT, probeShapes, type Executor, type JvpResult, type LayerInfo } from './executor.js';
export { GraphExecutor } from './graph-executor.js';
export { LayersExecutor } from './layers-executor.js';
export { withMaxPoolGrad, type MaxPoolGradMode } from './gradients/state.js';
export { computeOnHeap, heapView } from './wasm-heap.js';
export { MAX_WASM_THREADS, wasmThreads } from './wasm-threads.js';
export { OnnxExecutor, type OnnxSummary } from './onnx/executor.js';
export { decodeModel, encodeModel, type ModelProto } from './onnx/proto.js';
export { SUPPORTED_OPS as ONNX_OPS } from './onnx/ops.js';
export { OrtForward, ortInstalled, type Preprocessing } from './onnx/runtime.js';
export { BACKWARD_OPS, buildBackward, OrtBackward, type BackwardGraph, type BackwardSpec } from './onnx/backward.js';
export { defaultThreads } from './wasm-threads.js';
export { checkedWeight, evaluateReadout, readoutReads, readoutWidths, renameReads, shiftWeights, weightCount, type Position, type Readout, type ReadoutWeight, type Rows } from './readout.js';
export { EXPORT_VERSION, ExportUnsupported, exportLayersModel, type ExportResult } from './onnx/export.js';
export { graphToOnnx, type GraphConversion, type GraphNode } from './onnx/from-graph.js';
export type { ExternalData } from './onnx/tensors.js';
