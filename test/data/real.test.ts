import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageBatches } from '../../src/data/batches.js';
import { openDataset } from '../../src/data/dataset.js';
import { DEFAULT_PREPROCESS } from '../../src/data/decode.js';
import { LabelSet } from '../../src/model/labels.js';
import { SAMPLE_DIR, describeReal } from '../helpers/real.js';

/**
 * The shared ImageNet sample (1000 JPEGs, one per class, `<wnid>_<name>.JPEG`). These tests need
 * only the images, not the model, so they run whenever PATCH_ATLAS_DATA points at them; otherwise
 * describeReal skips with its reason (or fails under PATCH_ATLAS_REQUIRE_REAL).
 */
const describeSample = SAMPLE_DIR && existsSync(SAMPLE_DIR) ? describe : describeReal;
const labels = new LabelSet(JSON.parse(readFileSync(new URL('../../models/labels/imagenet-1000.json', import.meta.url), 'utf8')));

describeSample('data on the real ImageNet sample', () => {
  it('opens as 1000 labelled items whose labels match the file-name wnids, one per class', async () => {
    const ds = await openDataset(SAMPLE_DIR!, labels);
    expect(ds.layout).toBe('wnid-files');
    expect(ds.items).toHaveLength(1000);
    expect(ds.unlabelled).toBe(0);
    expect(ds.skipped).toEqual([]);
    for (const item of ds.items) expect(item.label?.wnid).toBe(basename(item.path).slice(0, 9));
    expect(new Set(ds.items.map((i) => i.label!.index)).size).toBe(1000);
    const paths = ds.items.map((i) => i.path);
    expect(paths).toEqual([...paths].sort());
  });

  it('decodes every sample image through imageBatches without a skip', async () => {
    const ds = await openDataset(SAMPLE_DIR!, labels);
    const skipped: string[] = [];
    let n = 0;
    const t0 = performance.now();
    for await (const b of imageBatches(ds.items, { pre: DEFAULT_PREPROCESS, batchSize: 32, concurrency: 4, onSkip: (s) => skipped.push(s.reason) })) {
      expect(b.shape.slice(1)).toEqual([224, 224, 3]);
      expect(b.pixels.length).toBe(b.shape[0] * 224 * 224 * 3);
      expect(b.items).toEqual(ds.items.slice(n, n + b.shape[0]));
      n += b.shape[0];
    }
    const ms = performance.now() - t0;
    // Reported, not asserted: timings vary with the machine.
    console.log(`decoded ${n} sample images in ${(ms / 1000).toFixed(1)} s: ${(ms / n).toFixed(1)} ms/image (concurrency 4)`);
    expect(skipped).toEqual([]);
    expect(n).toBe(1000);
  });
});
