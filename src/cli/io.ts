/** Where a command writes; injectable so tests can run the CLI in-process. */
export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** stderr stream for progress bars (only drawn when it is a TTY). */
  errStream: NodeJS.WriteStream;
}

export const processIO: CliIO = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
  errStream: process.stderr,
};

/** Prints skipped-file warnings, the first few in full and then only a count, so logs stay readable. */
export function skipReporter(io: CliIO, quiet: boolean, limit = 10) {
  let n = 0;
  return {
    onSkip: (s: { path: string; reason: string }) => {
      n++;
      if (!quiet && n <= limit) io.err(`warning: skipped ${s.path}: ${s.reason}`);
      if (!quiet && n === limit + 1) io.err('warning: more files skipped; the summary counts them all');
    },
    get count() {
      return n;
    },
  };
}
