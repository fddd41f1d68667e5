import { describe, expect, it } from 'vitest';
import { bridgeScores, type BridgeScore } from '../../src/atlas/bridge.js';
import { allCellStats } from '../../src/atlas/cells.js';
import { binGrid } from '../../src/atlas/grid.js';
import { pairAxis } from '../../src/atlas/layout.js';
import { mulberry32 } from '../../src/util/random.js';

const A = 0; // grey whale
const B = 1; // great white shark
const OTHER = 5;
const C = 12;
const names = { a: 'grey whale', b: 'great white shark' };

interface Group {
  name: string;
  n: number;
  /** Channels 0–3 are whale-like, 4–7 shark-like, 8–11 a third feature ("baseball"). */
  dir: number[];
  attrA: number;
  attrB: number;
  label: number;
  /** Layout position (centre of a 5×5 grid cell). */
  at: [number, number];
}

/**
 * A hand-laid comparison atlas: each group fills one cell of a 5×5 grid, so the test is about
 * the score, not about UMAP. Points carry a little noise in activation and attribution.
 */
function scenario(groups: Group[], seed = 1, noLabels = false, pred = false) {
  const rand = mulberry32(seed);
  const jitter = (s: number) => (rand() - 0.5) * 2 * s;
  const N = groups.reduce((s, g) => s + g.n, 0);
  const acts = new Float32Array(N * C);
  const attrA = new Float32Array(N);
  const attrB = new Float32Array(N);
  const winner = new Int32Array(N);
  const label = new Int32Array(N);
  const predicted = new Int32Array(N);
  const image = new Int32Array(N);
  const xy = new Float32Array(N * 2);
  const group: string[] = [];
  let p = 0;
  for (const g of groups) {
    for (let k = 0; k < g.n; k++, p++) {
      for (let c = 0; c < C; c++) acts[p * C + c] = Math.max(0, (g.dir[c] ?? 0) + 0.1 + jitter(0.1));
      attrA[p] = g.attrA + jitter(0.05);
      attrB[p] = g.attrB + jitter(0.05);
      winner[p] = attrA[p]! >= attrB[p]! ? A : B;
      label[p] = noLabels ? -1 : g.label;
      predicted[p] = g.label;
      image[p] = p; // one point per image
      xy[2 * p] = g.at[0] + jitter(0.05);
      xy[2 * p + 1] = g.at[1] + jitter(0.05);
      group.push(g.name);
    }
  }
  return { acts, attrA, attrB, winner, label, image, xy, group, N, ...(pred ? { pred: predicted } : {}) };
}

const whale = [1, 1, 1, 1];
const shark = [0, 0, 0, 0, 1, 1, 1, 1];
const baseball = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];

const standard: Group[] = [
  { name: 'whale', n: 40, dir: whale, attrA: 1, attrB: 0.1, label: A, at: [0.1, 0.5] },
  { name: 'whale2', n: 30, dir: whale, attrA: 0.8, attrB: 0.2, label: A, at: [0.3, 0.3] },
  { name: 'shark', n: 40, dir: shark, attrA: 0.1, attrB: 1, label: B, at: [0.9, 0.5] },
  { name: 'shark2', n: 30, dir: shark, attrA: 0.15, attrB: 0.9, label: B, at: [0.9, 0.9] },
  // the bridge: a non-whale, non-shark feature in whale images that attributes to shark
  { name: 'bridge', n: 12, dir: baseball, attrA: 0.2, attrB: 0.8, label: A, at: [0.7, 0.1] },
  { name: 'other', n: 15, dir: [0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 0.5, 0], attrA: 0.05, attrB: 0.05, label: OTHER, at: [0.5, 0.7] },
];

async function rank(s: ReturnType<typeof scenario>) {
  const points = Int32Array.from({ length: s.N }, (_, i) => i);
  const cells = binGrid(s.xy, 5, 5);
  const stats = await allCellStats(cells, points, { acts: s.acts, C, classes: [A, B], attr: [s.attrA, s.attrB], label: s.label, image: s.image, ...(s.pred ? { pred: s.pred } : {}) });
  const bridges = bridgeScores({ cells: stats, axis: pairAxis(s.attrA, s.attrB, points), acts: s.acts, C, points, winner: s.winner, a: A, b: B, names });
  // name each ranked cell by the group that fills it
  const who = (r: BridgeScore) => s.group[stats[r.cell]!.points[0]!]!;
  return { bridges, who, stats };
}

describe('bridgeScores', () => {
  it('ranks the bridge cell first, pure B below it and pure A last', async () => {
    const { bridges, who } = await rank(scenario(standard));
    expect(bridges.map(who)).toHaveLength(6);
    expect(who(bridges[0]!)).toBe('bridge');
    const order = bridges.map(who);
    expect(order.indexOf('shark')).toBeGreaterThan(0);
    expect(order.slice(-2).sort()).toEqual(['whale', 'whale2']);
    const get = (name: string) => bridges.find((b) => who(b) === name)!;
    expect(get('whale').score).toBeLessThan(0);
    expect(get('whale2').score).toBeLessThan(0);
    expect(Math.abs(get('shark').score)).toBeLessThan(0.1);
    expect(bridges.map((b) => b.rank)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let k = 1; k < bridges.length; k++) expect(bridges[k - 1]!.score).toBeGreaterThanOrEqual(bridges[k]!.score);
  });

  it('explains the score by its components', async () => {
    const { bridges, who } = await rank(scenario(standard));
    const top = bridges[0]!;
    expect(top.towardB).toBeGreaterThan(0.5);
    expect(top.fromA).toBe(1);
    expect(top.fromASource).toBe('label');
    expect(top.between).toBeGreaterThan(0.5);
    // median of the cell counts 40, 30, 40, 30, 12, 15 is 30
    expect(top.support).toBeCloseTo(12 / 30, 12);
    const evidence = 1 - (1 - top.fromA!) * (1 - top.between!);
    expect(top.score).toBeCloseTo(top.towardB * evidence * Math.sqrt(12 / 30), 6);
    expect(top.reason).toMatch(/^strong push toward great white shark \(0\.\d\d\), 100 % of points from grey whale images, between the two clusters \(\d\.\d\d\), 12 points \(below the median cell\)$/);
    const shark = bridges.find((b) => who(b) === 'shark')!;
    expect(shark.fromA).toBe(0);
    expect(shark.t!).toBeGreaterThan(0.9);
    expect(shark.reason).toContain('0 % of points from grey whale images');
    expect(shark.reason).toContain('close to the great white shark cluster');
    const whale = bridges.find((b) => who(b) === 'whale')!;
    expect(whale.reason).toMatch(/^pushes toward grey whale, not great white shark \(-\d\.\d\d\)/);
    expect(whale.reason).toContain('close to the grey whale cluster');
  });

  it('without labels, a feature between the clusters with B attribution still ranks first', async () => {
    const { bridges, who } = await rank(scenario(standard, 2, true));
    expect(who(bridges[0]!)).toBe('bridge');
    expect(bridges[0]!.fromA).toBeNull();
    expect(bridges[0]!.fromASource).toBe('none');
    expect(bridges[0]!.reason).toContain('no labelled images');
    const order = bridges.map(who);
    expect(order.slice(-2).sort()).toEqual(['whale', 'whale2']);
  });

  it('falls back to predictions when images have no labels', async () => {
    const { bridges } = await rank(scenario(standard, 3, true, true));
    expect(bridges[0]!.fromASource).toBe('prediction');
    expect(bridges[0]!.reason).toContain('100 % of points from images predicted grey whale');
  });

  it('does not reward a B-typical cell for sitting at B, even when it is the largest', async () => {
    const big: Group[] = standard.map((g) => (g.name === 'shark' ? { ...g, n: 200 } : g));
    const { bridges, who } = await rank(scenario(big, 4));
    expect(who(bridges[0]!)).toBe('bridge');
    const shark = bridges.find((b) => who(b) === 'shark')!;
    expect(shark.towardB).toBeGreaterThan(0.9);
    expect(shark.between!).toBeLessThan(0.2);
  });
});
