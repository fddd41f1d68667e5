import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/data/decode.js';
import { readScreen } from '../../src/formats/screen.js';
import { fromHalf, toHalf } from '../../src/formats/run/index.js';
import type { Classifier } from '../../src/model/classifier.js';
import { mergeScreens, screen } from '../../src/recipes/screen.js';
import { cropRgb } from '../../src/screen/exemplar.js';
import { removeDir } from '../helpers/images.js';
import { TINY_SCREEN_PARAMS, screenFixture } from '../helpers/screen-fixture.js';

/** The screen on the tiny model; see the fixture for its images, run and pairs. */
const root = mkdtempSync(join(tmpdir(), 'pa-screen-'));
let c: Classifier;
let images: string;
let pairs: string;
const params = TINY_SCREEN_PARAMS;

beforeAll(async () => {
  ({ c, images, pairs } = await screenFixture(root));
}, 120_000);

afterAll(async () => {
  c?.dispose();
  await removeDir(root);
});

const files = (dir: string) => readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.png') || f.endsWith('.json')).sort();
const bytes = (dir: string) => Object.fromEntries(files(dir).map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));

describe('screen', () => {
  it('measures every kind at 4 corners × 3 sizes on each tested image, with crops cut where their position says', async () => {
    const out = join(root, 'whole');
    const r = await screen({ classifier: c, run: join(root, 'run'), images, out, params: { ...params, pairs } });
    const s = readScreen(join(out, 'screen.json'));
    expect(s.sets.map((x) => x.name)).toEqual(['list']);
    const tests = s.sets[0]!.pairs.flatMap((p) => p.tests);
    expect(tests.length).toBeGreaterThanOrEqual(4); // every image of A tested (k-fold), two pairs
    const measured = tests.filter((t) => t.atlas.hasBridge);
    expect(measured.length).toBeGreaterThan(0);
    for (const t of measured) {
      expect(t.heldRows).toBe(36); // its own 6×6 non-border positions, and no other image's
      for (const k of t.kinds) expect(k.placements.map((p) => p.placement)).toEqual(['top-left@0.2', 'top-left@0.3', 'top-left@0.4', 'top-right@0.2', 'top-right@0.3', 'top-right@0.4', 'bottom-left@0.2', 'bottom-left@0.3', 'bottom-left@0.4', 'bottom-right@0.2', 'bottom-right@0.3', 'bottom-right@0.4']);
      // Exemplar crops: the PNG is exactly the window of the source image (as the model sees it) at the static size,
      // centred where the layer position sits (8×8 map on 32 px: 4 px per position).
      for (const k of t.kinds.filter((x) => x.crop)) {
        const crop = k.crop!;
        expect(crop.image).not.toBe(t.image);
        const side = 10; // round(0.3 × 32)
        expect(crop.window.side).toBe(side);
        expect(crop.window.top).toBe(Math.min(32 - side, Math.max(0, Math.round((crop.y + 0.5) * 4 - side / 2))));
        expect(crop.window.left).toBe(Math.min(32 - side, Math.max(0, Math.round((crop.x + 0.5) * 4 - side / 2))));
        const src = await decodeImage(crop.image, c.preprocess);
        const { data } = await sharp(join(out, k.file!)).raw().toBuffer({ resolveWithObject: true });
        expect(new Uint8Array(data)).toEqual(cropRgb(src, crop.window));
      }
    }
    expect(r.file!.sets[0]!.analysis.withBridge).toBe(s.sets[0]!.pairs.filter((p) => p.tests.some((t) => t.atlas.hasBridge)).length);
  });

  it('holds the tested image out completely: changing its rows in the run changes nothing of its pair', async () => {
    const tested = readScreen(join(root, 'whole', 'screen.json')).sets[0]!.pairs.flatMap((p) => p.tests).find((t) => t.atlas.hasBridge)!;
    expect(tested.kinds.length).toBeGreaterThan(4);
    // A copy of the run in which every row of the tested image holds other activations and attributions.
    const run2 = join(root, 'run-changed');
    mkdirSync(run2);
    for (const f of readdirSync(join(root, 'run'))) if (f !== 'chunks') writeFileSync(join(run2, f), readFileSync(join(root, 'run', f)));
    const manifest = JSON.parse(readFileSync(join(run2, 'manifest.json'), 'utf8'));
    const list = JSON.parse(readFileSync(join(run2, 'images.json'), 'utf8')) as Array<{ path: string }>;
    const img = list.findIndex((x) => x.path === tested.image);
    expect(img).toBeGreaterThanOrEqual(0);
    const raw = (f: string) => Uint8Array.from(readFileSync(join(run2, f))).buffer;
    const meta = new Int32Array(raw('meta.i32'));
    const acts = new Float32Array(raw('acts.f32'));
    const attr = fromHalf(new Uint16Array(raw('attr.f16')));
    const C = manifest.channels;
    const K = manifest.classes.length;
    let changed = 0;
    for (let r = 0; r < meta.length / 6; r++) {
      if (meta[r * 6] !== img) continue;
      for (let k = 0; k < C; k++) acts[r * C + k] = 5 + ((r * 31 + k * 17) % 7);
      for (let k = 0; k < K; k++) attr[r * K + k] = (k % 2 ? 3 : -3) * (1 + (r % 3));
      changed++;
    }
    expect(changed).toBe(36);
    writeFileSync(join(run2, 'acts.f32'), Buffer.from(acts.buffer));
    writeFileSync(join(run2, 'attr.f16'), Buffer.from(toHalf(attr).buffer));
    const out = join(root, 'changed');
    await screen({ classifier: c, run: run2, images, out, params: { ...params, pairs } });
    const again = readScreen(join(out, 'screen.json')).sets[0]!.pairs.flatMap((p) => p.tests);
    expect(again.find((t) => t.image === tested.image)).toEqual(tested);
    for (const k of tested.kinds) expect(readFileSync(join(out, k.file!))).toEqual(readFileSync(join(root, 'whole', k.file!)));
  });

  it('sharded and merged writes the same bytes as unsharded', async () => {
    const shards = [0, 1].map((i) => join(root, `shard-${i}`));
    for (const [i, dir] of shards.entries()) {
      const r = await screen({ classifier: c, run: join(root, 'run'), images, out: dir, params: { ...params, pairs }, shard: { index: i, count: 2 } });
      expect(r.file).toBeNull();
    }
    const merged = join(root, 'merged');
    await mergeScreens(shards, merged);
    expect(bytes(merged)).toEqual(bytes(join(root, 'whole')));
  });

  it('a screen killed mid-work (SIGKILL) and run again writes the same screen.json as one uninterrupted run', async () => {
    const bin = join(import.meta.dirname, '../../bin/patch-atlas');
    const desc = join(root, 'desc', 'tiny_layers.json');
    const env = { ...process.env, PATCH_ATLAS_MODELS: root, PATCH_ATLAS_THREADS: '1' };
    const args = (out: string) => ['screen', '--run', join(root, 'run'), '--images', images, '--pairs', pairs, '--model', desc, '--offline', '--icon-steps', '3', '--patch-px', '32', '--out', out, '--json'];
    const full = join(root, 'cli-full');
    await promisify(execFile)(process.execPath, [bin, ...args(full)], { env });
    const killed = join(root, 'cli-killed');
    const records = () => (existsSync(join(killed, 'pairs')) ? readdirSync(join(killed, 'pairs')).filter((f) => f.endsWith('.json')).length : 0);
    // Killed by progress, not by the clock (a loaded machine must not change what is tested): once the plan
    // is claimed and nothing is measured, then once one pair of two is written; then run to the end.
    const stops: Array<() => boolean> = [() => existsSync(join(killed, 'screen-plan.json')), () => records() >= 1];
    const attempts: string[] = [];
    for (const stop of [...stops, () => false]) {
      const child = spawn(process.execPath, [bin, ...args(killed)], { env, stdio: 'ignore' });
      const code = await new Promise<number | null>((res) => {
        const poll = setInterval(() => stop() && child.kill('SIGKILL'), 5);
        child.on('exit', (c) => (clearInterval(poll), res(c)));
      });
      attempts.push(`${code === null ? 'killed' : `exit ${code}`} with ${records()} pair records`);
    }
    expect(attempts[0], attempts.join('; ')).toBe('killed with 0 pair records');
    expect(attempts[1], attempts.join('; ')).toMatch(/^killed with 1 pair records/);
    expect(attempts[2]).toBe('exit 0 with 2 pair records');
    expect(readFileSync(join(killed, 'screen.json'), 'utf8')).toBe(readFileSync(join(full, 'screen.json'), 'utf8'));
  }, 300_000);
});
