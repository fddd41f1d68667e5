/**
 * Progress of long work on stderr. On a terminal: one bar redrawn in place. Elsewhere (CI logs, a
 * pipe, `nohup`, `2> log`): a plain line with rate and ETA every 10 s while work moves, and a heartbeat
 * line every 10 s while a long step (a batch of icons) has not finished, so a job is never silent. Off in
 * --json mode.
 */
export const LOG_INTERVAL_MS = 10_000;
export interface Progress {
  tick(n?: number): void;
  /** Set the count done so far (of a total that may change, e.g. when a resumed run learns it). */
  update(done: number, total: number): void;
  done(): void;
}

export interface ProgressOptions {
  enabled?: boolean;
  stream?: NodeJS.WriteStream;
  unit?: string;
  /** When the work started (Date.now()), if before the bar was made; rates count from here. */
  start?: number;
}

export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? true;
  const tty = Boolean(stream.isTTY);
  const unit = opts.unit ?? 'img';
  const start = opts.start ?? Date.now();
  let count = 0;
  let last = -Infinity;
  const line = (final: boolean) => {
    const secs = (Date.now() - start) / 1000;
    const rate = secs > 0 ? count / secs : 0;
    if (count === 0 && !final) return `0/${total}, ${clock(secs)} elapsed, first ${unit} not finished yet`;
    const eta = rate > 0 && total > count ? ` ETA ${clock((total - count) / rate)}` : '';
    return `${count}/${total} ${rate.toFixed(1)} ${unit}/s${final ? ` in ${clock(secs)}` : eta}`;
  };
  const draw = (final: boolean) => {
    const now = Date.now();
    if (tty) {
      if (!final && now - last < 100) return;
      last = now;
      const frac = total > 0 ? Math.min(1, count / total) : 0;
      const bar = '#'.repeat(Math.round(frac * 24)).padEnd(24, '.');
      stream.write(`\r${label} [${bar}] ${line(final)}\x1b[K${final ? '\n' : ''}`);
      return;
    }
    if (!final && now - last < LOG_INTERVAL_MS) return;
    last = now;
    stream.write(`${label}: ${line(final)}\n`);
  };
  // The heartbeat: a line every interval even when no tick comes (one batch can take minutes).
  const heartbeat = enabled && !tty ? setInterval(() => draw(false), LOG_INTERVAL_MS) : undefined;
  heartbeat?.unref();
  return {
    tick(n = 1) {
      count += n;
      if (enabled) draw(false);
    },
    update(done, newTotal) {
      total = newTotal;
      if (done === count) return;
      count = done;
      if (enabled) draw(false);
    },
    done() {
      clearInterval(heartbeat);
      if (enabled && count > 0) draw(true);
    },
  };
}

function clock(s: number): string {
  const m = Math.floor(s / 60);
  const r = Math.round(s % 60);
  return `${m}:${String(r).padStart(2, '0')}`;
}

/**
 * A bar made on the first update, when the total is known (recipes report `onProgress(done, total)`),
 * timed from when this was called. `update` fits any recipe's onProgress.
 */
export function lazyProgress(label: string, opts: Omit<ProgressOptions, 'start'> = {}) {
  const start = Date.now();
  let bar: Progress | undefined;
  return {
    update: (done: number, total: number) => {
      bar ??= progress(label, total, { ...opts, start });
      bar.update(done, total);
    },
    done: () => {
      bar?.done();
      bar = undefined;
    },
  };
}
