import { describe, expect, it } from 'vitest';
import { mulberry32, replaying } from '../../src/util/random.js';

describe('replaying', () => {
  it('draws once from each stream, then replays the same draws, leaving the streams where one call would', () => {
    const a = mulberry32(1);
    const b = mulberry32(2);
    const f = replaying([a, b], ([x, y]) => [x!(), y!(), x!()]);
    const first = f();
    expect(f()).toEqual(first);
    expect(f()).toEqual(first);
    const ref1 = mulberry32(1);
    const ref2 = mulberry32(2);
    expect(first).toEqual([ref1(), ref2(), ref1()]);
    // The streams moved on by exactly the first call's draws.
    expect(a()).toBe(ref1());
    expect(b()).toBe(ref2());
  });

  it('refuses a later call that draws more than the first (it would not be the same image)', () => {
    let n = 1;
    const f = replaying([mulberry32(3)], ([x]) => Array.from({ length: n++ }, () => x!()));
    f();
    expect(() => f()).toThrow(/drew more than the first/);
  });
});
