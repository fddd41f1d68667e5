import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { RunReader } from '../../src/formats/run/index.js';
import { runCli } from '../helpers/cli.js';
import { describeReal, SAMPLE_DIR } from '../helpers/real.js';

const root = mkdtempSync(join(tmpdir(), 'pa-collect-'));
const images = join(root, 'images');
const bin = join(import.meta.dirname, '../../bin/patch-atlas');
let count = 0;
const ARRAYS = ['acts.f32', 'attr.f16', 'meta.i32', 'prob.f32'];

const sameArrays = (a: string, b: string) => ARRAYS.every((f) => readFileSync(join(a, f)).equals(readFileSync(join(b, f))));

describeReal('collect on the real model', () => {
  beforeAll(() => {
    // 19 sample images (every 60th class, plus grey whale and great white shark for the atlas) keep the test to seconds; the closing note has the full 1000.
    mkdirSync(images);
    const picked = readdirSync(SAMPLE_DIR!).sort().filter((f, i) => i % 60 === 0 || /^(n02066245|n01484850)_/.test(f));
    picked.forEach((f) => symlinkSync(join(SAMPLE_DIR!, f), join(images, f)));
    count = picked.length;
  });

  it('with --positions all finishes, and resumes after a kill without redoing finished images', async () => {
    const full = join(root, 'full');
    const r = await runCli(['collect', '--images', images, '--layer', 'conv_pw_11_relu', '--positions', 'all', '--out', full, '--batch-size', '2', '--json']);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out);
    expect(summary).toMatchObject({ complete: true, points: count * 144, method: 'jvp', resumed: 0 });

    // Kill -9 once the first chunks are on disk, then run the same command again.
    const killed = join(root, 'killed');
    const args = ['collect', '--images', images, '--layer', 'conv_pw_11_relu', '--positions', 'all', '--out', killed, '--batch-size', '2', '--json'];
    const child = spawn(bin, args, { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        const chunks = join(killed, 'chunks');
        if (existsSync(chunks) && readdirSync(chunks).filter((f) => f.endsWith('.json')).length >= 2) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 50);
      child.on('exit', () => {
        clearInterval(t);
        reject(new Error('collect finished before it could be killed'));
      });
    });
    const again = await runCli(args);
    expect(again.code, again.err).toBe(0);
    const s = JSON.parse(again.out);
    expect(s.complete).toBe(true);
    expect(s.resumed).toBeGreaterThanOrEqual(4);
    expect(s.resumed + s.processed).toBe(count);
    expect(s.processed).toBeLessThan(count);
    expect(sameArrays(full, killed)).toBe(true);

    const run = await RunReader.open(full);
    expect(run.manifest.layerShape).toEqual([14, 14, 384]);
    expect(run.manifest.classes[147]).toBe('n02066245');
    await run.close();
  });

  it('Ctrl-C stops at the end of a batch with exit code 130 and one line; the same command then finishes', async () => {
    const out = join(root, 'sigint');
    const args = ['collect', '--images', images, '--layer', 'conv_pw_11_relu', '--positions', 'all', '--out', out, '--batch-size', '2', '--json'];
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const t = setInterval(() => {
        const chunks = join(out, 'chunks');
        if (existsSync(chunks) && readdirSync(chunks).filter((f) => f.endsWith('.json')).length >= 1) {
          clearInterval(t);
          child.kill('SIGINT');
        }
      }, 50);
      child.on('exit', (c) => {
        clearInterval(t);
        resolve(c);
      });
    });
    expect(code).toBe(130);
    expect(err.split('\n').filter((l) => l.startsWith('patch-atlas:'))).toEqual([expect.stringMatching(/^patch-atlas: interrupted: .*sigint holds \d+ finished images; re-run the same command to resume$/)]);
    const again = await runCli(args);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ complete: true });
  });

  it('--shard 0/2 + --shard 1/2 + merge gives the same arrays as one unsharded run', async () => {
    const base = ['collect', '--images', images, '--layer', 'conv_pw_11_relu', '--positions', '3', '--seed', '5', '--json'];
    for (const [out, extra] of [['one', []], ['s0', ['--shard', '0/2']], ['s1', ['--shard', '1/2']]] as const) {
      const r = await runCli([...base, '--out', join(root, out), ...extra]);
      expect(r.code, r.err).toBe(0);
    }
    const m = await runCli(['merge', join(root, 's1'), join(root, 's0'), '--out', join(root, 'merged')]);
    expect(m.code, m.err).toBe(0);
    expect(sameArrays(join(root, 'one'), join(root, 'merged'))).toBe(true);
    const bad = await runCli(['merge', join(root, 's0'), join(root, 'full'), '--out', join(root, 'bad')]);
    expect(bad.code).toBe(1);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
  });

  it('atlas --pair ranks bridge cells between grey whale and great white shark on that run', async () => {
    const r = await runCli(['atlas', '--run', join(root, 'full'), '--pair', 'grey whale:great white shark', '--grid', '8', '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out);
    const atlas = JSON.parse(readFileSync(s.atlas, 'utf8'));
    expect(atlas.kind).toBe('pair');
    expect(atlas.classes.map((c: { wnid: string }) => c.wnid)).toEqual(['n02066245', 'n01484850']);
    expect(atlas.cells.length).toBeGreaterThan(3);
    expect(atlas.bridges).toHaveLength(atlas.cells.length);
    const top = atlas.cells[atlas.bridges[0].cell];
    expect(top.images.length).toBeGreaterThan(0);
    expect(top.meanAct).toHaveLength(384);
    expect(atlas.bridges[0].score).toBeGreaterThanOrEqual(atlas.bridges[1].score);
    const typo = await runCli(['atlas', '--run', join(root, 'full'), '--pair', 'grey whael:great white shark']);
    expect(typo.code).toBe(1);
    expect(typo.err).toMatch(/unknown class A "grey whael"; closest: "grey whale"/);
  });
});
