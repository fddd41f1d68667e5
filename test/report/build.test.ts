import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportAssets } from '../../src/formats/report.js';
import { buildReportData } from '../../src/recipes/report.js';
import type { ReportData } from '../../src/formats/report.js';
import { patchKind } from '../../src/report/patches.js';
import { inlineScript, scriptJson } from '../../src/report/render.js';
import { runCli } from '../helpers/cli.js';
import { writeFixture, type Fixture } from './fixtures.js';

let dir: string;
let fx: Fixture;
let data: ReportData;
const DATA_URI = /^data:image\/(png|jpeg);base64,[A-Za-z0-9+/]+=*$/;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pa-report-build-'));
  fx = await writeFixture(dir, { sidecar: ['whale-bridge'] });
  data = await buildReportData({ atlas: fx.atlas, evaluation: fx.evaluation, accuracy: fx.accuracy, patches: [fx.patchDir], command: 'patch-atlas report ...' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('buildReportData', () => {
  it('assembles every section from the files', () => {
    expect(data.format).toBe('patch-atlas-report/2');
    expect(data.title).toBe('grey whale → great white shark');
    expect(data.settings.command).toBe('patch-atlas report ...');
    expect(data.accuracy?.perClass.map((c) => c.name)).toEqual(['great white shark', 'grey whale']);
    expect(data.summary.headline).toContain("'baseball-03'");
    expect(data.summary.details.some((s) => s.startsWith('Clean top-1 accuracy is 80 %') && s.includes('on grey whale 80 % of 10'))).toBe(true);
  });

  it('draws the atlas as a grid with icons where present and bridge cells highlighted', () => {
    const a = data.atlas!;
    expect(a.grid).toBe(4);
    expect(a.cells).toHaveLength(6);
    expect(a.icons).toBe(2);
    expect(a.cells.filter((c) => c.icon).length).toBe(2);
    expect(a.cells[0]!.icon).toMatch(DATA_URI);
    expect(a.picture).toBeNull();
    expect(a.cells.filter((c) => c.bridge).map((c) => c.bridge!.rank).sort()).toEqual([1, 2, 3]);
    expect(a.bridges.map((b) => [b.i, b.j])).toEqual([[1, 2], [2, 1], [1, 1]]);
    expect(a.cells[1]!.attr.map((v) => v.name)).toEqual(['grey whale', 'great white shark']);
    // Two of three examples per cell get a thumbnail; the third image does not exist.
    expect(a.cells[0]!.examples[0]!.thumb).toMatch(DATA_URI);
    expect(a.cells[0]!.examples[2]!.thumb).toBeNull();
    expect(a.bridges[0]!.examples[2]!.thumb).toBeNull();
    expect(data.notes.some((n) => n.includes('4 of 6 cells have no icon'))).toBe(true);
    expect(data.notes.some((n) => n.includes('could not be read for thumbnails'))).toBe(true);
  });

  it('reads patch kinds, images, rates, heat map and draws before/after examples without a model', async () => {
    const p = data.patches!;
    expect(p.mode).toBe('targeted');
    expect(p.patches.map((x) => [x.name, x.kind, x.control])).toEqual([
      ['baseball-03', 'photo', true],
      ['whale-bridge', 'atlas', false],
      ['noise', 'noise', true],
    ]);
    expect(p.patches[1]!.made).toBe('eot');
    // The sidecar's own kind decides: its photo and noise patches are controls too.
    expect(patchKind('p', { path: 'p.png', sidecar: 'photo' })).toBe('photo');
    expect(patchKind('p', { path: 'p.png', sidecar: 'noise' })).toBe('noise');
    expect(patchKind('p', { path: 'p.png', sidecar: 'icon' })).toBe('atlas');
    expect(patchKind('random', null)).toBe('noise');
    expect(patchKind('p', null)).toBe('unknown');
    const b = p.patches[0]!;
    expect(b.image).toMatch(DATA_URI);
    expect(b.static).toEqual({ placement: 'top-left@0.3', rate: expect.objectContaining({ k: 5, n: 8 }) });
    expect(b.bySize.map((s) => [s.size, s.rate.k])).toEqual([[0.2, 3], [0.3, 5]]);
    expect(b.heat!.positions).toEqual(['top-left', 'bottom-right', 'centre']);
    expect(b.heat!.sizes).toEqual([0.2, 0.3]);
    expect(b.heat!.rates[0]![1]!.k).toBe(5);
    // The example: first correctly classified image, labels from results.json's matrix.
    expect(b.example!.image).toBe(fx.images[0]);
    expect(b.example!.before.label).toBe('grey whale');
    expect(b.example!.after.label).toBe('great white shark');
    const before = await sharp(Buffer.from(b.example!.before.src.split(',')[1]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    const after = await sharp(Buffer.from(b.example!.after.src.split(',')[1]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    expect([after.info.width, after.info.height]).toEqual([224, 224]);
    // The patch covers the top-left 67 px: pixels differ there and (up to JPEG noise) not in the far corner.
    const at = (buf: Buffer, x: number, y: number) => buf[(y * 224 + x) * 3]!;
    expect(Math.abs(at(before.data, 10, 10) - at(after.data, 10, 10)) + Math.abs(at(before.data, 30, 20) - at(after.data, 30, 20))).toBeGreaterThan(40);
    expect(Math.abs(at(before.data, 200, 200) - at(after.data, 200, 200))).toBeLessThan(12);
    expect(data.notes.some((n) => n.includes('noise patch is redrawn with seed 0'))).toBe(true);
  });

  it('accepts precomputed examples and skips what is not given, with notes', async () => {
    const ex = { image: 'x.jpg', placement: 'top-left@0.3', before: { src: 'data:image/png;base64,AA==', label: 'a' }, after: { src: 'data:image/png;base64,AA==', label: 'b' } };
    const d = await buildReportData({ evaluation: fx.evaluation, examples: { 'baseball-03': ex } });
    expect(d.patches!.patches[0]!.example).toEqual(ex);
    expect(d.patches!.patches[1]!.example).toBeNull();
    expect(d.patches!.patches[0]!.kind).toBe('unknown');
    expect(d.atlas).toBeNull();
    expect(d.accuracy).toBeNull();
    expect(d.notes).toEqual(expect.arrayContaining([expect.stringContaining('no atlas given'), expect.stringContaining('no accuracy report given'), expect.stringContaining("no image for patch 'baseball-03', 'whale-bridge'")]));
  });

  it('takes folders, uses atlas.png when the icons stage drew one, and fails in one line on a named input that is missing or wrong', async () => {
    await sharp({ create: { width: 300, height: 300, channels: 3, background: '#336699' } }).png().toFile(join(dir, 'atlas', 'atlas.png'));
    const d = await buildReportData({ atlas: join(dir, 'atlas'), examples: false });
    await rm(join(dir, 'atlas', 'atlas.png'));
    expect(d.atlas!.picture).toMatch(DATA_URI);
    expect(d.atlas!.cells).toHaveLength(6);
    expect(d.summary.headline).toMatch(/^In the grey whale vs great white shark atlas \(75 points, 6 cells\) the strongest bridge/);
    await expect(buildReportData({ evaluation: join(dir, 'nope.json') })).rejects.toThrow(/--evaluation .*nope\.json does not exist/);
    await expect(buildReportData({ atlas: fx.accuracy })).rejects.toThrow(/is not an atlas\.json/);
    await expect(buildReportData({})).rejects.toThrow(/nothing to report/);
  });
});

describe('patch-atlas report', () => {
  it('writes the report where --out says and prints its path; without inputs it is a usage error', async () => {
    const out = join(dir, 'cli-report');
    const r = await runCli(['report', '--evaluation', join(dir, 'evaluate'), '--out', out, '--no-png', '--no-examples', '--title', "it's <b>mine</b>"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(join(out, 'report.html'));
    const written = JSON.parse(await readFile(join(out, 'report-data.json'), 'utf8')) as ReportData;
    expect(written.title).toBe("it's <b>mine</b>");
    expect(written.settings.command).toBe(`patch-atlas report --evaluation ${join(dir, 'evaluate')} --title 'it'\\''s <b>mine</b>' --out ${out} --no-examples --no-png`);
    expect(written.patches!.patches.every((p) => p.example === null)).toBe(true);
    expect(existsSync(join(out, 'charts'))).toBe(false);
    expect(r.err).toMatch(/^note: no atlas given/m);
    const none = await runCli(['report']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/nothing to report; give at least one of --atlas, --evaluation, --accuracy/);
  });
});

describe('report escaping helpers', () => {
  it('JSON for a script element parses back and cannot close the element', () => {
    const nasty = { label: '</script><script>alert(1)</script>', amp: 'a & b <!-- c -->', ls: 'x\u2028y\u2029z' };
    const s = scriptJson(nasty);
    expect(s).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(s)).toEqual(nasty);
  });

  it('inline scripts cannot contain a closing tag', () => {
    expect(inlineScript('var s = "</script>"; // <!-- x')).toBe('var s = "<\\/script>"; // <\\!-- x');
  });

  it('the template uses triple-stash only for the three blobs render.ts makes safe', async () => {
    const t = reportAssets().template;
    expect([...t.matchAll(/\{\{\{\s*([^}\s]+)\s*\}\}\}/g)].map((m) => m[1]).sort()).toEqual(['chartJs', 'clientJs', 'dataJson']);
    // Every attribute value is double-quoted, so an escaped value cannot start a new attribute.
    expect(t).not.toMatch(/=\{\{/);
    expect(await readFile(join(process.cwd(), 'src/report/client.js'), 'utf8')).not.toMatch(/innerHTML|insertAdjacentHTML|document\.write/);
  });
});
