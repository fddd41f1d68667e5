import { afterEach, describe, expect, it, vi } from 'vitest';
import { progress } from '../../src/util/progress.js';

/** A stderr stand-in: what was written, and whether it is a terminal. */
function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, s: { isTTY, write: (t: string) => void writes.push(t) } as unknown as NodeJS.WriteStream };
}

afterEach(() => vi.restoreAllMocks());

describe('progress', () => {
  it('in a log (not a terminal) writes whole lines with rate and ETA: at most one per 10 s, and a last one', () => {
    let now = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const { writes, s } = stream(false);
    const p = progress('collect', 100, { stream: s });
    for (let i = 1; i <= 100; i++) {
      now += 1000; // 1 s per image: 100 s in all
      p.tick();
    }
    p.done();
    expect(writes.every((w) => w.endsWith('\n') && !w.includes('\r'))).toBe(true);
    // The first image, then one line per 10 s, then the end.
    expect(writes.length).toBe(11);
    expect(writes[0]).toMatch(/^collect: 1\/100 /);
    expect(writes[1]).toMatch(/^collect: 11\/100 1\.0 img\/s ETA 1:29\n$/);
    expect(writes.at(-1)).toMatch(/^collect: 100\/100 1\.0 img\/s in 1:40\n$/);
  });

  it('in a log, keeps saying it is alive every 10 s while one long step has not finished', () => {
    vi.useFakeTimers();
    try {
      const { writes, s } = stream(false);
      const p = progress('icons', 43, { stream: s, unit: 'icon' });
      vi.advanceTimersByTime(25_000);
      expect(writes).toEqual(['icons: 0/43, 0:10 elapsed, first icon not finished yet\n', 'icons: 0/43, 0:20 elapsed, first icon not finished yet\n']);
      p.update(8, 43);
      p.done();
      vi.advanceTimersByTime(30_000);
      expect(writes).toHaveLength(3); // the last line (the batch came 5 s after a heartbeat); no heartbeat after done()
      expect(writes[2]).toMatch(/^icons: 8\/43 .* in 0:25\n$/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('on a terminal redraws one bar in place, and is silent when disabled', () => {
    const tty = stream(true);
    const p = progress('evaluate', 10, { stream: tty.s });
    p.update(4, 10);
    p.done();
    expect(tty.writes.every((w) => w.startsWith('\r'))).toBe(true);
    expect(tty.writes.at(-1)).toMatch(/evaluate \[#+\.*\] 4\/10 .* in /);
    const off = stream(false);
    const q = progress('x', 10, { stream: off.s, enabled: false });
    q.update(5, 10);
    q.done();
    expect(off.writes).toEqual([]);
  });
});
