import { afterEach, describe, expect, it, vi } from 'vitest';
import { progress } from '../../src/util/progress.js';

/** A stderr stand-in: what was written, and whether it is a terminal. */
function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, s: { isTTY, write: (t: string) => void writes.push(t) } as unknown as NodeJS.WriteStream };
}

afterEach(() => vi.restoreAllMocks());

describe('progress', () => {
  it('in a log (not a terminal) writes whole lines: at most one per tenth of the work and 15 s, and a last one', () => {
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
    // The first image, then every 15 s once a new tenth is reached, then the end.
    expect(writes.length).toBeGreaterThanOrEqual(5);
    expect(writes.length).toBeLessThanOrEqual(9);
    expect(writes[0]).toMatch(/^collect: 1\/100 /);
    expect(writes.at(-1)).toMatch(/^collect: 100\/100 1\.0 img\/s in 1:40\n$/);
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
