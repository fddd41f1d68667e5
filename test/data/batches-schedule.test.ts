import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Batch } from '../../src/data/batches.js';
import { PatchAtlasError } from '../../src/errors.js';

/**
 * Scheduling of imageBatches with a fake decoder we can hold and release: bounded concurrency,
 * prefetch while the consumer works, bounded read-ahead, and stopping early. Real decoding is
 * covered in data-batches.test.ts.
 */
const fake = vi.hoisted(() => {
  const state = {
    started: [] as string[],
    inFlight: 0,
    maxInFlight: 0,
    pending: new Map<string, () => void>(),
    /** When true, decodes finish as soon as they start. */
    auto: true,
    fail: new Map<string, Error>(),
  };
  return state;
});

vi.mock('../../src/data/decode.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/data/decode.js')>();
  return {
    ...orig,
    decodeImage: async (path: string) => {
      fake.started.push(path);
      fake.inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
      try {
        if (!fake.auto) await new Promise<void>((res) => fake.pending.set(path, res));
        else await new Promise((res) => setTimeout(res, 1));
        const err = fake.fail.get(path);
        if (err) throw err;
        return { data: new Uint8Array(2 * 2 * 3).fill(51), height: 2, width: 2, sourceWidth: 2, sourceHeight: 2 };
      } finally {
        fake.inFlight--;
      }
    },
  };
});

const { imageBatches } = await import('../../src/data/batches.js');

const PRE = { size: [2, 2] as [number, number], resizeShorter: null };
const items = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `img-${i}` }));
const tick = () => new Promise((res) => setTimeout(res, 5));
/** Wait until no new decode has started for a while (robust to slow machines, no timing asserts). */
async function settle(): Promise<void> {
  let last = -1;
  let still = 0;
  for (let i = 0; i < 200 && still < 4; i++) {
    await tick();
    still = fake.started.length === last && fake.inFlight === 0 ? still + 1 : 0;
    last = fake.started.length;
  }
}

beforeEach(() => {
  fake.started = [];
  fake.inFlight = 0;
  fake.maxInFlight = 0;
  fake.pending.clear();
  fake.auto = true;
  fake.fail.clear();
});

describe('imageBatches scheduling', () => {
  it('never runs more decodes at once than `concurrency` (default 4)', async () => {
    for await (const _ of imageBatches(items(40), { pre: PRE, batchSize: 8 })) void _;
    expect(fake.maxInFlight).toBe(4);
    fake.maxInFlight = 0;
    for await (const _ of imageBatches(items(40), { pre: PRE, batchSize: 8, concurrency: 2 })) void _;
    expect(fake.maxInFlight).toBe(2);
  });

  it('prefetches the next batch while the consumer works, and reads ahead no further than that', async () => {
    const gen = imageBatches(items(100), { pre: PRE, batchSize: 10, concurrency: 4 });
    const first = await gen.next();
    expect(first.value?.shape).toEqual([10, 2, 2, 3]);
    // The consumer now "works" (does not call next): decoding continues in the background...
    await settle();
    const started = fake.started.length;
    expect(started).toBeGreaterThanOrEqual(20);
    // ...but stops one batch (plus the decodes in flight) ahead: bounded memory.
    expect(started).toBeLessThanOrEqual(10 + 10 + 4);
    await gen.return(undefined);
  });

  it('starts decodes in input order and cancels the unstarted ones when the consumer stops early', async () => {
    fake.auto = false;
    const gen = imageBatches(items(50), { pre: PRE, batchSize: 5, concurrency: 2 });
    const firstP = gen.next();
    await tick();
    expect(fake.started).toEqual(['img-0', 'img-1']);
    // Release in reverse order: the output order must still be the input order.
    for (let i = 0; i < 5; i++) {
      await tick();
      const keys = [...fake.pending.keys()].reverse();
      for (const k of keys) {
        fake.pending.get(k)!();
        fake.pending.delete(k);
      }
    }
    const first = await firstP;
    expect(first.done).toBe(false);
    expect((first.value as Batch).items.map((i) => i.path)).toEqual(['img-0', 'img-1', 'img-2', 'img-3', 'img-4']);
    expect(fake.started.slice(0, 5)).toEqual(['img-0', 'img-1', 'img-2', 'img-3', 'img-4']);
    await gen.return(undefined);
    // Let whatever was in flight finish; nothing new may start after the stop.
    for (const [, release] of fake.pending) release();
    await tick();
    const after = fake.started.length;
    await tick();
    expect(fake.started.length).toBe(after);
    expect(after).toBeLessThanOrEqual(5 + 5 + 2);
  });

  it('skips BAD_IMAGE failures but lets other errors (bugs) through', async () => {
    fake.fail.set('img-1', new PatchAtlasError('BAD_IMAGE', 'cannot read image img-1: broken'));
    const skipped: string[] = [];
    const got: string[] = [];
    for await (const b of imageBatches(items(4), { pre: PRE, batchSize: 2, onSkip: (s) => skipped.push(`${s.path}: ${s.reason}`) }))
      got.push(...b.items.map((i) => i.path));
    expect(got).toEqual(['img-0', 'img-2', 'img-3']);
    expect(skipped).toEqual(['img-1: cannot read image img-1: broken']);

    fake.fail.set('img-2', new TypeError('bug'));
    const run = async () => {
      for await (const _ of imageBatches(items(4), { pre: PRE, batchSize: 2 })) void _;
    };
    await expect(run()).rejects.toThrow(TypeError);
  });

  it('converts bytes to [0,1] floats', async () => {
    const gen = imageBatches(items(1), { pre: PRE, batchSize: 1 });
    const { value } = await gen.next();
    expect(value!.pixels[0]).toBeCloseTo(0.2, 6);
  });
});
