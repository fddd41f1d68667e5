import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../src/recipes/collect.js';
import { buildAtlas } from '../../src/recipes/atlas.js';
import { readEnv } from '../../src/config.js';
import { openDataset } from '../../src/data/dataset.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { readEvaluation } from '../../src/formats/evaluation.js';
import { readPatch, writePatch } from '../../src/formats/patch.js';
import { readSplit } from '../../src/formats/split.js';
import { runCli } from '../helpers/cli.js';
import { removeDir } from '../helpers/images.js';
import { saveLayersModel, tinyLayersModel, TINY_CLASSES, writeTinyDescriptor } from '../helpers/tiny-models.js';

/** collect → atlas (library) → `patch` and `evaluate --split` (CLI) on the tiny model, with tiny budgets. */
const root = mkdtempSync(join(tmpdir(), 'pa-patch-cmd-'));
const images = join(root, 'images');
const weights = join(root, 'tiny_layers');
let desc: string;
let atlasPath: string;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), weights);
  desc = writeTinyDescriptor(join(root, 'd'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  const c = await Classifier.load({ model: desc, env: { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') } });
  mkdirSync(images);
  for (let i = 0; i < 12; i++) {
    const wnid = TINY_CLASSES[i % 3]![0];
    const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => ((k * (i + 3) * 2654435761) >>> 24) & 255));
    await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(images, `${wnid}_${i}.png`));
  }
  const ds = await openDataset(images, c.labels);
  await collect(c, ds, { layer: 'conv_pw_1_relu', out: join(root, 'run'), positions: 'all', seed: 3, shard: null, batchSize: 6 });
  atlasPath = (await buildAtlas({ run: join(root, 'run'), classes: ['n02066245', 'n01484850'], grid: 4, minDensity: 2, umap: { seed: 1, nEpochs: 50 } })).path;
  c.dispose();
});

afterAll(() => removeDir(root));

const tiny = () => ['--model', desc, '--weights', weights, '--offline'];

describe('patch command', () => {
  const out = () => join(root, 'patches', 'whale-shark');
  const args = () => ['patch', '--atlas', atlasPath, '--cells', '2', '--images', images, '--out', out(), '--side', '32', '--steps', '2', '--batch-size', '2', '--icon-steps', '2', '--lr', '0.5', '--seed', '7', '--json', ...tiny()];

  it('writes icon and EOT patches with sidecars and split.json, and keeps them on a re-run', async () => {
    const r = await runCli(args());
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out);
    const atlas = JSON.parse(readFileSync(atlasPath, 'utf8'));
    const top = atlas.bridges.slice(0, 2).map((b: { cell: number }) => atlas.cells[b.cell]);
    const names = top.flatMap((cell: { i: number; j: number }, k: number) => [`icon-${k + 1}-cell-${cell.i}-${cell.j}`, `eot-${k + 1}-cell-${cell.i}-${cell.j}`]);
    expect(s.patches.map((p: { name: string }) => p.name)).toEqual([...names, 'eot-noise']);
    expect(s.patches.every((p: { kept: boolean }) => !p.kept)).toBe(true);
    expect(s.target).toEqual({ wnid: 'n01484850', name: 'great white shark' });

    // split.json: every image on exactly one side, half held out, paths relative to the folder.
    const split = JSON.parse(readFileSync(join(out(), 'split.json'), 'utf8'));
    expect(split.train.length + split.test.length).toBe(12);
    expect(split.test).toHaveLength(6);
    expect(split.train.some((p: string) => split.test.includes(p))).toBe(false);
    expect(split.test[0]).toMatch(/^\.\.\/\.\.\/images\//);

    for (const p of s.patches) {
      const rp = await readPatch(p.png);
      expect(rp.sidecar, p.name).not.toBeNull();
      expect(rp.px).toBe(32);
      const sc = rp.sidecar! as unknown as Record<string, any>;
      expect(sc.model).toBe('tiny_layers');
      expect(sc.target.wnid).toBe('n01484850');
      expect(sc.source.wnid).toBe('n02066245');
      expect(sc.objective.kind).toBe(p.kind === 'icon' ? 'direction-cossim' : 'eot-log-prob');
      if (p.name !== 'eot-noise') {
        const cell = top.find((c: { i: number; j: number }) => p.name.endsWith(`-${c.i}-${c.j}`));
        expect(sc.cell).toMatchObject({ i: cell.i, j: cell.j, layer: 'conv_pw_1_relu' });
        expect(sc.cell.rank).toBeGreaterThanOrEqual(1);
        expect(typeof sc.cell.reason).toBe('string');
        expect(Number.isFinite(sc.cell.score)).toBe(true);
        expect(Array.isArray(sc.cell.topClasses)).toBe(true);
      }
      if (p.kind === 'eot') {
        expect(sc.settings).toMatchObject({ patchPx: 32, steps: 2, batchSize: 2, lr: 0.5, sizeRange: [0.2, 0.5], maxRotation: 22.5, seed: 7 });
        expect(sc.trace.steps).toBe(2);
        expect(sc.split).toMatchObject({ file: 'split.json', testFraction: 0.5, seed: 0, train: 6, test: 6 });
        expect(sc.init).toBe(p.name === 'eot-noise' ? 'noise' : p.name.replace('eot-', 'icon-') + '.png');
      } else {
        expect(sc.settings).toMatchObject({ patchPx: 32, steps: 2 });
        expect(Number.isFinite(sc.objective.value)).toBe(true);
      }
    }

    // Re-run: everything kept, files untouched.
    const mtimes = s.patches.map((p: { png: string }) => statSync(p.png).mtimeMs);
    const again = await runCli(args());
    expect(again.code, again.err).toBe(0);
    const s2 = JSON.parse(again.out);
    expect(s2.patches.every((p: { kept: boolean }) => p.kept)).toBe(true);
    expect(s2.patches.map((p: { png: string }) => statSync(p.png).mtimeMs)).toEqual(mtimes);

    // A different split into the same folder is refused, naming the flags to change.
    const other = await runCli([...args(), '--split-seed', '3']);
    expect(other.code).toBe(2);
    expect(other.err.trim().split('\n')).toHaveLength(1);
    expect(other.err).toMatch(/different split.*--split-seed/);
  });

  it('evaluate --split measures only the held-out images', async () => {
    const split = readSplit(join(out(), 'split.json'));
    const evalOut = join(root, 'eval');
    const r = await runCli(['evaluate', '--patches', out(), '--images', images, '--split', join(out(), 'split.json'), '--target', 'great white shark', '--sizes', '0.3', '--positions', 'top-left', '--out', evalOut, '--json', ...tiny()]);
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(readFileSync(join(evalOut, 'results.json'), 'utf8'));
    expect(res.images.length).toBeGreaterThan(0);
    for (const p of res.images) expect(split.test.has(resolve(p))).toBe(true);
    // Every held-out image not labelled the target is there.
    const expected = [...split.test].filter((p) => !p.includes('n01484850'));
    expect(res.images.map((p: string) => resolve(p)).sort()).toEqual(expected.sort());
    expect(res.split.file).toBe(join(out(), 'split.json'));
    const missing = await runCli(['evaluate', '--patches', out(), '--images', images, '--split', join(root, 'nope.json'), '--target', 'great white shark', ...tiny()]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/--split .*nope\.json does not exist/);
  });

  it('evaluate takes the class pair from the patches\' sidecars, and refuses patches for different pairs', async () => {
    const evalOut = join(root, 'eval-sidecars');
    const r = await runCli(['evaluate', '--patches', out(), '--images', images, '--sizes', '0.3', '--positions', 'top-left', '--out', evalOut, ...tiny()]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/classes from the patches' sidecars: grey whale → great white shark/);
    const res = readEvaluation(evalOut);
    expect(res.source).toEqual({ wnid: 'n02066245', name: 'grey whale' });
    expect(res.target).toEqual({ wnid: 'n01484850', name: 'great white shark' });
    // Targeted: only the grey whales count.
    expect(res.images.length).toBeGreaterThan(0);
    for (const im of res.images) expect(im).toMatch(/n02066245_/);

    const other = join(root, 'other-pair');
    const icon = await readPatch(join(out(), 'eot-noise.png'));
    await writePatch(join(other, 'to-baseball.png'), { rgb: icon.rgb, px: icon.px }, { name: 'to-baseball', kind: 'eot', model: 'tiny_layers', target: { wnid: 'n02799071', name: 'baseball' } });
    const mixed = await runCli(['evaluate', '--patches', out(), other, '--images', images, ...tiny()]);
    expect(mixed.code).toBe(2);
    expect(mixed.err.trim().split('\n')).toHaveLength(1);
    expect(mixed.err).toMatch(/sidecars name different class pairs: grey whale → great white shark \(.*\), any → baseball \(.*to-baseball\.png\); evaluate them separately, or give --source and --target/);
  });

  it('bad flags give one line naming the flag', async () => {
    const range = await runCli(['patch', '--atlas', atlasPath, '--images', images, '--sizes-range', '0.5,0.2', ...tiny()]);
    expect(range.code).toBe(2);
    expect(range.err).toMatch(/--sizes-range 0\.5,0\.2 must be/);
    const cells = await runCli(['patch', '--atlas', atlasPath, '--images', images, '--cells', 'some', ...tiny()]);
    expect(cells.err).toMatch(/--cells some must be/);
    expect(existsSync(join(root, 'patches', 'split.json'))).toBe(false);
  });
});
