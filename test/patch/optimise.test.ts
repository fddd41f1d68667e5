import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageItem } from '../../src/data/dataset.js';
import { splitItems } from '../../src/data/split.js';
import { measurePatches } from '../../src/recipes/evaluate.js';
import type { Classifier } from '../../src/model/classifier.js';
import type { ClassRef } from '../../src/model/labels.js';
import { optimisePatch, type OptimisePatchOptions } from '../../src/patch/optimise.js';
import { pasteTf } from '../../src/patch/paste.js';
import { randomPlacements } from '../../src/patch/placement.js';
import { readPatch, sidecarPath, writePatch } from '../../src/formats/patch.js';
import { summariseTrace } from '../../src/patch/optimise.js';
import { mulberry32 } from '../../src/util/random.js';
import { loadTinyClassifier } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-optimise-'));
const S = 32;
const PER = S * S * 3;

let c: Classifier;
let target: ClassRef;
/** 16 random 32×32 training images in [0,1]. */
let images: Float32Array;
/** What optimisePatch starts from for base()'s seed: its noise init, which a 0-step run returns unchanged. */
let noiseBytes: Uint8Array;

beforeAll(async () => {
  c = await loadTinyClassifier(root, S);
  // The random tiny model barely responds to most classes; this one has room to move (measured: ~0.1 nats in 20 steps).
  target = c.labels.resolve('n03126707');
  const r = mulberry32(11);
  images = Float32Array.from({ length: 16 * PER }, () => r());
  noiseBytes = (await optimisePatch(base({ steps: 0 }))).rgb;
});

/** Small settings: 8-px patch, 4 images per step, patches a third to a half of the image. */
const base = (over: Partial<OptimisePatchOptions> = {}): OptimisePatchOptions => ({
  classifier: c,
  images,
  target,
  patchPx: 8,
  steps: 6,
  batchSize: 4,
  lr: 0.3,
  sizeRange: [0.4, 0.6],
  maxRotation: 22.5,
  seed: 3,
  ...over,
});

/** Mean log p(target) over all 16 images with the patch at fixed placements (not the ones trained on). */
function heldOutLogP(rgb: Uint8Array, side: number): number {
  const placements = randomPlacements([S, S], 16, { sizeRange: [0.4, 0.6], maxRotation: 22.5, seed: 1234 });
  return tf.tidy(() => {
    const patch = tf.div(tf.tensor3d(rgb, [side, side, 3], 'float32'), 255) as tf.Tensor3D;
    const logp = tf.logSoftmax(c.logits(pasteTf(tf.tensor4d(images, [16, S, S, 3]), patch, placements)));
    return tf.mean(tf.slice(logp, [0, target.index], [-1, 1])).dataSync()[0]!;
  });
}

describe('optimisePatch', () => {
  it('raises the target log-probability over 20 steps, measured at placements it did not train on', async () => {
    const seen: number[] = [];
    const r = await optimisePatch(base({ steps: 20, onStep: (step) => void seen.push(step) }));
    expect(r.patchPx).toBe(8);
    expect(r.rgb).toBeInstanceOf(Uint8Array);
    expect(r.rgb.length).toBe(8 * 8 * 3);
    expect(r.trace.map((s) => s.step)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(seen).toEqual(r.trace.map((s) => s.step));
    const before = heldOutLogP(noiseBytes, 8);
    const after = heldOutLogP(r.rgb, 8);
    // Deterministic measurement (fixed images and placements); a random change of the patch moves it by ~0.01.
    expect(after).toBeGreaterThan(before + 0.05);
    // The training trace agrees: the last steps' target probability beats the first steps'.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(r.trace.slice(-5).map((s) => s.pTarget))).toBeGreaterThan(mean(r.trace.slice(0, 5).map((s) => s.pTarget)));
    expect(r.settings).toMatchObject({ patchPx: 8, steps: 20, stepOffset: 0, batchSize: 4, lr: 0.3, sizeRange: [0.4, 0.6], maxRotation: 22.5, untargetedWeight: 0, seed: 3 });
  });

  it('is deterministic for a seed, and a different seed gives a different patch', async () => {
    const a = await optimisePatch(base());
    const b = await optimisePatch(base());
    const d = await optimisePatch(base({ seed: 4 }));
    expect(b.rgb).toEqual(a.rgb);
    expect(b.trace).toEqual(a.trace);
    expect(d.rgb).not.toEqual(a.rgb);
  });

  it('starts from the given bytes exactly (0 steps returns them), so a saved patch can be continued', async () => {
    const r = mulberry32(5);
    const init = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i < 6 ? [0, 255, 1, 254, 128, 127][i]! : Math.floor(r() * 256)));
    const z = await optimisePatch(base({ init, steps: 0 }));
    expect(z.rgb).toEqual(init);
    expect(z.trace).toEqual([]);
  });

  it('continuing with a step offset draws the batches the uninterrupted run would have', async () => {
    const asked: number[] = [];
    const source = (step: number, n: number) => {
      asked.push(step);
      return images.slice(0, n * PER);
    };
    const r = await optimisePatch(base({ images: source, steps: 3, stepOffset: 5 }));
    expect(asked).toEqual([5, 6, 7]);
    expect(r.trace.map((s) => s.step)).toEqual([5, 6, 7]);
    // Step k's images and placements depend only on (seed, k): with the patch held still (a vanishing
    // learning rate), step 5 of a 6-step run and the first step of a run resumed at 5 see the same loss.
    const still = 1e-12;
    const direct = await optimisePatch(base({ steps: 6, lr: still }));
    const resumed = await optimisePatch(base({ init: noiseBytes, steps: 1, stepOffset: 5, lr: still }));
    expect(resumed.trace[0]!.step).toBe(5);
    expect(resumed.trace[0]!.loss).toBeCloseTo(direct.trace[5]!.loss, 5);
    expect(direct.trace[4]!.loss).not.toBeCloseTo(direct.trace[5]!.loss, 5);
  });

  it('with an untargeted weight, also pushes down the strongest other class', async () => {
    // Same draws, patch held still: the extra term is w · mean max_{j≠t} log p_j < 0, and pTarget is unchanged.
    const w0 = await optimisePatch(base({ steps: 2, lr: 1e-12 }));
    const w1 = await optimisePatch(base({ steps: 2, lr: 1e-12, untargetedWeight: 1 }));
    w1.trace.forEach((s, i) => {
      expect(s.pTarget).toBeCloseTo(w0.trace[i]!.pTarget, 6);
      expect(s.loss).toBeLessThan(w0.trace[i]!.loss);
      // max_{j≠t} p_j ≥ (1 − p_t)/4 with 4 other classes bounds the term from below.
      expect(s.loss).toBeGreaterThan(w0.trace[i]!.loss + Math.log((1 - 0.999) / 4));
    });
    expect(w1.settings.untargetedWeight).toBe(1);
  });

  it('rejects each bad setting with its own one-line message before doing any work', async () => {
    const cases: Array<[Partial<OptimisePatchOptions>, RegExp]> = [
      [{ patchPx: 0 }, /patch side must be a whole number ≥ 1, got 0/],
      [{ patchPx: 2000 }, /patch side 2000 px is over 1024/],
      [{ steps: -1 }, /steps must be a whole number ≥ 0, got -1/],
      [{ steps: 1.5 }, /steps must be a whole number ≥ 0, got 1.5/],
      [{ batchSize: 0 }, /batch size must be a whole number ≥ 1, got 0/],
      [{ batchSize: 17 }, /batch size 17 is more than the 16 training images/],
      [{ lr: 0 }, /learning rate must be a positive number, got 0/],
      [{ lr: NaN }, /learning rate must be a positive number, got NaN/],
      [{ sizeRange: [0.5, 0.2] }, /patch size range 0.5..0.2 is empty; give the smaller size first/],
      [{ sizeRange: [0, 0.5] }, /patch size range \[0,0.5\] must be two fractions of the image side in \(0, 1\]/],
      [{ sizeRange: [0.2, 30] as [number, number] }, /must be two fractions/],
      [{ maxRotation: -1 }, /maximum rotation -1 must be between 0 and 180 degrees/],
      [{ maxRotation: 270 }, /maximum rotation 270 must be between 0 and 180/],
      [{ untargetedWeight: -0.5 }, /untargeted weight must be a number ≥ 0, got -0.5/],
      [{ seed: 1.5 }, /seed must be a whole number, got 1.5/],
      [{ stepOffset: -3 }, /step offset must be a whole number ≥ 0, got -3/],
      [{ init: new Uint8Array(10) }, /initial patch has 10 bytes, expected 8×8×3 = 192/],
      [{ images: new Float32Array(PER + 5) }, /training images hold 3077 values, not a whole number ≥ 1 of 32×32×3 images/],
      [{ images: new Float32Array(0) }, /training images hold 0 values/],
      [{ target: { index: 2, wnid: 'n01440764', name: 'tench', long: 'tench' } }, /target class n01440764 "tench" is not a class of model "tiny_layers"/],
      [{ target: { index: 99, wnid: 'n02799071', name: 'baseball', long: 'baseball' } }, /is not a class of model/],
    ];
    for (const [over, msg] of cases) {
      const before = tf.memory().numTensors;
      await expect(optimisePatch(base(over)), JSON.stringify(over)).rejects.toMatchObject({ name: 'PatchAtlasError', message: expect.stringMatching(msg) });
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('rejects a batch source that returns the wrong number of values', async () => {
    await expect(optimisePatch(base({ images: () => new Float32Array(7) }))).rejects.toThrow(/image batch for step 0 has 7 values, not a whole number ≥ 1 of 32×32×3 images/);
  });

  it('leaks no tensors, also when a step callback throws', async () => {
    await optimisePatch(base({ steps: 1 })); // warm caches (paste weights, kernels) before counting
    const before = tf.memory().numTensors;
    await optimisePatch(base({ steps: 3, untargetedWeight: 0.5 }));
    expect(tf.memory().numTensors).toBe(before);
    await expect(
      optimisePatch(
        base({
          steps: 3,
          onStep: (s) => {
            if (s === 1) throw new Error('stop');
          },
        }),
      ),
    ).rejects.toThrow('stop');
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('splitItems', () => {
  const cls = (i: number): ClassRef => ({ index: i, wnid: `n${String(10000000 + i).padStart(8, '0')}`, name: `c${i}`, long: `c${i}` });
  const items = (classes: number, perClass: number): ImageItem[] =>
    Array.from({ length: classes * perClass }, (_, k) => ({ path: `/d/${cls(k % classes).wnid}/img${k}.jpg`, label: cls(k % classes) }));
  const paths = (xs: ImageItem[]) => xs.map((x) => x.path);

  it('is deterministic, disjoint and complete, and keeps input order', () => {
    const all = items(7, 9);
    const a = splitItems(all, { testFraction: 0.3, seed: 1 });
    const b = splitItems(all, { testFraction: 0.3, seed: 1 });
    expect(b).toEqual(a);
    const tr = new Set(paths(a.train));
    expect(paths(a.test).some((p) => tr.has(p))).toBe(false);
    expect([...paths(a.train), ...paths(a.test)].sort()).toEqual(paths(all).sort());
    const order = new Map(all.map((x, i) => [x.path, i]));
    for (const side of [a.train, a.test]) expect(side.map((x) => order.get(x.path)!)).toEqual(side.map((x) => order.get(x.path)!).sort((p, q) => p - q));
    expect(paths(splitItems(all, { testFraction: 0.3, seed: 2 }).test)).not.toEqual(paths(a.test));
  });

  it('does not depend on item order (keyed by path)', () => {
    const all = items(5, 6);
    const shuffled = [...all];
    const r = mulberry32(9);
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const a = splitItems(all, { testFraction: 0.5, seed: 3 });
    const b = splitItems(shuffled, { testFraction: 0.5, seed: 3 });
    expect(paths(b.test).sort()).toEqual(paths(a.test).sort());
  });

  it('is stratified: each class sends its share to the test side', () => {
    const all = items(6, 10);
    const { test } = splitItems(all, { testFraction: 0.3, seed: 4 });
    const per = new Map<string, number>();
    for (const x of test) per.set(x.label!.wnid, (per.get(x.label!.wnid) ?? 0) + 1);
    expect([...per.values()]).toEqual([3, 3, 3, 3, 3, 3]);
  });

  it('with one image per class, sends the right number of classes to each side, a seeded choice', () => {
    const all = items(100, 1);
    const a = splitItems(all, { testFraction: 0.5, seed: 5 });
    expect(a.test.length).toBe(50);
    expect(a.train.length).toBe(50);
    const b = splitItems(all, { testFraction: 0.5, seed: 6 });
    expect(paths(b.test)).not.toEqual(paths(a.test));
    // Uneven strata: totals still round(f × N), each class within one of its exact share.
    const mixed: ImageItem[] = [...items(3, 5), ...Array.from({ length: 4 }, (_, i) => ({ path: `/u/${i}.jpg` }))];
    const m = splitItems(mixed, { testFraction: 0.25, seed: 7 });
    expect(m.test.length).toBe(Math.round(0.25 * 19));
    for (const k of [0, 1, 2]) {
      const n = m.test.filter((x) => x.label?.index === k).length;
      expect(Math.abs(n - 1.25)).toBeLessThan(1);
    }
    expect(Math.abs(m.test.filter((x) => !x.label).length - 1)).toBeLessThan(1);
  });

  it('puts repeated paths on the same side, and rejects bad fractions and seeds', () => {
    const all = items(4, 4);
    const withDup = [...all, all[0]!, all[5]!];
    const s = splitItems(withDup, { testFraction: 0.5, seed: 8 });
    const inTest = new Set(paths(s.test));
    for (const p of [all[0]!.path, all[5]!.path]) {
      const copies = withDup.filter((x) => x.path === p).length;
      expect((inTest.has(p) ? s.test : s.train).filter((x) => x.path === p).length).toBe(copies);
    }
    expect(() => splitItems(all, { testFraction: 0, seed: 1 })).toThrow(/test fraction 0 must be between 0 and 1/);
    expect(() => splitItems(all, { testFraction: 1, seed: 1 })).toThrow(/test fraction 1 must be between 0 and 1/);
    expect(() => splitItems(all, { testFraction: 0.5, seed: 0.5 })).toThrow(/split seed must be a whole number, got 0.5/);
  });
});

describe('patch sidecar', () => {
  it('round-trips the pixels and the description, and the patch evaluates as written', async () => {
    const r = await optimisePatch(base({ steps: 2 }));
    const png = join(root, 'out', 'crane-eot.png');
    const { json, sidecar } = await writePatch(png, { rgb: r.rgb, px: r.patchPx }, {
      name: 'crane-eot',
      kind: 'eot',
      model: c.descriptor.name,
      target: { wnid: target.wnid, name: target.name },
      source: { wnid: 'n02066245', name: 'grey whale' },
      cell: { layer: 'mixed4c', i: 3, j: 5, count: 12, rank: 1, score: 0.5 },
      init: 'noise',
      seed: 3,
      settings: r.settings,
      trace: summariseTrace(r.trace)!,
      createdAt: '2024-01-02T03:04:05.000Z',
    });
    expect(json).toBe(sidecarPath(png));
    expect(json.endsWith('crane-eot.json')).toBe(true);
    const onDisk = JSON.parse(readFileSync(json, 'utf8'));
    expect(onDisk).toMatchObject({ name: 'crane-eot', kind: 'eot', model: 'tiny_layers', target: { wnid: target.wnid }, patchPx: 8, createdAt: '2024-01-02T03:04:05.000Z', producer: { tool: 'patch-atlas' } });
    expect(onDisk.trace).toMatchObject({ steps: 2, firstStep: 0, lastStep: 1 });
    expect(typeof onDisk.producer.version).toBe('string');

    const back = await readPatch(png);
    expect(back.rgb).toEqual(r.rgb);
    expect(back.px).toBe(8);
    expect(back.name).toBe('crane-eot');
    expect(back.sidecar).toEqual(sidecar);
    expect(back.warning).toBeUndefined();

    // Re-applied without the atlas: a PatchInput for evaluatePatches, on a PNG image.
    const imgPath = join(root, 'img.png');
    await sharp(Buffer.from(Uint8Array.from(images.subarray(0, PER), (v) => Math.round(v * 255))), { raw: { width: S, height: S, channels: 3 } }).png().toFile(imgPath);
    const ev = await measurePatches({ classifier: c, items: [{ path: imgPath }], patches: [back], placements: randomPlacements([S, S], 1, { sizeRange: [0.5, 0.5], seed: 1 }), target });
    expect(ev.results[0]!.patch).toBe('crane-eot');

    // And continued: its bytes are an exact starting point.
    expect((await optimisePatch(base({ init: back.rgb, steps: 0 }))).rgb).toEqual(r.rgb);
  });

  it('reads a PNG without a sidecar, and ignores a sidecar that no longer matches its PNG', async () => {
    const rgb = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 7) % 256);
    const bare = join(root, 'bare.png');
    await sharp(Buffer.from(rgb), { raw: { width: 4, height: 4, channels: 3 } }).png().toFile(bare);
    const a = await readPatch(bare);
    expect(a).toMatchObject({ name: 'bare', px: 4, sidecar: null });
    expect(a.rgb).toEqual(rgb);

    const png = join(root, 'changed.png');
    await writePatch(png, { rgb, px: 4 }, { name: 'changed', kind: 'noise', model: 'tiny_layers', target: { wnid: target.wnid, name: target.name } });
    const other = Uint8Array.from(rgb, (v) => 255 - v);
    await sharp(Buffer.from(other), { raw: { width: 4, height: 4, channels: 3 } }).png().toFile(png);
    const b = await readPatch(png);
    expect(b.sidecar).toBeNull();
    expect(b.rgb).toEqual(other);
    expect(b.warning).toMatch(/changed\.json describes other pixels than .*changed\.png/);

    await expect(readPatch(join(root, 'missing.png'))).rejects.toThrow(/patch .*missing\.png does not exist/);
    writeFileSync(sidecarPath(png), '{not json');
    await expect(readPatch(png)).rejects.toThrow(/changed\.json is not valid JSON/);
  });

  it('rejects a wrong byte count, an unknown kind and a non-PNG name', async () => {
    const desc = { name: 'x', kind: 'eot' as const, model: 'm', target: { wnid: target.wnid, name: target.name } };
    await expect(writePatch(join(root, 'x.png'), { rgb: new Uint8Array(5), px: 2 }, desc)).rejects.toThrow(/has 5 bytes, expected 2×2×3/);
    await expect(writePatch(join(root, 'x.png'), { rgb: new Uint8Array(12), px: 2 }, { ...desc, kind: 'banana' as never })).rejects.toThrow(/patch kind "banana" is not one of icon, eot, photo, noise/);
    await expect(writePatch(join(root, 'x.jpg'), { rgb: new Uint8Array(12), px: 2 }, desc)).rejects.toThrow(/must end in \.png/);
  });
});
