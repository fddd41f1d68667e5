/** A one-line progress bar on a terminal (stderr); silent when stderr is not a TTY or in --json mode. */
export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export interface ProgressOptions {
  enabled?: boolean;
  stream?: NodeJS.WriteStream;
  unit?: string;
}

export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = (opts.enabled ?? true) && Boolean(stream.isTTY);
  const unit = opts.unit ?? 'img';
  const start = Date.now();
  let count = 0;
  let last = 0;
  const draw = (final: boolean) => {
    const now = Date.now();
    if (!final && now - last < 100) return;
    last = now;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? count / secs : 0;
    const frac = total > 0 ? Math.min(1, count / total) : 0;
    const width = 24;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const eta = rate > 0 && total > count ? ` ETA ${clock((total - count) / rate)}` : '';
    stream.write(`\r${label} [${bar}] ${count}/${total} ${rate.toFixed(1)} ${unit}/s${final ? ` in ${clock(secs)}` : eta}\x1b[K`);
    if (final) stream.write('\n');
  };
  return {
    tick(n = 1) {
      count += n;
      if (enabled) draw(false);
    },
    done() {
      if (enabled) draw(true);
    },
  };
}

function clock(s: number): string {
  const m = Math.floor(s / 60);
  const r = Math.round(s % 60);
  return `${m}:${String(r).padStart(2, '0')}`;
}
