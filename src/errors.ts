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
  | 'RUN_MISMATCH'
  | 'FILE_ERROR'
  | 'INTERRUPTED';

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

/** What a file-system error means for the user, by errno code. */
const FS_REASONS: Record<string, [string, string]> = {
  EEXIST: ['a file is in the way', 'remove it or choose another path'],
  ENOTDIR: ['part of the path is a file, not a folder', 'choose another path'],
  EISDIR: ['it is a folder', 'name a file'],
  EACCES: ['permission denied', 'choose a folder you can write to'],
  EPERM: ['operation not permitted', 'choose a folder you can write to'],
  EROFS: ['the file system is read-only', 'choose a writable folder'],
  ENOSPC: ['the disk is full', 'free some space and run again (finished work is kept)'],
  EDQUOT: ['the disk quota is exceeded', 'free some space and run again (finished work is kept)'],
  ENAMETOOLONG: ['the name is too long', 'choose a shorter path'],
  EMFILE: ['too many open files', 'lower the concurrency or raise the open-file limit (ulimit -n)'],
  ENOENT: ['it does not exist', 'check the path'],
};

/**
 * A file-system failure the user can cause (an output path that is a file, a folder without write permission,
 * a full disk) as one FILE_ERROR line naming the path, instead of "unexpected error". Undefined for anything else.
 */
export function fromSystemError(e: unknown): PatchAtlasError | undefined {
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (!(e instanceof Error) || typeof err.code !== 'string' || !(err.code in FS_REASONS) || !(err.path ?? err.dest)) return undefined;
  const [why, hint] = FS_REASONS[err.code]!;
  const verb = err.syscall && /open|write|mkdir|rename|copy|unlink|rm|symlink/.test(err.syscall) ? 'write' : 'use';
  return new PatchAtlasError('FILE_ERROR', `cannot ${verb} ${err.path ?? err.dest}: ${why} (${err.code})`, hint);
}

/** One line for the terminal: "message (hint)". */
export function formatError(e: unknown): string {
  if (isPatchAtlasError(e) || e instanceof EngineError) return e.message;
  const sys = fromSystemError(e);
  if (sys) return sys.message;
  if (e instanceof Error) return `unexpected error: ${e.message.split('\n')[0]} (run again with --debug for the stack trace)`;
  return `unexpected error: ${String(e)}`;
}
