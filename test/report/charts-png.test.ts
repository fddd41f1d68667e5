import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReportData, writeReport } from '../../src/recipes/report.js';
import type { ReportData } from '../../src/formats/report.js';
import { writeFixture } from './fixtures.js';

let dir: string;
let data: ReportData;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pa-report-png-'));
  const fx = await writeFixture(dir, { icons: 0 });
  data = await buildReportData({ evaluation: fx.evaluation, examples: false });
});
afterAll(async () => {
  // PATCH_ATLAS_KEEP_TEST_OUTPUT=1 keeps the PNGs to look at.
  if (process.env.PATCH_ATLAS_KEEP_TEST_OUTPUT) console.log(`report PNG charts kept in ${join(dir, 'charts')}`);
  else await rm(dir, { recursive: true, force: true });
});

/** Distinct RGB colours in a PNG: a blank or flat image has one. */
async function decode(file: string) {
  const { data: px, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const colours = new Set<number>();
  for (let i = 0; i < px.length; i += 3) colours.add((px[i]! << 16) | (px[i + 1]! << 8) | px[i + 2]!);
  return { width: info.width, height: info.height, colours: colours.size };
}

describe('PNG chart export', () => {
  it('writes the flip-rate, static/dynamic, probability and heat-map charts with drawn content', async () => {
    const files = (await writeReport(data, dir)).charts;
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['charts/flip-rates.png', 'charts/static-dynamic.png', 'charts/p-target.png', 'charts/heatmap.png']);
    const flip = await decode(files[0]!);
    expect([flip.width, flip.height]).toEqual([800, 480]);
    // Axes, labels, three series with whiskers: many colours, not a uniform canvas.
    expect(flip.colours).toBeGreaterThan(20);
    const bars = await decode(files[1]!);
    expect([bars.width, bars.height]).toEqual([800, 480]);
    expect(bars.colours).toBeGreaterThan(20);
    const heat = await decode(files[3]!);
    expect(heat.width).toBeGreaterThan(200);
    expect(heat.colours).toBeGreaterThan(5);
  });
});
