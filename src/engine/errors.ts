/**
 * The engine's own failures (no backend, a bad thread count). The engine imports nothing from the
 * project, so it cannot throw PatchAtlasError; `formatError` (src/errors.ts) prints these the same way:
 * one line with the fix.
 */
export type EngineErrorCode = 'BACKEND_MISSING' | 'BAD_THREADS' | 'MODEL_INVALID' | 'UNSUPPORTED_OP';

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  readonly hint: string | undefined;
  constructor(code: EngineErrorCode, message: string, hint?: string) {
    super(hint ? `${message}; ${hint}` : message);
    this.name = 'EngineError';
    this.code = code;
    this.hint = hint;
  }
}

/** Thrown where a network cannot run natively for a gradient (Classifier.nativeNet); the step then runs on the tape. */
export class NoNativeGradient extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'NoNativeGradient';
  }
}
