/**
 * Which engine is running (set by initBackend), for the files that record what made them. Kept apart
 * from backend.ts so that reading it loads no TensorFlow.js.
 */
export interface EngineInfo {
  backend: string;
  threads: number;
}

let current: EngineInfo = { backend: 'none', threads: 0 };

export function engineInfo(): EngineInfo {
  return { ...current };
}

export function setEngineInfo(info: EngineInfo): void {
  current = { ...info };
}
