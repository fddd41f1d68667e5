import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.js';

/** Runs the CLI in-process and captures what it prints. */
export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (s) => void (out += s.endsWith('\n') ? s : s + '\n'),
    err: (s) => void (err += s.endsWith('\n') ? s : s + '\n'),
    errStream: new PassThrough() as unknown as NodeJS.WriteStream,
  });
  return { code, out, err };
}
