import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditConfig } from '../../src/audit/config.js';
import { auditSummary, runAudit } from '../../src/audit/run.js';
import { readScreen } from '../../src/formats/screen.js';
import type { Classifier } from '../../src/model/classifier.js';
import { screen } from '../../src/recipes/screen.js';
import { removeDir } from '../helpers/images.js';
import { TINY_SCREEN_PARAMS, screenFixture, type ScreenFixture } from '../helpers/screen-fixture.js';

/** Audit screen checks on the tiny model: the screen recipe underneath, thresholds judged on its pooled rates. */
const root = mkdtempSync(join(tmpdir(), 'pa-audit-screen-'));
let fx: ScreenFixture;
let c: Classifier;

beforeAll(async () => {
  fx = await screenFixture(root);
  c = fx.c;
}, 120_000);

afterAll(async () => {
  c?.dispose();
  await removeDir(root);
});

const tiny = { iconSteps: 3, patchPx: 32, grid: 3, minDensity: 1 };

function writeConfig(name: string, screens: unknown[]): string {
  const p = join(root, name);
  writeFileSync(p, JSON.stringify({ images: 'images', output: `out-${name.replace('.json', '')}`, screens }, null, 2));
  return p;
}

describe('audit screens', () => {
  it('runs the screen recipe and judges its pooled flip rates: best bridge kind against the noise control', async () => {
    const pairs = fx.pairs.split(',');
    const cfg = loadAuditConfig(
      writeConfig('screen.json', [
        { name: 'tiny screen', run: 'run', pairs, ...tiny, thresholds: [{ metric: 'screen-dynamic', max: 0.5 }, { metric: 'screen-static', maxOverNoise: 0 }] },
      ]),
    );
    const r = await runAudit(cfg, c);
    expect(r.checks).toEqual([]);
    expect(r.screens.length).toBe(1);
    const sc = r.screens[0]!;

    // The same screen as the recipe writes on its own, with the audit's kinds (bridges + noise).
    const direct = join(root, 'direct');
    await screen({ classifier: c, run: fx.run, images: fx.images, out: direct, params: { ...TINY_SCREEN_PARAMS, pairs: fx.pairs, kinds: ['icon', 'exemplar', 'noise'], sensitivity: false } });
    const audited = join(root, 'out-screen', sc.screen);
    expect(readFileSync(audited, 'utf8')).toBe(readFileSync(join(direct, 'screen.json'), 'utf8'));

    const a = readScreen(audited).sets[0]!.analysis;
    expect(sc.pairs).toBe(2);
    expect(sc.withBridge).toBe(a.withBridge);
    expect(a.withBridge).toBeGreaterThan(0);
    // Only the audit's kinds are measured (exemplars need images of a third class, which the fixture may lack).
    const measured = a.kinds.filter((k) => k.n > 0).map((k) => k.kind);
    expect(measured).toEqual(expect.arrayContaining(['icon', 'noise']));
    expect(measured.every((k) => ['icon', 'exemplar', 'noise'].includes(k))).toBe(true);
    expect(sc.kinds.map((k) => k.name)).toEqual(['icon', 'exemplar', 'noise']);
    const kind = (k: string) => a.kinds.find((x) => x.kind === k)!;
    for (const [ti, metric] of (['screen-dynamic', 'screen-static'] as const).entries()) {
      const rate = (k: string) => (metric === 'screen-dynamic' ? kind(k).flipDynamic : kind(k).flipStatic);
      const t = sc.thresholds[ti]!;
      const best = measured.filter((k) => k !== 'noise').map((k) => ({ k, r: rate(k) })).sort((x, y) => y.r.p! - x.r.p!)[0]!;
      expect(t.best!.p).toBe(best.r.p);
      expect(t.noise.p).toBe(rate('noise').p);
      expect(t.passed).toBe(ti === 0 ? best.r.p! <= 0.5 : best.r.p! - rate('noise').p! <= 0);
    }
    expect(r.counts).toEqual({ checks: 1, thresholds: 2, passed: sc.thresholds.filter((t) => t.passed).length, failed: sc.thresholds.filter((t) => !t.passed).length });

    // JUnit: one testsuite for the screen, one testcase per threshold, failures where they broke.
    const xml = readFileSync(r.files.junit, 'utf8');
    const suite = xml.match(/<testsuite name="tiny screen" tests="(\d+)" failures="(\d+)"/);
    expect(suite?.slice(1).map(Number)).toEqual([2, r.counts.failed]);
    expect(xml.match(/<failure /g)?.length ?? 0).toBe(r.counts.failed);
    expect(auditSummary(r, 'screen.json').some((l) => l.startsWith('tiny screen (screen, list pairs:'))).toBe(true);
  }, 120_000);

  it('malformed screen entries give one line naming the key', () => {
    const bad = (screens: unknown[]) => () => loadAuditConfig(writeConfig('bad.json', screens));
    const t = [{ metric: 'screen-dynamic', max: 0.1 }];
    expect(bad([{ run: 'run', kinds: ['icon'], thresholds: t }])).toThrow(/"screens\[0\]\.kinds" must include "noise"/);
    expect(bad([{ run: 'run', patchPx: 8, thresholds: t }])).toThrow(/"screens\[0\]\.patchPx" must be .*not 8/);
    expect(bad([{ run: 'run', maxPair: 3, thresholds: t }])).toThrow(/"screens\[0\]\.maxPair" is not a known key \(did you mean "maxPairs"\?\)/);
    expect(bad([{ run: 'run', thresholds: [{ metric: 'dynamic', max: 0.1 }] }])).toThrow(/"screens\[0\]\.thresholds\[0\]\.metric" "dynamic" is not a metric/);
    expect(bad([{ run: 'nope', thresholds: t }])).toThrow(/"screens\[0\]\.run" "nope" does not exist/);
    expect(bad([{ run: 'run', pairs: ['grey whale'], thresholds: t }])).toThrow(/"screens\[0\]\.pairs" must be a non-empty list of "source:target"/);
  });
});
