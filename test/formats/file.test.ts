import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/index.js';
import { isPatchAtlasError } from '../../src/errors.js';
import { readAccuracy } from '../../src/formats/accuracy.js';
import { ATLAS_FORMAT, readAtlas } from '../../src/formats/atlas.js';
import { readEvaluation } from '../../src/formats/evaluation.js';
import { parseJsonText } from '../../src/formats/file.js';
import { readLabelFile } from '../../src/formats/labels.js';
import { readPatch } from '../../src/formats/patch.js';
import { PIPELINE_FORMAT, readPipelineState } from '../../src/formats/pipeline.js';
import { producer } from '../../src/formats/producer.js';
import { readSplit, writeSplit } from '../../src/formats/split.js';
import { removeDir } from '../helpers/images.js';

/**
 * Every format has one reader that checks what it reads: files of this version pass, older versions are
 * upgraded (so `run`'s cached stages stay usable), and a foreign, newer or damaged file is one line that
 * names the file and what is wrong.
 */
const root = mkdtempSync(join(tmpdir(), 'pa-formats-'));
afterAll(() => removeDir(root));

const write = (name: string, value: unknown) => {
  const p = join(root, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
  return p;
};

/** The message of what `f` throws: a PatchAtlasError of one line. */
function failure(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isPatchAtlasError(e)).toBe(true);
    const msg = (e as Error).message;
    expect(msg.split('\n')).toHaveLength(1);
    return msg;
  }
  throw new Error('no error');
}

/** An atlas.json as version 1 wrote it (a pair atlas of two cells, icons rendered at 48 px). */
function atlasV1() {
  const cell = (i: number) => ({
    i,
    j: 0,
    x: 0.1,
    y: 0.2,
    count: 7,
    meanAct: [0.5, null],
    attr: [{ wnid: 'n02066245', value: 0.3 }],
    topClasses: [{ wnid: 'n01484850', name: 'great white shark', value: 0.4 }],
    images: [{ path: 'a.JPEG', label: 'n02066245', count: 7 }],
    labels: { classes: [{ cls: 147, value: 1 }], other: 0, unlabelled: 0, top: [{ cls: 147, count: 7 }] },
    icon: `icons/cell-${i}-0.png`,
    iconObjective: 1.5,
  });
  return {
    format: 'patch-atlas-atlas/1',
    version: '0.1.0',
    kind: 'pair',
    run: '/runs/r',
    model: 'mobilenet_v1_0.75',
    layer: 'conv_pw_11_relu',
    classes: [
      { wnid: 'n02066245', name: 'grey whale', column: 147 },
      { wnid: 'n01484850', name: 'great white shark', column: 2 },
    ],
    params: { grid: 4, minDensity: 5, margin: 0.1, k: 5, umap: { nNeighbors: 20, minDist: 0.01, metric: 'cosine', seed: 0, nEpochs: null }, topN: 2000, subsample: null, a: 147, b: 2, layout: 'pair-axis' },
    notes: [],
    points: 14,
    layout: { xy: [0.1, 0.2], point: [3] },
    cells: [cell(0), cell(1)],
    bridges: [{ cell: 1, i: 1, j: 0, count: 7, rank: 1, score: 0.5, towardB: 0.2, fromA: null, fromASource: 'none', between: null, t: null, support: 1, reason: 'r' }],
    iconSettings: { size: 48, steps: 128, tries: 1, cossimPower: 2, seed: 0 },
  };
}

describe('format readers', () => {
  it('upgrade a version-1 atlas: the icon side becomes iconPx, and the producer is recorded as unknown', () => {
    const a = readAtlas(write('v1/atlas.json', atlasV1()));
    expect(a.format).toBe(ATLAS_FORMAT);
    expect(a.iconSettings).toEqual({ iconPx: 48, steps: 128, tries: 1, cossimPower: 2, seed: 0 });
    expect(a.producer).toMatchObject({ tool: 'patch-atlas', version: '0.1.0', model: 'mobilenet_v1_0.75', engine: 'unknown' });
    expect(a.cells[0]!.meanAct).toEqual([0.5, null]);
    // The folder may be named instead of the file.
    expect(readAtlas(join(root, 'v1')).points).toBe(14);
  });

  it('name the file and the problem in one line: missing, not JSON, foreign, newer, damaged', () => {
    expect(failure(() => readAtlas(join(root, 'none.json'), { label: '--atlas' }))).toMatch(/^--atlas .*none\.json does not exist; write one with `patch-atlas atlas/);
    expect(failure(() => readAtlas(write('bad.json', '{"format": ')))).toMatch(/bad\.json is not valid JSON/);
    expect(failure(() => readAtlas(write('acc.json', { top1: 0.5, images: 2 })))).toMatch(/acc\.json is not an atlas\.json written by `patch-atlas atlas`/);
    expect(failure(() => readAtlas(write('list.json', [1, 2])))).toMatch(/holds a list, not a JSON object/);
    expect(failure(() => readAtlas(write('v9.json', { ...atlasV1(), format: 'patch-atlas-atlas/9' })))).toMatch(/has format "patch-atlas-atlas\/9", this patch-atlas reads patch-atlas-atlas\/1, patch-atlas-atlas\/2; use the patch-atlas version that wrote it/);
    const damaged = atlasV1();
    (damaged.cells[1] as { count: unknown }).count = 'seven';
    expect(failure(() => readAtlas(write('damaged.json', damaged)))).toMatch(/damaged\.json is damaged: "cells\[1\]\.count": .*number/);
    expect(failure(() => readAtlas(root))).toMatch(/is a folder without atlas\.json/);
  });

  it('upgrade a version-1 results.json: the split in one shape, the noise control recorded', () => {
    const metrics = {
      images: 1,
      correctBefore: 1,
      notTargetBefore: 1,
      placements: [],
      static: { placement: 'x', targeted: { k: 0, n: 0, p: null, lo: 0, hi: 1 }, untargeted: { k: 0, n: 0, p: null, lo: 0, hi: 1 }, pTarget: { before: 0, after: 0, change: { n: 0, mean: null, lo: null, hi: null } } },
      dynamic: { targeted: { k: 0, n: 0, p: null, lo: 0, hi: 1 }, untargeted: { k: 0, n: 0, p: null, lo: 0, hi: 1 }, universal: { k: 0, n: 0, p: null, lo: 0, hi: 1 }, pTarget: { before: 0, after: 0, change: { n: 0, mean: null, lo: null, hi: null } } },
      universal: { static: { placement: 'x', rate: { k: 0, n: 0, p: null, lo: 0, hi: 1 } }, dynamic: { k: 0, n: 0, p: null, lo: 0, hi: 1 } },
    };
    const v1 = { model: 'm', source: null, target: { wnid: 'n01484850', name: 'great white shark' }, sizes: [0.3], positions: ['centre'], circular: false, images: ['a'], skipped: [], patches: [{ patch: 'p', metrics }, { patch: 'noise-control', metrics }] };
    const fromFile = readEvaluation(write('e1/results.json', { ...v1, split: 'patches/split.json' }));
    expect(fromFile.split).toEqual({ file: 'patches/split.json', testFraction: null, seed: null, candidates: null });
    expect(fromFile.noise).toEqual({ name: 'noise-control', patchPx: 64, seed: 0 });
    const fromRun = readEvaluation(write('e2/results.json', { ...v1, seed: 4, split: { testFraction: 0.5, seed: 4, candidates: 30 } }));
    expect(fromRun.split).toEqual({ file: null, testFraction: 0.5, seed: 4, candidates: 30 });
    expect(fromRun.noise).toEqual({ name: 'noise-control', patchPx: 64, seed: 4 });
    expect(readEvaluation(write('e3/results.json', { ...v1, split: null, patches: [{ patch: 'p', metrics }] })).noise).toBeNull();
  });

  it('upgrade an unversioned accuracy JSON and a version-1 pipeline state (its keys are kept)', () => {
    const acc = readAccuracy(write('acc/accuracy.json', { model: 'm', backend: 'wasm', source: 'd', images: 2, top1: 0.5, top5: 1, correctTop1: 1, correctTop5: 2, unlabelled: 0, skipped: [], perClass: [], predictions: [] }));
    expect(acc.producer.engine).toBe('wasm');
    const stages = { accuracy: { key: 'k1', status: 'done', settings: {}, deps: {}, started: 't', outputs: { files: { json: 'accuracy/accuracy.json' } } } };
    write('pipe/pipeline.json', { format: 'patch-atlas-pipeline/1', tool: '0.1.0', model: 'm', images: { source: 's', count: 1, hash: 'h' }, stages });
    const state = readPipelineState(join(root, 'pipe'))!;
    expect(state.format).toBe(PIPELINE_FORMAT);
    expect(state.stages.accuracy!.key).toBe('k1');
    write('pipe2/pipeline.json', { format: 'patch-atlas-pipeline/1', tool: '0.1.0' });
    expect(failure(() => readPipelineState(join(root, 'pipe2')))).toMatch(/pipeline\.json is damaged: "model"/);
  });

  it('upgrade a version-1 patch sidecar (no format field; size and side become patchPx)', async () => {
    const rgb = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 11) % 256);
    const png = join(root, 'p', 'old.png');
    mkdirSync(join(root, 'p'), { recursive: true });
    await sharp(Buffer.from(rgb), { raw: { width: 4, height: 4, channels: 3 } }).png().toFile(png);
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(rgb).digest('hex');
    write('p/old.json', { name: 'old', kind: 'eot', model: 'm', target: { wnid: 'n01484850', name: 'great white shark' }, settings: { side: 4, steps: 2, stepOffset: 0, batchSize: 2, lr: 0.1, sizeRange: [0.2, 0.5], maxRotation: 22.5, untargetedWeight: 0, seed: 0, parameterisation: 'sigmoid-logits', optimiser: 'adam' }, size: 4, pixelsSha256: sha, createdAt: 't', tool: { name: 'patch-atlas', version: '0.1.0' } });
    const r = await readPatch(png);
    expect(r.sidecar).toMatchObject({ format: 'patch-atlas-patch/2', patchPx: 4, settings: { patchPx: 4, steps: 2 }, producer: { version: '0.1.0' } });
  });

  it('record who wrote them: tool version, model, engine and its thread count', async () => {
    await initBackend('wasm');
    const p = producer('mobilenet_v1_0.75');
    expect(p).toMatchObject({ tool: 'patch-atlas', model: 'mobilenet_v1_0.75', engine: 'wasm' });
    expect(p.threads).toBeGreaterThanOrEqual(1);
    const file = join(root, 's', 'split.json');
    await writeSplit(file, { images: join(root, 'imgs'), testFraction: 0.5, seed: 2, train: [join(root, 'imgs', 'a.png')], test: [join(root, 'imgs', 'b.png')] });
    expect(JSON.parse(readFileSync(file, 'utf8')).producer).toMatchObject({ tool: 'patch-atlas', engine: 'wasm' });
    expect([...readSplit(file).test]).toEqual([join(root, 'imgs', 'b.png')]);
  });
});

describe('parseJsonText', () => {
  /** What `fail` is given for `text`. */
  const where = (text: string): string => {
    try {
      parseJsonText(text, (w) => new Error(w));
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('no error');
  };

  it('returns the value of valid JSON', () => {
    expect(parseJsonText('{"a": [1, -2.5e3, true, null, "x\\"y"]}', () => new Error('no'))).toEqual({ a: [1, -2500, true, null, 'x"y'] });
  });

  it('says where a syntax error is, as line and column (1-based), after the reason', () => {
    expect(where('{"a": 1,}')).toMatch(/^\S.* at line 1, column 9$/);
    expect(where('{\n  "output": "x",\n  "checks": [,]\n}')).toMatch(/ at line 3, column 14$/);
    expect(where('[1,\n 2\n 3]')).toMatch(/ at line 3, column 2$/);
    expect(where('{"a": tru}')).toMatch(/ at line 1, column 7$/);
    expect(where('{"a": "b\nc"}')).toMatch(/ at line 1, column 9$/);
    expect(where('{"a": 1} x')).toMatch(/ at line 1, column 10$/);
    // Unexpected end: the column after the last character.
    expect(where('{\n"a": [1, 2')).toMatch(/ at line 2, column 11$/);
    expect(where('')).toMatch(/ at line 1, column 1$/);
    // One line, without V8's quoted excerpt of the text.
    expect(where('{"a":\n\n\n  oops}').split('\n')).toHaveLength(1);
    expect(where('{"a":\n\n\n  oops}')).toBe("Unexpected token 'o' at line 4, column 3");
    expect(where('{"a": ["b", "c",]}')).toBe("Unexpected token ']' at line 1, column 17");
  });

  it('throws what `fail` returns, so each reader words its own message', () => {
    expect(() => parseJsonText('{', (w) => new RangeError(`x.json: ${w}`))).toThrow(RangeError);
  });
});

describe('readLabelFile', () => {
  it('reads the built-in label set and refuses other files in one line', () => {
    const imagenet = readLabelFile(join(__dirname, '..', '..', 'models', 'labels', 'imagenet-1000.json'));
    expect(imagenet.classes).toHaveLength(1000);
    expect(imagenet.classes[0]).toEqual(['n01440764', 'tench', 'tench, Tinca tinca']);
    expect(failure(() => readLabelFile(join(root, 'no-labels.json')))).toMatch(/^label set .*no-labels\.json does not exist$/);
    expect(failure(() => readLabelFile(write('l1.json', { classes: 'tench' })))).toMatch(/^label set .*l1\.json must hold "classes": \[\[wnid, name, long\?\], \.\.\.\]$/);
    expect(failure(() => readLabelFile(write('l2.json', '{"classes": [["n1", "a"],]}')))).toMatch(/^label set .*l2\.json is not valid JSON: Unexpected token ']' at line 1, column 26$/);
  });
});
