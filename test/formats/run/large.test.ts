import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { RunReader, RunWriter, hashImageList, type ImageRecord, type RunIdentity } from '../../../src/formats/run/index.js';
import { tempDir } from './fixtures.js';

/**
 * A run whose acts file is ~200 MB must be finalized and read with memory that does not grow with
 * the file: the writer streams chunks through one copy buffer, the reader reads block by block.
 */
const CHANNELS = 512;
const CLASSES = 10;
const IMAGES = 100_000; // one point each → acts = 100k × 512 × 4 B ≈ 205 MB
const PER_CHUNK = 4096;
// Holding acts would be +205 MB; measured growth is a few tens of MB (block buffers not yet collected).
const RSS_BOUND_MB = 80;

const act = (img: number, c: number) => Math.fround(img + c / 1024);

let dir: string;
let cleanup: () => Promise<void>;
let run: string;

function measure(): { sample(): void; growthMb(): number } {
  const before = process.memoryUsage().rss;
  let peak = before;
  return {
    sample() {
      peak = Math.max(peak, process.memoryUsage().rss);
    },
    growthMb: () => (peak - before) / 2 ** 20,
  };
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('pa-store-large-'));
  run = join(dir, 'run');
});
afterAll(async () => cleanup());

describe('larger-than-memory style run', () => {
  it('finalizes ~200 MB of chunks in bounded memory', async () => {
    const images: ImageRecord[] = Array.from({ length: IMAGES }, (_, i) => ({ path: `i${i}.jpg`, label: null }));
    const identity: RunIdentity = {
      model: 'm',
      layer: 'l',
      seed: 1,
      positions: 1,
      labelSet: 'imagenet',
      classes: Array.from({ length: CLASSES }, (_, c) => `n${c}`),
      channels: CHANNELS,
      layerShape: [7, 7, CHANNELS],
      imageListHash: hashImageList(images),
    };
    const w = await RunWriter.open(run, identity, images, null);
    // One set of buffers reused for every chunk, so the test itself stays small.
    const acts = new Float32Array(PER_CHUNK * CHANNELS);
    const attr = new Uint16Array(PER_CHUNK * CLASSES).fill(0x3c00);
    const meta = new Int32Array(PER_CHUNK * 6);
    const prob = new Float32Array(PER_CHUNK * 2).fill(0.5);
    for (let first = 0; first < IMAGES; first += PER_CHUNK) {
      const n = Math.min(PER_CHUNK, IMAGES - first);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < CHANNELS; c++) acts[r * CHANNELS + c] = act(first + r, c);
        meta.set([first + r, 1, 1, -1, 0, 0], r * 6);
      }
      await w.writeChunk({
        images: Array.from({ length: n }, (_, r) => first + r),
        acts: acts.subarray(0, n * CHANNELS),
        attr: attr.subarray(0, n * CLASSES),
        meta: meta.subarray(0, n * 6),
        prob: prob.subarray(0, n * 2),
        skipped: [],
      });
    }
    const m = measure();
    const timer = setInterval(m.sample, 2);
    try {
      await w.finalize();
    } finally {
      clearInterval(timer);
      m.sample();
    }
    expect((await stat(join(run, 'acts.f32'))).size).toBe(IMAGES * CHANNELS * 4);
    console.log(`finalize RSS growth: ${m.growthMb().toFixed(1)} MB for a ${((IMAGES * CHANNELS * 4) / 2 ** 20).toFixed(0)} MB acts file`);
    expect(m.growthMb()).toBeLessThan(RSS_BOUND_MB);
  });

  it('streams the acts file with blocks, column and rows without memory growing with it', async () => {
    const r = await RunReader.open(run);
    try {
      const m = measure();
      let rows = 0;
      for await (const b of r.blocks('acts', 2048)) {
        // Spot-check values: first and last row of each block, a few channels.
        for (const k of [0, b.rows - 1]) for (const c of [0, 255, 511]) if (b.data[k * CHANNELS + c] !== act(b.start + k, c)) throw new Error(`acts[${b.start + k}, ${c}] wrong`);
        rows += b.rows;
        m.sample();
      }
      expect(rows).toBe(IMAGES);
      const col = await r.column('acts', 3);
      m.sample();
      expect(col[IMAGES - 1]).toBe(act(IMAGES - 1, 3));
      const idx = Array.from({ length: 5000 }, (_, i) => (i * 7919) % IMAGES);
      const picked = await r.rows('acts', idx);
      m.sample();
      expect(picked[4999 * CHANNELS + 10]).toBe(act(idx[4999]!, 10));
      console.log(`reader RSS growth: ${m.growthMb().toFixed(1)} MB`);
      expect(m.growthMb()).toBeLessThan(RSS_BOUND_MB);
    } finally {
      await r.close();
    }
  });
});
