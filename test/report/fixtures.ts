/**
 * Small synthetic inputs for the report tests, written with the formats' own writers (atlas,
 * evaluation + patchMetrics, accuracy, patch sidecars) so they stay in sync with the stages.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { BridgeScore } from '../../src/atlas/bridge.js';
import type { EvaluatePatchesResult } from '../../src/evaluate/evaluate-patches.js';
import { patchMetrics, type SuccessMatrix } from '../../src/evaluate/metrics.js';
import { ACCURACY_FORMAT, writeAccuracy, type AccuracyReport } from '../../src/formats/accuracy.js';
import { ATLAS_FORMAT, writeAtlas, type AtlasFile } from '../../src/formats/atlas.js';
import { writeEvaluation } from '../../src/formats/evaluation.js';
import { writePatch } from '../../src/formats/patch.js';
import { producer } from '../../src/formats/producer.js';
import { gridPlacements } from '../../src/patch/placement.js';

export const WHALE = { wnid: 'n02066245', name: 'grey whale', index: 147 };
export const SHARK = { wnid: 'n01484850', name: 'great white shark', index: 2 };
const OTHER = 3; // tiger shark: a wrong clean prediction

export interface Fixture {
  dir: string;
  images: string[];
  atlas: string;
  evaluation: string;
  accuracy: string;
  patchDir: string;
}

export interface FixtureOptions {
  /** Source class label (also written into the atlas and accuracy files). */
  sourceName?: string;
  /** Names of the patches besides `noise`; files <name>.png are written. */
  patchNames?: string[];
  /** Images flipped by each patch at its best placement (of the 8 correct ones); default 5 and 3. */
  flips?: number[];
  /** Noise flips at its best placement; default 1. */
  noiseFlips?: number;
  /** Atlas-made patches: those with a JSON sidecar. */
  sidecar?: string[];
  /** Cells that get an icon file; default the first two. */
  icons?: number;
  universal?: boolean;
}

const colour = (k: number) => ({ r: (53 * k) % 256, g: (97 * k + 40) % 256, b: (151 * k + 80) % 256 });

/** 10 test images (8 classified correctly, 2 not), a 4×4 pair atlas with 6 cells, 2 patches + noise. */
export async function writeFixture(dir: string, opts: FixtureOptions = {}): Promise<Fixture> {
  const sourceName = opts.sourceName ?? WHALE.name;
  const names = opts.patchNames ?? ['baseball-03', 'whale-bridge'];
  const flips = opts.flips ?? [5, 3];
  await mkdir(join(dir, 'images'), { recursive: true });
  const images: string[] = [];
  for (let k = 0; k < 10; k++) {
    const f = join(dir, 'images', `${WHALE.wnid}_${k}.JPEG`);
    // A gradient, so thumbnails and examples are not flat.
    const w = 96;
    const h = 72;
    const buf = Buffer.alloc(w * h * 3);
    const c = colour(k + 1);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf.set([(c.r + x) % 256, (c.g + y) % 256, (c.b + x + y) % 256], (y * w + x) * 3);
    await sharp(buf, { raw: { width: w, height: h, channels: 3 } }).jpeg().toFile(f);
    images.push(f);
  }

  // Patches: one PNG each (checkerboards), a sidecar for the atlas-made ones.
  const patchDir = join(dir, 'patches');
  await mkdir(patchDir, { recursive: true });
  for (const [k, name] of names.entries()) {
    const s = 32;
    const buf = Buffer.alloc(s * s * 3);
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) buf.set(((x >> 2) + (y >> 2)) % 2 ? [240, 240 - 60 * k, 30] : [20, 60 + 80 * k, 200], (y * s + x) * 3);
    // Atlas-made patches get a sidecar, as `patch-atlas patch` writes it; the others are plain photos.
    if (opts.sidecar?.includes(name)) await writePatch(join(patchDir, `${name}.png`), { rgb: new Uint8Array(buf), px: s }, { name, kind: 'eot', model: 'mobilenet_v1_0.75', target: { wnid: SHARK.wnid, name: SHARK.name }, source: { wnid: WHALE.wnid, name: sourceName } });
    else await sharp(buf, { raw: { width: s, height: s, channels: 3 } }).png().toFile(join(patchDir, `${name}.png`));
  }

  // results.json through the real writer, from success matrices.
  const placements = gridPlacements([224, 224], [0.2, 0.3], ['top-left', 'bottom-right', 'centre']).map((p) => p.id);
  const best = placements.indexOf('top-left@0.3');
  const n = images.length;
  const correct = Uint8Array.from({ length: n }, (_, i) => (i < 8 ? 1 : 0));
  const cleanPred = Int32Array.from(correct, (c) => (c ? WHALE.index : OTHER));
  const matrix = (k: number): SuccessMatrix => ({
    placements,
    images,
    target: SHARK.index,
    label: new Int32Array(n).fill(WHALE.index),
    clean: { pred: cleanPred, correct, pTarget: new Float32Array(n).fill(0.01) },
    // Best placement flips the first k correct images; the others flip fewer (k − 1 at 0.3, k − 2 at 0.2).
    patched: placements.map((id, j) => {
      const m = j === best ? k : Math.max(0, k - (id.endsWith('0.3') ? 1 : 2));
      const pred = Int32Array.from(cleanPred, (p, i) => (i < m ? SHARK.index : p));
      return { pred, pTarget: Float32Array.from(pred, (p) => (p === SHARK.index ? 0.6 : 0.02)) };
    }),
  });
  const all = [...names.map((name, q) => ({ name, k: flips[q] ?? 0 })), { name: 'noise', k: opts.noiseFlips ?? 1 }];
  const result: EvaluatePatchesResult = {
    images,
    skipped: [{ path: join(dir, 'images', 'broken.JPEG'), reason: 'not an image' }],
    results: all.map(({ name, k }) => {
      const m = matrix(k);
      return { patch: name, matrix: m, metrics: patchMetrics(m) };
    }),
  };
  const evalDir = join(dir, 'evaluate');
  const source = opts.universal ? null : { wnid: WHALE.wnid, name: sourceName };
  // noise: null, as in results.json files from before the control was recorded: the report redraws it with seed 0.
  const files = await writeEvaluation(evalDir, { model: 'mobilenet_v1_0.75', source, target: { wnid: SHARK.wnid, name: SHARK.name }, sizes: [0.2, 0.3], positions: ['top-left', 'bottom-right', 'centre'], circular: false, noise: null, split: null }, result);

  // A pair atlas, 4×4 grid, 6 cells; bridges in the BridgeScore shape.
  const atlasDir = join(dir, 'atlas');
  await mkdir(join(atlasDir, 'icons'), { recursive: true });
  const cellsAt: Array<[number, number]> = [[0, 0], [1, 1], [1, 2], [2, 1], [3, 3], [2, 2]];
  const icons = opts.icons ?? 2;
  const cells: AtlasFile['cells'] = cellsAt.map(([i, j], k) => ({
    ...(k < icons ? { icon: join('icons', `cell-${i}-${j}.png`), iconObjective: 1 } : {}),
    i,
    j,
    x: (i + 0.5) / 4,
    y: (j + 0.5) / 4,
    count: 10 + k,
    meanAct: [0.1, 0.2],
    attr: [
      { wnid: WHALE.wnid, value: 1 - k * 0.3 },
      { wnid: SHARK.wnid, value: k * 0.3 },
    ],
    topClasses: [{ wnid: SHARK.wnid, name: k === 2 ? sourceName : SHARK.name, value: 0.5 }],
    images: [
      { path: images[k % n]!, label: WHALE.wnid, count: 4 },
      { path: images[(k + 1) % n]!, label: SHARK.wnid, count: 3 },
      { path: join(dir, 'missing.JPEG'), label: null, count: 1 },
    ],
    labels: { classes: [{ cls: 147, value: 0.6 }, { cls: 2, value: 0.3 }], other: 0.1, unlabelled: 0, top: [{ cls: 147, count: 6 }] },
  }));
  const bridges: BridgeScore[] = [2, 3, 1].map((cell, r) => ({
    cell,
    i: cellsAt[cell]![0],
    j: cellsAt[cell]![1],
    count: cells[cell]!.count,
    rank: r + 1,
    score: 0.8 - r * 0.3,
    towardB: 0.5,
    fromA: 0.6,
    fromASource: 'label',
    between: 0.7,
    t: 0.5,
    support: 1,
    reason: `cell pushes ${sourceName} toward ${SHARK.name}`,
  }));
  const atlas: AtlasFile = {
    format: ATLAS_FORMAT,
    producer: producer('mobilenet_v1_0.75'),
    kind: 'pair',
    run: join(dir, 'run'),
    model: 'mobilenet_v1_0.75',
    layer: 'conv_pw_11_relu',
    classes: [
      { wnid: WHALE.wnid, name: sourceName, column: 147 },
      { wnid: SHARK.wnid, name: SHARK.name, column: 2 },
    ],
    params: { grid: 4, minDensity: 5, margin: 0.1, k: 5, umap: { nNeighbors: 20, minDist: 0.01, metric: 'cosine', seed: 0, nEpochs: null }, topN: 2000, subsample: null, a: 147, b: 2, layout: 'pair-axis' },
    notes: [],
    points: 75,
    layout: { xy: [0.1, 0.2, 0.5, 0.5], point: [0, 1] },
    cells,
    bridges,
  };
  await writeAtlas(join(atlasDir, 'atlas.json'), atlas);
  for (let k = 0; k < icons; k++) {
    const [i, j] = cellsAt[k]!;
    await sharp({ create: { width: 48, height: 48, channels: 3, background: colour(k + 7) } }).png().toFile(join(atlasDir, 'icons', `cell-${i}-${j}.png`));
  }

  const accuracy: AccuracyReport = {
    format: ACCURACY_FORMAT,
    producer: producer('mobilenet_v1_0.75'),
    model: 'mobilenet_v1_0.75',
    backend: 'wasm',
    source: join(dir, 'images'),
    images: 10,
    top1: 0.8,
    top5: 0.9,
    correctTop1: 8,
    correctTop5: 9,
    unlabelled: 0,
    skipped: [],
    perClass: [
      { wnid: WHALE.wnid, name: sourceName, images: 10, top1: 0.8, top5: 0.9 },
      { wnid: SHARK.wnid, name: SHARK.name, images: 1, top1: 0, top5: 1 },
    ],
    predictions: [],
  };
  const accPath = join(dir, 'accuracy.json');
  await writeAccuracy(accPath, accuracy);
  return { dir, images, atlas: join(atlasDir, 'atlas.json'), evaluation: files.json, accuracy: accPath, patchDir };
}
