import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pct } from '../../src/report/format.js';
import { readEvaluation } from '../../src/formats/evaluation.js';
import { patchesSection } from '../../src/report/patches.js';
import { summarise } from '../../src/report/summary.js';
import { writeFixture, type FixtureOptions } from './fixtures.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The summary of an evaluation written by the real writer with these flip counts. */
async function summaryFor(opts: FixtureOptions) {
  const dir = await mkdtemp(join(tmpdir(), 'pa-report-sum-'));
  dirs.push(dir);
  const f = await writeFixture(dir, { ...opts, icons: 0 });
  const ev = readEvaluation(f.evaluation);
  const patches = patchesSection(ev, f.evaluation);
  return { patches, summary: summarise({ patches, accuracy: null, atlas: null }) };
}

describe('report summary', () => {
  it('states the best patch, its size, position, rate and the noise control from the numbers', async () => {
    const { summary } = await summaryFor({ flips: [5, 3], noiseFlips: 1 });
    // 5 of the 8 correctly classified whales flip at top-left@0.3; noise flips 1 of 8 (12.5 %, rounded half up).
    expect(summary.headline).toBe(
      "A 0.3-size 'baseball-03' patch in the top-left corner flips 63 % of correctly classified grey whale images to great white shark (5 of 8; 95 % CI 31–86 %); noise flips 13 %.",
    );
    expect(summary.details.join(' ')).toMatch(/dynamic\) flips 63 % \(5 of 8\)/);
  });

  it('changes when the numbers change', async () => {
    const a = await summaryFor({ flips: [5, 3], noiseFlips: 1 });
    const b = await summaryFor({ flips: [2, 7], noiseFlips: 0 });
    expect(b.summary.headline).not.toBe(a.summary.headline);
    expect(b.summary.headline).toContain("'whale-bridge'");
    expect(b.summary.headline).toContain(`flips ${pct(7 / 8)} `);
    expect(b.summary.headline).toContain('(7 of 8;');
    expect(b.summary.headline).toContain('noise flips 0 %');
  });

  it('phrases universal results as images of other classes', async () => {
    const { summary, patches } = await summaryFor({ flips: [4, 1], universal: true });
    expect(patches.mode).toBe('universal');
    expect(summary.headline).toContain(`flips ${pct(4 / 10)} of images of other classes to great white shark (4 of 10;`);
  });

  it('says when no image could count', async () => {
    const { patches } = await summaryFor({});
    for (const p of patches.patches) p.static.rate = { k: 0, n: 0, p: null, lo: 0, hi: 1 };
    expect(summarise({ patches, accuracy: null, atlas: null }).headline).toMatch(/^No flip rate can be given/);
  });

  it('formats rates without rounding non-zero values to 0 % or 100 %', () => {
    expect(pct(0.42)).toBe('42 %');
    expect(pct(0.004)).toBe('0.4 %');
    expect(pct(0.9996)).toBe('99.9 %');
    expect(pct(0.00002)).toBe('<0.1 %');
    expect(pct(0)).toBe('0 %');
    expect(pct(null)).toBe('n/a');
  });
});
