import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, writeFile, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunReader } from '../../../src/formats/run/index.js';
import { bytes, expected, synth, tempDir } from './fixtures.js';

/**
 * Real SIGKILLs: a child process collects a run (write chunks, finalize) and is killed at random
 * moments, over and over, each new child resuming the last one's folder. After every kill the
 * folder must be either an unfinished run the reader refuses or a complete run with exactly the
 * right bytes, and the run must finally complete with exactly the right bytes.
 */
const ROOT = resolve(import.meta.dirname, '../../..');
const N = 6000;
const OPTS = { channels: 256, classes: 200, skipped: [5, 999, 4001] };

let dir: string;
let cleanup: () => Promise<void>;
let child: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('pa-store-kill-'));
  // The child runs the store compiled to plain JS (there is no TS loader for child processes here).
  const build = join(dir, 'build');
  await promisify(execFile)(process.execPath, [
    join(ROOT, 'node_modules/typescript/bin/tsc'),
    '--outDir', build, '--rootDir', ROOT, '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--types', 'node', '--skipLibCheck',
    join(ROOT, 'src/formats/run/index.ts'), join(ROOT, 'test/formats/run/fixtures.ts'),
  ]);
  // The store's packages (zod) resolve from the project's node_modules.
  await symlink(join(ROOT, 'node_modules'), join(build, 'node_modules'), 'dir');
  // packageVersion() looks for the patch-atlas package.json above the compiled files.
  await writeFile(join(build, 'package.json'), JSON.stringify({ name: 'patch-atlas', version: '0.0.0-test', type: 'module' }));
  child = join(build, 'child.mjs');
  await writeFile(
    child,
    `import { RunWriter } from './src/formats/run/index.js';
import { synth, chunkFor, groups } from './test/formats/run/fixtures.js';
const s = synth(${N}, ${JSON.stringify(OPTS)});
const w = await RunWriter.open(process.argv[2], s.identity, s.images, null);
if (!w.complete) {
  for (const g of groups(w.pendingImages(), 40)) await w.writeChunk(chunkFor(s, g));
  await w.finalize();
}
`,
  );
}, 120_000);
afterAll(async () => cleanup());

function runChild(out: string, killAfterMs: number | null): Promise<{ code: number | null; ms: number }> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [child, out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const timer = killAfterMs === null ? null : setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('error', rej);
    p.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && signal !== 'SIGKILL') rej(new Error(`child failed (${code}): ${err}`));
      else res({ code, ms: Date.now() - t0 });
    });
  });
}

async function checkState(out: string, want: ReturnType<typeof expected>): Promise<'complete' | 'unfinished'> {
  let r: RunReader;
  try {
    r = await RunReader.open(out);
  } catch (e) {
    expect(String(e)).toMatch(/unfinished collect run|not a patch-atlas run|does not exist/);
    return 'unfinished';
  }
  await r.close();
  for (const [f, a] of [['acts.f32', want.acts], ['attr.f16', want.attr], ['meta.i32', want.meta], ['prob.f32', want.prob]] as const) {
    expect((await readFile(join(out, f))).equals(bytes(a)), `${f} of a complete run`).toBe(true);
  }
  return 'complete';
}

describe('kill-safety under real SIGKILL', () => {
  it('a run killed at random moments resumes to exactly the right bytes', async () => {
    const s = synth(N, OPTS);
    const want = expected(s);
    // Calibrate: how long an uninterrupted child takes here.
    const full = await runChild(join(dir, 'calibrate'), null);
    expect(await checkState(join(dir, 'calibrate'), want)).toBe('complete');
    let seed = 42;
    const states: string[] = [];
    // Several runs, each killed until one child gets through, so kills land in chunk writes,
    // in finalize and in between, at different points each time.
    for (let run = 0; run < 4; run++) {
      const out = join(dir, `run${run}`);
      let done = false;
      for (let attempt = 0; attempt < 40 && !done; attempt++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        const killAt = Math.round(full.ms * (0.1 + (seed / 2 ** 32) * 0.9));
        const { code } = await runChild(out, killAt);
        const names = await readdir(out).catch(() => [] as string[]);
        const inFinalize = names.some((n) => n.endsWith('.tmp') || n === 'acts.f32');
        const state = await checkState(out, want);
        states.push(`${killAt}ms:${code === 0 ? 'exit' : 'kill'}:${state}${inFinalize && state === 'unfinished' ? '(in finalize)' : ''}`);
        done = state === 'complete';
      }
      // One more (uninterrupted) collect: finds the run complete and clears what a late kill left (chunks/).
      await runChild(out, null);
      expect(await checkState(out, want)).toBe('complete');
      expect((await readdir(out)).sort()).toEqual(['acts.f32', 'attr.f16', 'images.json', 'manifest.json', 'meta.i32', 'prob.f32']);
      states.push('|');
    }
    console.log(`uninterrupted ${full.ms} ms; attempts: ${states.join(' ')}`);
    expect(states.filter((x) => x.includes(':kill:')).length).toBeGreaterThan(0);
  });
});
