/**
 * Which engine is running (set by initBackend), for the files that record what made them. Kept apart
 * from backend.ts so that reading it loads no TensorFlow.js.
 */
export interface EngineInfo {
  backend: string;
  threads: number;
  /** Set when forward-only passes run elsewhere (onnxruntime). */
  forward?: string;
}

let current: EngineInfo = { backend: 'none', threads: 0 };

export function engineInfo(): EngineInfo {
  return { ...current };
}

export function setEngineInfo(info: EngineInfo): void {
  current = { ...info };
}

/** Record that forward-only passes run on `engine` from now on (one classifier per process in practice). */
export function setForwardEngine(engine: string | undefined): void {
  current = { ...current, ...(engine ? { forward: engine } : {}) };
  if (!engine) delete current.forward;
}
