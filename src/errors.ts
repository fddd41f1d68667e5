import { EngineError } from './engine/errors.js';

/**
 * Every expected failure is a PatchAtlasError with a code, a one-line message that names the
 * file, flag or value at fault, and (where there is one) the fix. The CLI turns these into a
 * single line; anything else is a bug and gets a stack trace only with --debug.
 */
export type ErrorCode =
  | 'BAD_FLAG'
  | 'BAD_CONFIG'
  | 'AUDIT_FAILED'
  | 'UNKNOWN_MODEL'
  | 'UNKNOWN_LAYER'
  | 'UNKNOWN_CLASS'
  | 'BAD_DESCRIPTOR'
  | 'WEIGHTS_MISSING'
  | 'WEIGHTS_INVALID'
  | 'DOWNLOAD_FAILED'
  | 'BACKEND_MISSING'
  | 'NOT_FOUND'
  | 'BAD_IMAGE'
  | 'NO_IMAGES'
  | 'BAD_MANIFEST'
  | 'NO_LABELS'
  | 'REAL_DATA_MISSING'
  | 'EMPTY_ATLAS'
  | 'TOO_FEW_POINTS'
  | 'BAD_RUN'
  | 'BAD_FILE'
  | 'RUN_MISMATCH';

export class PatchAtlasError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, hint?: string) {
    // The hint is part of the message, so every consumer (CLI, logs, tests) sees the fix too.
    super(hint ? `${message}; ${hint}` : message);
    this.name = 'PatchAtlasError';
    this.code = code;
    this.hint = hint;
  }
}

export function isPatchAtlasError(e: unknown): e is PatchAtlasError {
  return e instanceof PatchAtlasError;
}

/** One line for the terminal: "message (hint)". */
export function formatError(e: unknown): string {
  if (isPatchAtlasError(e) || e instanceof EngineError) return e.message;
  if (e instanceof Error) return `unexpected error: ${e.message.split('\n')[0]} (run again with --debug for the stack trace)`;
  return `unexpected error: ${String(e)}`;
}
