import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../src/recipes/collect.js';
import { buildAtlas } from '../../src/recipes/atlas.js';
import { outputFile, parseAuditConfig } from '../../src/audit/config.js';
import { readEnv } from '../../src/config.js';
import { openDataset } from '../../src/data/dataset.js';
import { decodeImage, toFloatBatch, type DecodedImage } from '../../src/data/decode.js';
import { isPatchAtlasError } from '../../src/errors.js';
import { noisePatch } from '../../src/evaluate/evaluate-patches.js';
import { initBackend } from '../../src/engine/backend.js';
import { Classifier } from '../../src/model/classifier.js';
import { runCli } from '../helpers/cli.js';
import { removeDir } from '../helpers/images.js';
import { saveLayersModel, tinyLayersModel, TINY_CLASSES, writeTinyDescriptor } from '../helpers/tiny-models.js';

/**
 * `audit` on the tiny model, with real evaluation. The fixture is built so the outcome is known: images
 * are labelled with the tiny model's own prediction (so all are "correct before"), and the "strong" patch
 * is a 32×32 image the model puts in another class T; at placement size 1.0 it covers the whole 32×32
 * input, so every image flips to T (rate exactly 1), while the noise control (a seed the model does not
 * read as T) flips none. Thresholds of max 1 are then certainly met and max 0.5 certainly broken.
 */
const root = mkdtempSync(join(tmpdir(), 'pa-audit-'));
const project = join(root, 'project');
const images = join(project, 'images');
const patchesDir = join(project, 'patches');
const weights = join(project, 'model', 'weights');
let desc: string;
let c: Classifier;
let S: { wnid: string; name: string; count: number };
let T: { wnid: string; name: string };
let noiseSeed: number;
let universalN: number;

function predict(ims: DecodedImage[]): number[] {
  const probs = tf.tidy(() => c.probabilities(tf.tensor4d(toFloatBatch(ims), [ims.length, 32, 32, 3])));
  const data = probs.dataSync();
  probs.dispose();
  const m = c.labels.outputs;
  return ims.map((_, i) => {
    let best = 0;
    for (let j = 1; j < m; j++) if (data[i * m + j]! > data[i * m + best]!) best = j;
    return best;
  });
}

const noiseImage = (seed: number, size: number) => Buffer.from(Array.from({ length: size * size * 3 }, (_, k) => ((k * (seed + 3) * 2654435761) >>> 24) & 255));

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), weights);
  desc = writeTinyDescriptor(join(project, 'model'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  c = await Classifier.load({ model: desc, weights, env: { ...readEnv({}), cacheDir: join(root, 'cache') } });
  const pre = c.preprocess;

  // Candidate images, classified by the model, then saved under the class it predicts.
  const scratch = join(root, 'scratch');
  mkdirSync(scratch, { recursive: true });
  const cands: string[] = [];
  // Noise and solid colours: the random model reads them as a few different classes.
  for (let i = 0; i < 28; i++) {
    const p = join(scratch, `c${i}.png`);
    const solid = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, k) => [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256][k % 3]!));
    await sharp(i < 16 ? noiseImage(i, 40) : solid, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(p);
    cands.push(p);
  }
  const preds = predict(await Promise.all(cands.map((p) => decodeImage(p, pre))));
  const count = new Map<number, number>();
  for (const p of preds) count.set(p, (count.get(p) ?? 0) + 1);
  const sIdx = [...count.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const sRef = c.labels.atOutput(sIdx)!;
  S = { wnid: sRef.wnid, name: sRef.name.replace(/_/g, ' '), count: count.get(sIdx)! };
  mkdirSync(images, { recursive: true });
  for (const [i, p] of cands.entries()) {
    await sharp(p).toFile(join(images, `${c.labels.atOutput(preds[i]!)!.wnid}_${i}.png`));
  }

  // The strong patch: a 32×32 image predicted as some class other than S.
  mkdirSync(patchesDir, { recursive: true });
  let tIdx = -1;
  for (let seed = 100; seed < 200 && tIdx < 0; seed++) {
    const colours = [(seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256];
    const raw = seed % 2 ? noiseImage(seed, 32) : Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, k) => colours[k % 3]!));
    const path = join(scratch, `p${seed}.png`);
    await sharp(raw, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path);
    const [pred] = predict([await decodeImage(path, pre)]);
    if (pred !== sIdx) {
      tIdx = pred!;
      await sharp(path).toFile(join(patchesDir, 'strong.png'));
    }
  }
  expect(tIdx).toBeGreaterThanOrEqual(0);
  const tRef = c.labels.atOutput(tIdx)!;
  T = { wnid: tRef.wnid, name: tRef.name.replace(/_/g, ' ') };
  // A small second patch, and a noise seed whose 32-px control the model does not read as T.
  await sharp({ create: { width: 12, height: 12, channels: 3, background: { r: 240, g: 20, b: 20 } } }).png().toFile(join(patchesDir, 'red.png'));
  noiseSeed = -1;
  for (let s = 0; s < 100 && noiseSeed < 0; s++) {
    const n = noisePatch(32, s);
    const [pred] = predict([{ data: n.rgb, height: 32, width: 32, sourceWidth: 32, sourceHeight: 32 }]);
    if (pred !== tIdx) noiseSeed = s;
  }
  expect(noiseSeed).toBeGreaterThanOrEqual(0);
  universalN = preds.filter((p) => p !== tIdx).length;
  // Class names in the tiny label set: "crane" is ambiguous, so configs use WordNet ids.
  expect(TINY_CLASSES.length).toBe(5);
});

afterAll(async () => {
  c?.dispose();
  await removeDir(root);
});

/** A config object with the fixture's paths (relative to the project folder) and the given checks. */
function config(checks: unknown[], extra: Record<string, unknown> = {}) {
  return { model: 'model/tiny_layers.json', weights: 'model/weights', images: 'images', output: 'audit-out', ...extra, checks };
}

function pairCheck(thresholds: unknown[], extra: Record<string, unknown> = {}) {
  return {
    name: 'pair',
    source: S.wnid,
    target: T.wnid,
    patches: ['patches'],
    placements: { sizes: [1, 0.25], positions: ['centre', 'top-left'] },
    noise: { seed: noiseSeed, side: 32 },
    thresholds,
    ...extra,
  };
}

function universalCheck(thresholds: unknown[], extra: Record<string, unknown> = {}) {
  return { name: 'universal', target: T.wnid, patches: ['patches/strong.png'], placements: { sizes: [1], positions: ['centre'] }, noise: { seed: noiseSeed, side: 32 }, thresholds, ...extra };
}

function writeConfig(name: string, cfg: unknown): string {
  const p = join(project, name);
  writeFileSync(p, JSON.stringify(cfg, null, 2));
  return p;
}

// ---- a minimal XML reader: enough to check well-formedness and read elements, attributes and text ----
interface XmlEl {
  name: string;
  attrs: Record<string, string>;
  children: XmlEl[];
  text: string;
}
function decodeXml(s: string): string {
  if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(s)) throw new Error(`bad entity in ${s}`);
  return s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
  );
}
function parseXml(xml: string): XmlEl {
  let i = 0;
  const decl = /^<\?xml[^?]*\?>\s*/.exec(xml);
  if (decl) i = decl[0].length;
  const stack: XmlEl[] = [{ name: '#doc', attrs: {}, children: [], text: '' }];
  while (i < xml.length) {
    if (xml[i] === '<') {
      const end = xml.indexOf('>', i);
      if (end < 0) throw new Error('unclosed tag');
      const tag = xml.slice(i + 1, end);
      i = end + 1;
      if (tag.startsWith('/')) {
        const el = stack.pop()!;
        if (el.name !== tag.slice(1).trim()) throw new Error(`</${tag.slice(1)}> closes <${el.name}>`);
        continue;
      }
      const selfClosing = tag.endsWith('/');
      const m = /^([\w:.-]+)((?:\s+[\w:.-]+="[^"<]*")*)\s*\/?$/.exec(tag);
      if (!m) throw new Error(`malformed tag <${tag}>`);
      const attrs: Record<string, string> = {};
      for (const a of m[2]!.matchAll(/([\w:.-]+)="([^"<]*)"/g)) {
        if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]}`);
        attrs[a[1]!] = decodeXml(a[2]!);
      }
      const el: XmlEl = { name: m[1]!, attrs, children: [], text: '' };
      stack[stack.length - 1]!.children.push(el);
      if (!selfClosing) stack.push(el);
    } else {
      const next = xml.indexOf('<', i);
      const text = xml.slice(i, next < 0 ? xml.length : next);
      if (text.includes('>')) throw new Error('raw > in text');
      stack[stack.length - 1]!.text += decodeXml(text);
      i = next < 0 ? xml.length : next;
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const roots = stack[0]!.children;
  if (roots.length !== 1) throw new Error('expected one root element');
  return roots[0]!;
}
const all = (el: XmlEl, name: string): XmlEl[] => [...(el.name === name ? [el] : []), ...el.children.flatMap((c) => all(c, name))];

describe('audit', () => {
  it('exits 0 when every threshold holds, with real evaluation behind the numbers', async () => {
    const cfg = writeConfig('pass.json', config([
      pairCheck([{ metric: 'dynamic', max: 1 }, { metric: 'static', maxOverNoise: 1 }]),
      universalCheck([{ metric: 'universal-dynamic', max: 1 }], { maxImages: 5 }),
    ]));
    const r = await runCli(['audit', '--config', cfg]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/2 checks, 3 thresholds: 3 passed, 0 failed/);
    expect(r.out.split('\n').length).toBeLessThan(25);
    const res = JSON.parse(readFileSync(join(project, 'audit-out', 'audit.json'), 'utf8'));
    expect(res.passed).toBe(true);
    const [pair, uni] = res.checks;
    // Every source image is correct before (labelled by the model's prediction) and flips at size 1.0.
    expect(pair.images).toBe(S.count);
    expect(pair.correctBefore).toBe(S.count);
    expect(pair.thresholds[0].best).toMatchObject({ patch: 'strong', k: S.count, n: S.count, p: 1 });
    expect(pair.thresholds[0].noise).toMatchObject({ k: 0, p: 0 });
    expect(pair.patches.map((p: { name: string }) => p.name)).toEqual(['red', 'strong', 'noise-control']);
    // maxImages: a fixed sample of the eligible images.
    expect(uni.eligible).toBe(universalN);
    expect(uni.images).toBe(5);
    expect(uni.thresholds[0].best).toMatchObject({ patch: 'strong', k: 5, n: 5, p: 1 });
    expect(existsSync(join(project, 'audit-out', 'checks', 'pair', 'results.json'))).toBe(true);
    const junit = parseXml(readFileSync(join(project, 'audit-out', 'junit.xml'), 'utf8'));
    expect(all(junit, 'testcase')).toHaveLength(3);
    expect(all(junit, 'failure')).toHaveLength(0);
  });

  it('exits 1 when a threshold breaks, with a JUnit failure giving the rate and its Wilson interval', async () => {
    const weird = `whale <&> "shark's" \u0001 check`;
    const cfg = writeConfig('fail.json', config([
      pairCheck([{ metric: 'dynamic', max: 0.5 }, { metric: 'static', max: 1 }, { metric: 'universal-static', maxOverNoise: 0.5 }], { name: weird }),
    ], { output: 'audit-fail', junit: 'reports/junit.xml' }));
    const r = await runCli(['audit', '--config', cfg]);
    expect(r.code).toBe(1);
    // Progress lines aside, one error line.
    expect(r.err.split('\n').filter((l) => l.startsWith('patch-atlas:'))).toHaveLength(1);
    expect(r.err).toMatch(/audit failed: 2 of 3 thresholds broken; details in .*audit-fail\/reports\/junit\.xml/);
    expect(r.out).toMatch(/FAIL {2}dynamic 100\.0 % \[\d+\.\d, 100\.0\] \(\d+\/\d+\) of "strong": above max 50\.0 %/);
    expect(r.out).toMatch(/PASS {2}static/);

    const xml = readFileSync(join(project, 'audit-fail', 'reports', 'junit.xml'), 'utf8');
    expect(xml).not.toContain('<&>');
    const doc = parseXml(xml);
    expect(doc.name).toBe('testsuites');
    expect(doc.attrs).toMatchObject({ tests: '3', failures: '2' });
    const suites = all(doc, 'testsuite');
    expect(suites).toHaveLength(1);
    // The name survives escaping (the control character becomes U+FFFD, which XML can hold).
    expect(suites[0]!.attrs.name).toBe(weird.replace('\u0001', '\uFFFD'));
    const cases = all(doc, 'testcase');
    expect(cases.map((t) => t.attrs.name)).toEqual(['dynamic max 0.5', 'static max 1', 'universal-static maxOverNoise 0.5']);
    const failures = all(doc, 'failure');
    expect(failures).toHaveLength(2);
    expect(failures[0]!.attrs.message).toMatch(new RegExp(`dynamic 100\\.0 % \\[\\d+\\.\\d, 100\\.0\\] \\(${S.count}/${S.count}\\) of "strong": above max 50\\.0 %`));
    expect(failures[1]!.attrs.message).toMatch(/100\.0 points over the noise control's 0\.0 % \[0\.0, \d+\.\d\]/);
    expect(failures[0]!.text).toMatch(/noise-control \(control\): 0\.0 %/);
    const res = JSON.parse(readFileSync(join(project, 'audit-fail', 'audit.json'), 'utf8'));
    expect(res.counts).toEqual({ checks: 1, thresholds: 3, passed: 1, failed: 2 });
    // The weird name became a safe folder name inside the output folder.
    expect(readdirSync(join(project, 'audit-fail', 'checks'))).toEqual(['whale_shark_s_check']);
  });

  it('malformed configs give one line naming the key path', async () => {
    const label = join(project, 'audit.json');
    const errOf = (cfg: unknown, text?: string) => {
      try {
        parseAuditConfig(text ?? JSON.stringify(cfg), label);
      } catch (e) {
        expect(isPatchAtlasError(e) && e.code).toBe('BAD_CONFIG');
        const msg = (e as Error).message;
        expect(msg.split('\n')).toHaveLength(1);
        return msg;
      }
      throw new Error('config was accepted');
    };
    const ok = pairCheck([{ metric: 'dynamic', max: 0.2 }]);
    expect(errOf(config([ok, universalCheck([{ metric: 'universal-dynamic', max: 2 }])]))).toMatch(/audit\.json: "checks\[1\]\.thresholds\[0\]\.max" must be a number between 0 and 1/);
    expect(errOf(config([ok, universalCheck([{ metric: 'universal-dynamic', max: '0.2' }])]))).toMatch(/"checks\[1\]\.thresholds\[0\]\.max" must be a number between 0 and 1/);
    expect(errOf(config([{ ...ok, treshold: [] }]))).toMatch(/"checks\[0\]\.treshold" is not a known key \(did you mean "thresholds"\?\)/);
    expect(errOf(config([pairCheck([{ metric: 'dynamc', max: 0.2 }])]))).toMatch(/"checks\[0\]\.thresholds\[0\]\.metric" "dynamc" is not a metric \(did you mean "dynamic"\?\)/);
    expect(errOf(config([universalCheck([{ metric: 'dynamic', max: 0.2 }])]))).toMatch(/"checks\[0\]\.thresholds\[0\]\.metric" "dynamic" .* has no "source"; add "source", or use "universal-dynamic"/);
    expect(errOf(config([pairCheck([{ metric: 'dynamic' }])]))).toMatch(/"checks\[0\]\.thresholds\[0\]\.max" is missing/);
    expect(errOf(config([{ ...ok, target: undefined }]))).toMatch(/"checks\[0\]\.target" is missing/);
    expect(errOf(config([{ ...ok, placements: { sizes: [30] } }]))).toMatch(/"checks\[0\]\.placements\.sizes\[0\]" must be .*; for 30 % write 0\.3/);
    expect(errOf(config([{ ...ok, placements: { positions: ['top-lft'] } }]))).toMatch(/"checks\[0\]\.placements\.positions\[0\]" "top-lft" is not a position \(did you mean "top-left"\?\)/);
    expect(errOf(config([ok, { ...ok }]))).toMatch(/"checks\[1\]\.name" "pair" is also the name of checks\[0\]/);
    expect(errOf(config([]))).toMatch(/"checks" must be a non-empty list/);
    expect(errOf({ ...config([ok]), output: undefined })).toMatch(/"output" is missing/);
    expect(errOf({ ...config([ok]), checks: [{ ...ok, patches: [{ atlas: 'a.json', cells: 0 }] }] })).toMatch(/"checks\[0\]\.patches\[0\]\.cells" must be a whole number ≥ 1/);
    expect(errOf(null, '{\n  "output": "x",\n  "checks": [,]\n}')).toMatch(/audit\.json: not valid JSON: .*line 3, column 14/);
    // Through the CLI: exit 1 and one line on stderr; inputs that do not exist are named too.
    const bad = writeConfig('bad.json', config([{ ...ok, patches: ['patches/nope.png'] }]));
    const r = await runCli(['audit', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/bad\.json: "checks\[0\]\.patches\[0\]" "patches\/nope\.png" does not exist/);
    const cls = await runCli(['audit', '--config', writeConfig('cls.json', config([{ ...ok, target: 'great whte shark' }]))]);
    expect(cls.code).toBe(1);
    expect(cls.err).toMatch(/cls\.json: "checks\[0\]\.target": .*great whte shark/);
    // An atlas source that is not an atlas.json (broken JSON, or another file): one line naming the key and the file.
    writeFileSync(join(project, 'broken-atlas.json'), '{"format": "patch-atlas-atlas/2", "cells": [');
    writeFileSync(join(project, 'other.json'), '{"hello": 1}');
    for (const [file, why] of [['broken-atlas.json', /is not valid JSON \(.*line 1, column \d+\)/], ['other.json', /is not an atlas\.json written by `patch-atlas atlas`/]] as const) {
      const at = await runCli(['audit', '--config', writeConfig(`atl-${file}`, config([{ ...ok, patches: [{ atlas: file }] }]))]);
      expect(at.code).toBe(1);
      expect(at.err.trim().split('\n').filter((l) => l.startsWith('patch-atlas:'))).toHaveLength(1);
      expect(at.err).toMatch(new RegExp(`"checks\\[0\\]\\.patches\\[0\\]\\.atlas": .*${file.replace('.', '\\.')}`));
      expect(at.err).toMatch(why);
      expect(at.err).not.toMatch(/unexpected error/);
    }
  });

  it('the documented example config is valid (as audit.json at the project root)', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const cfg = parseAuditConfig(readFileSync(join(repo, 'docs', 'audit.example.json'), 'utf8'), join(repo, 'audit.json'));
    expect(cfg.output).toBe(join(repo, 'reports', 'audit'));
    expect(cfg.junit).toBe(join(repo, 'reports', 'audit', 'junit.xml'));
    expect(cfg.checks.map((c) => c.thresholds.length)).toEqual([2, 1]);
    expect(cfg.checks[0]!.images).toBe(join(repo, '..', 'shared', 'data', 'imagenet-sample'));
  });

  it('refuses configs that would write outside their output folder or into an input', async () => {
    const ok = [pairCheck([{ metric: 'dynamic', max: 0.2 }])];
    const label = join(project, 'audit.json');
    const errOf = (cfg: unknown) => {
      try {
        parseAuditConfig(JSON.stringify(cfg), label);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(errOf(config(ok, { output: '../../etc' }))).toMatch(/audit\.json: "output" "\.\.\/\.\.\/etc" is outside the config's folder/);
    expect(errOf(config(ok, { output: '/etc' }))).toMatch(/"output" "\/etc" is outside the config's folder/);
    expect(errOf(config(ok, { output: 'a/../../x' }))).toMatch(/"output" .* is outside/);
    expect(errOf(config(ok, { output: '.' }))).toMatch(/"output" "\." is outside/);
    expect(errOf(config(ok, { junit: '../junit.xml' }))).toMatch(/"junit" "\.\.\/junit\.xml" is outside the output folder/);
    expect(errOf(config(ok, { junit: '/tmp/junit.xml' }))).toMatch(/"junit" "\/tmp\/junit\.xml" is outside the output folder/);
    // The JUnit file never lands on what the audit writes itself.
    expect(errOf(config(ok, { junit: 'audit.json' }))).toMatch(/"junit" "audit\.json" is where the audit writes its own report/);
    expect(errOf(config(ok, { junit: 'checks/whale/results.json' }))).toMatch(/"junit" "checks\/whale\/results\.json" is where the audit writes check results/);
    expect(errOf(config(ok, { junit: './screens/x.xml' }))).toMatch(/is where the audit writes check results/);
    expect(errOf(config(ok, { output: 'images/audit' }))).toMatch(/"output" "images\/audit" overlaps the input "images"/);
    expect(errOf(config(ok, { output: 'patches' }))).toMatch(/"output" "patches" overlaps the input "checks\[0\]\.patches\[0\]"/);
    // A symlink inside the config's folder that leads out of it.
    const outside = mkdtempSync(join(tmpdir(), 'pa-audit-outside-'));
    symlinkSync(outside, join(project, 'escape'));
    expect(errOf(config(ok, { output: 'escape/audit' }))).toMatch(/"output" "escape\/audit" leads outside the config's folder through a symbolic link/);
    // Absolute paths inside the config's folder are fine.
    expect(errOf(config(ok, { output: join(project, 'abs-out') }))).toBe('accepted');
    // Every written file goes through outputFile.
    expect(() => outputFile(join(project, 'audit-out'), '../x.json')).toThrow(/refusing to write "\.\.\/x\.json"/);
    expect(() => outputFile(join(project, 'audit-out'), '/etc/x.json')).toThrow(/refusing to write/);
    expect(outputFile(join(project, 'audit-out'), 'checks/a/results.json')).toBe(join(project, 'audit-out', 'checks', 'a', 'results.json'));
    // Through the CLI, nothing is written.
    const r = await runCli(['audit', '--config', writeConfig('escape.json', config(ok, { output: '../../etc' }))]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(readdirSync(outside)).toEqual([]);
    await removeDir(outside);
  });

  it('generates patches from an atlas into the output folder and measures them on held-out images', async () => {
    // A run and a pair atlas (grey whale vs great white shark) on the fixture images.
    const ds = await openDataset(images, c.labels);
    await collect(c, ds, { layer: 'conv_pw_1_relu', out: join(project, 'run'), positions: 'all', seed: 1, shard: null, batchSize: 8 });
    // A = the most common label (S), B = the next most common.
    const counts = new Map<string, number>();
    for (const i of ds.items) counts.set(i.label!.wnid, (counts.get(i.label!.wnid) ?? 0) + 1);
    const [a, b] = [...counts.entries()].sort((x, y) => y[1] - x[1]).map(([w]) => w);
    expect(a).toBe(S.wnid);
    expect(b).toBeDefined();
    const { path } = await buildAtlas({ run: join(project, 'run'), classes: [a!, b!], grid: 3, minDensity: 1, umap: { seed: 1, nEpochs: 30 } });
    const check = {
      name: 'generated',
      target: b,
      patches: [{ atlas: path.slice(project.length + 1), cells: 1, side: 32, iconSteps: 2, steps: 1, batchSize: 1 }],
      placements: { sizes: [0.5], positions: ['centre'] },
      thresholds: [{ metric: 'universal-dynamic', max: 1 }],
    };
    const cfg = writeConfig('gen.json', config([check], { output: 'audit-gen' }));
    const r = await runCli(['audit', '--config', cfg, '--json']);
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(r.out);
    const ch = res.checks[0];
    expect(ch.generated).toEqual(['generated/generated/0']);
    const gen = join(project, 'audit-gen', 'generated', 'generated', '0');
    const files = readdirSync(gen).sort();
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(2); // icon + EOT from it (no noise start)
    expect(files).toContain('split.json');
    // Trained patches are measured on the held-out side only.
    const split = JSON.parse(readFileSync(join(gen, 'split.json'), 'utf8'));
    expect(ch.split).toBe(join(gen, 'split.json'));
    expect(ch.images).toBe(split.test.filter((p: string) => !p.includes(b!)).length);
    expect(ch.patches.map((p: { name: string }) => p.name)).toEqual([...files.filter((f) => f.endsWith('.png')).map((f) => f.slice(0, -4)), 'noise-control']);
  });
});
