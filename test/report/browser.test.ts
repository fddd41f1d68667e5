import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { readScreen } from '../../src/formats/screen.js';
import { buildReportData, writeReport } from '../../src/recipes/report.js';
import { screen } from '../../src/recipes/screen.js';
import { pct } from '../../src/report/format.js';
import { runCli } from '../helpers/cli.js';
import { TINY_SCREEN_PARAMS, screenFixture } from '../helpers/screen-fixture.js';
import { writeFixture } from './fixtures.js';

/**
 * The report opened in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
 * Without Chromium the suite skips and says why; PATCH_ATLAS_REQUIRE_REAL=1 (CI) makes that a failure.
 */
const CHROMIUM = process.env.PATCH_ATLAS_CHROMIUM ?? '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? undefined : `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set PATCH_ATLAS_CHROMIUM)`;
if (missing && readEnv().requireReal) throw new Error(`PATCH_ATLAS_REQUIRE_REAL is set but ${missing}`);
if (missing) console.warn(`report browser tests skipped: ${missing}`);

const SECTIONS = ['summary', 'settings', 'accuracy', 'atlas', 'bridges', 'patches', 'flip-rates', 'static-dynamic', 'heatmap', 'controls'];
const SCRIPT = '<script>alert(1)</script>';
const ATTR = '"><img src=x onerror=alert(1)>';

let root: string;
let context: BrowserContext;

/** A page that records console errors, page errors, dialogs and any request that is not file: or data:. */
async function open(file: string) {
  const page = await context.newPage();
  const problems: string[] = [];
  const dialogs: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('request', (r) => !/^(file|data):/.test(r.url()) && problems.push(`network: ${r.url()}`));
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('html[data-ready="1"]', { timeout: 15_000 });
  return { page, problems, dialogs };
}

/** Distinct colours drawn on a canvas, read back through getImageData. */
const canvasColours = (page: Page, id: string) =>
  page.$eval(`#${id}`, (c) => {
    const el = c as unknown as { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } };
    const px = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
    const seen = new Set<number>();
    for (let i = 0; i < px.length; i += 4) seen.add((px[i]! << 24) | (px[i + 1]! << 16) | (px[i + 2]! << 8) | px[i + 3]!);
    return { size: [el.width, el.height], colours: seen.size };
  });

(missing ? describe.skip : describe)(`report in Chromium${missing ? ` [skipped: ${missing}]` : ''}`, () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pa-report-browser-'));
    context = await chromium.launchPersistentContext(join(root, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 900 },
    });
  });
  afterAll(async () => {
    await context?.close();
    // The screenshot and the report stay (the path is printed); the profile and inputs go.
    for (const d of ['profile', 'inputs', 'hostile', 'hostile-report', 'screen-inputs']) await rm(join(root, d), { recursive: true, force: true });
  });

  it('renders every section, the atlas grid and non-blank charts, offline and without errors', async () => {
    const fx = await writeFixture(join(root, 'inputs'), { sidecar: ['whale-bridge'] });
    const out = join(root, 'report');
    const r = await runCli(['report', '--atlas', fx.atlas, '--evaluation', fx.evaluation, '--accuracy', fx.accuracy, '--patches', fx.patchDir, '--out', out]);
    expect(r.err).not.toMatch(/patch-atlas:/);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(join(out, 'report.html'));
    expect(existsSync(join(out, 'report-data.json'))).toBe(true);
    expect(existsSync(join(out, 'charts', 'flip-rates.png'))).toBe(true);

    const { page, problems, dialogs } = await open(join(out, 'report.html'));
    for (const id of SECTIONS) expect(await page.$(`section#${id}`), `section #${id}`).not.toBeNull();
    expect(await page.textContent('#summary .headline')).toMatch(/^A 0\.3-size 'baseball-03' patch in the top-left corner flips 63 %/);
    // The rebuild command is shown, quoted for a shell.
    expect(await page.textContent('#settings pre')).toContain(`patch-atlas report --atlas ${fx.atlas}`);

    // Atlas: a 4×4 grid with 6 cells, 2 icons, 3 outlined bridges; a click shows the cell's details.
    expect(await page.$$eval('#atlas-grid .cell', (els) => els.length)).toBe(6);
    expect(await page.$$eval('#atlas-grid .cell img', (els) => els.length)).toBe(2);
    expect(await page.$$eval('#atlas-grid .cell.bridge', (els) => els.length)).toBe(3);
    expect(await page.isVisible('#cell-detail-2')).toBe(false);
    await page.click('#atlas-grid .cell[data-cell="2"]');
    expect(await page.isVisible('#cell-detail-2')).toBe(true);
    expect(await page.textContent('#cell-detail-2')).toContain('bridge #1');

    for (const id of ['chart-flip-rates', 'chart-static-dynamic', 'chart-p-target']) {
      const c = await canvasColours(page, id);
      expect(c.size[0], id).toBeGreaterThan(100);
      expect(c.colours, `${id} colours`).toBeGreaterThan(20);
    }
    expect(await page.$$eval('#heatmap table.heat', (els) => els.length)).toBe(3);
    expect(await page.$$eval('#patches .pair img', (els) => els.length)).toBe(6);
    expect(await page.textContent('#controls')).toContain('whale-bridge');

    const shot = join(root, 'report-screenshot.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`report screenshot: ${shot}`);
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('escapes hostile class labels, patch names and titles', async () => {
    const fx = await writeFixture(join(root, 'hostile'), { sourceName: SCRIPT, patchNames: [ATTR, 'baseball-03'], flips: [6, 2] });
    const data = await buildReportData({ atlas: fx.atlas, evaluation: fx.evaluation, accuracy: fx.accuracy, patches: [fx.patchDir], title: `T ${SCRIPT}`, command: `patch-atlas report --title '${ATTR}'` });
    expect(data.patches!.patches[0]!.name).toBe(ATTR);
    const { html } = await writeReport(data, join(root, 'hostile-report'), { png: false });
    const text = await readFile(html, 'utf8');
    expect(text).not.toContain(SCRIPT);
    expect(text).not.toContain('<img src=x');
    expect(text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(text).toContain('&quot;&gt;&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;');
    expect(text).toContain('\\u003cscript\\u003ealert(1)\\u003c/script\\u003e');

    const { page, problems, dialogs } = await open(html);
    await page.waitForTimeout(300); // time for an injected onerror to fire, were there one
    expect(await page.$$eval('script', (els) => els.length)).toBe(3);
    expect(await page.$$eval('[onerror]', (els) => els.length)).toBe(0);
    expect(await page.$$eval('img', (els) => els.filter((e) => !(e.getAttribute('src') ?? '').startsWith('data:image/')).length)).toBe(0);
    // The text itself survives, readable: in the title, the summary, the gallery and the chart data.
    expect(await page.title()).toBe(`T ${SCRIPT}`);
    expect(await page.textContent('#summary .headline')).toContain(`of correctly classified ${SCRIPT} images`);
    expect(await page.textContent('#patches')).toContain(ATTR);
    expect(await page.textContent('#settings pre')).toContain(ATTR);
    const labels = await page.$eval('#report-data', (el) => (JSON.parse(el.textContent ?? '{}') as { charts: Array<{ labels: string[] }> }).charts[1]!.labels);
    expect(labels[0]).toBe(ATTR);
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('renders a screen: headline from its pooled rates, the kinds table, the chart and before/after pictures', async () => {
    const fx = await screenFixture(join(root, 'screen-inputs'));
    const out = join(root, 'screen-inputs', 'screen');
    try {
      await screen({ classifier: fx.c, run: fx.run, images: fx.images, out, params: { ...TINY_SCREEN_PARAMS, pairs: fx.pairs } });
    } finally {
      fx.c.dispose();
    }
    const set = readScreen(join(out, 'screen.json')).sets[0]!;
    const data = await buildReportData({ screen: out, model: join(root, 'screen-inputs', 'desc', 'tiny_layers.json') });
    const { html } = await writeReport(data, join(root, 'screen-report'));
    const { page, problems, dialogs } = await open(html);
    expect(await page.$('section#screen')).not.toBeNull();
    expect(await page.title()).toBe('Screen of 2 list class pairs, tiny_layers');

    const icon = set.analysis.kinds.find((k) => k.kind === 'icon')!.flipDynamic;
    const headline = (await page.textContent('#summary .headline'))!;
    expect(headline).toMatch(new RegExp(`^In the list set, across ${set.analysis.withBridge} class pairs with a bridge \\(of ${set.analysis.pairs};`));
    expect(headline).toContain(`bridge icons flipped ${pct(icon.p)} (${icon.k} of ${icon.n}; 95 % CI `);
    expect(headline).toContain('Primary test:');

    // One row per kind; the rows' counts are the analysis's.
    const rows = await page.$$eval('#screen table.screen-kinds tr', (trs) => trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows.map((r) => r[0])).toEqual(set.analysis.kinds.map((k) => k.kind));
    expect(rows.map((r) => Number(r[1]))).toEqual(set.analysis.kinds.map((k) => k.n));
    const c = await canvasColours(page, 'chart-screen-flips');
    expect(c.colours).toBeGreaterThan(5);
    // The most vulnerable pairs: the tested image before and after, redrawn with the model's preprocessing.
    expect(await page.$$eval('#screen .vulnerable figure.pair', (els) => els.length)).toBeGreaterThan(0);
    expect(await page.$$eval('#screen .vulnerable img[alt="before"]', (els) => els.length)).toBeGreaterThan(0);
    expect(await page.$$eval('#screen .vulnerable img[alt="after"]', (els) => els.length)).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
    await page.close();
  }, 120_000);
});
