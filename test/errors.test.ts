import { mkdtempSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatError, fromSystemError } from '../src/errors.js';

/** A file-system failure the user caused is one FILE_ERROR line naming the path, never "unexpected error". */
describe('fromSystemError', () => {
  const root = mkdtempSync(join(tmpdir(), 'pa-errors-'));
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');

  it('names the path and the cause of an output path that is a file', async () => {
    const err = await mkdir(file).catch((e: unknown) => e);
    const typed = fromSystemError(err)!;
    expect(typed.code).toBe('FILE_ERROR');
    expect(typed.message).toBe(`cannot write ${file}: a file is in the way (EEXIST); remove it or choose another path`);
    const below = await writeFile(join(file, 'out.json'), '{}').catch((e: unknown) => e);
    expect(fromSystemError(below)!.message).toMatch(/^cannot write .*a-file\/out\.json: part of the path is a file, not a folder \(ENOTDIR\)/);
    expect(formatError(below)).not.toMatch(/unexpected error/);
  });

  it('leaves other errors alone (those are bugs, and say so)', () => {
    expect(fromSystemError(new TypeError('x is undefined'))).toBeUndefined();
    expect(formatError(new TypeError('x is undefined'))).toMatch(/^unexpected error: x is undefined/);
  });
});
