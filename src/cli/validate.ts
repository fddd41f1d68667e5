import { PatchAtlasError } from '../errors.js';

/** One message per bad numeric flag, naming it (validated once, at the CLI boundary). */
export function wholeNumber(flag: string, v: number | undefined, min = 1): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new PatchAtlasError('BAD_FLAG', `--${flag} ${v} must be a whole number >= ${min}`);
}
