import { describe, expect, it } from 'vitest';
import { ATLAS_DEFAULTS, classAtlas, layerAtlas, pairAtlas, toJSON, type PairAtlasInput } from '../../src/atlas/atlases.js';
import { mulberry32 } from '../../src/util/random.js';
import { PatchAtlasError } from '../../src/errors.js';

const A = 0;
const B = 1;
const K = 6; // classes in the full attribution rows
const C = 32;

/**
 * Synthetic activations for a grey-whale (A) vs great-white-shark (B) comparison: whale and shark
 * clusters, a small "bridge" group from whale images with a third feature that attributes to
 * shark, and points from other images that the class filter should mostly drop.
 */
function synthetic(seed = 1) {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const dirOf = (lo: number) => Float32Array.from({ length: C }, (_, c) => (c >= lo && c < lo + 8 ? 1 : 0.1));
  const groups = [
    { name: 'whale', n: 120, dir: dirOf(0), attrA: 1, attrB: 0.1, label: A },
    { name: 'shark', n: 120, dir: dirOf(8), attrA: 0.1, attrB: 1, label: B },
    { name: 'bridge', n: 30, dir: dirOf(16), attrA: 0.2, attrB: 0.8, label: A },
    { name: 'other', n: 150, dir: dirOf(24), attrA: -0.2, attrB: -0.2, label: 4 },
  ];
  const N = groups.reduce((s, g) => s + g.n, 0);
  const acts = new Float32Array(N * C);
  const full = new Float32Array(N * K);
  const attrA = new Float32Array(N);
  const attrB = new Float32Array(N);
  const winner = new Int32Array(N);
  const label = new Int32Array(N);
  const image = new Int32Array(N);
  const group: string[] = [];
  let p = 0;
  for (const g of groups) {
    for (let k = 0; k < g.n; k++, p++) {
      for (let c = 0; c < C; c++) acts[p * C + c] = Math.max(0, g.dir[c]! + 0.15 * gauss());
      attrA[p] = g.attrA + 0.05 * gauss();
      attrB[p] = g.attrB + 0.05 * gauss();
      const rest = [0.3 + 0.05 * gauss(), 0.05 * gauss(), 0.5 * (g.name === 'other' ? 1 : 0) + 0.05 * gauss(), 0.05 * gauss()];
      const row = [attrA[p]!, attrB[p]!, ...rest];
      full.set(row, p * K);
      winner[p] = row.indexOf(Math.max(...row));
      label[p] = g.label;
      image[p] = Math.floor(p / 2); // two sampled positions per image
      group.push(g.name);
    }
  }
  const attrRows = (idx: Int32Array) => {
    const out = new Float32Array(idx.length * K);
    idx.forEach((q, r) => out.set(full.subarray(q * K, (q + 1) * K), r * K));
    return out;
  };
  return { acts, attrA, attrB, winner, label, image, group, N, attrRows };
}

const data = synthetic();
const base: PairAtlasInput = {
  acts: data.acts,
  C,
  attrA: data.attrA,
  attrB: data.attrB,
  winner: data.winner,
  label: data.label,
  image: data.image,
  a: A,
  b: B,
  topN: 100,
  grid: 8,
  minDensity: 3,
  umap: { nEpochs: 120, seed: 3 },
  attrRows: data.attrRows,
  names: { a: 'grey whale', b: 'great white shark' },
};

describe.each(['pair-axis', 'umap'] as const)('pairAtlas, %s layout', (layout) => {
  const run = pairAtlas({ ...base, layout });

  it('filters, lays out, bins and describes the cells', async () => {
    const r = await run;
    const n = r.points.length;
    expect(r.kind).toBe('pair');
    expect(r.params).toMatchObject({ a: A, b: B, topN: 100, grid: 8, minDensity: 3, layout, umap: { nNeighbors: 20, minDist: 0.01, metric: 'cosine', seed: 3, nEpochs: 120 } });
    // every whale, shark and bridge point is a winner of A or B; "other" points never pass
    const kept = Array.from(r.points, (q) => data.group[q]);
    expect(kept.filter((g) => g === 'other')).toHaveLength(0);
    expect(n).toBe(270);
    expect(Array.from(r.points)).toEqual([...r.points].sort((u, v) => u - v));
    expect(r.layoutXY.length).toBe(2 * n);
    for (const v of r.layoutXY) expect(v >= 0 && v <= 1).toBe(true);
    expect(r.axis.length).toBe(n);
    expect(r.cells.length).toBeGreaterThan(3);
    let total = 0;
    for (const c of r.cells) {
      expect(c.count).toBeGreaterThanOrEqual(3);
      expect(c.meanAct.length).toBe(C);
      expect(c.topClasses).toHaveLength(5);
      total += c.count;
    }
    expect(total).toBeLessThanOrEqual(n);
    expect(r.notes).toEqual([]);
  });

  it('ranks a cell of the bridge group first and whale cells last', async () => {
    const r = await run;
    const share = (cell: number, name: string) => {
      const pts = r.cells[cell]!.points;
      return Array.from(pts).filter((q) => data.group[q] === name).length / pts.length;
    };
    expect(r.bridges).toHaveLength(r.cells.length);
    expect(share(r.bridges[0]!.cell, 'bridge')).toBeGreaterThan(0.5);
    expect(r.bridges[0]!.reason).toContain('push toward great white shark');
    const whaleRanks = r.bridges.filter((b) => share(b.cell, 'whale') > 0.5).map((b) => b.rank);
    expect(whaleRanks.length).toBeGreaterThan(0);
    expect(Math.min(...whaleRanks)).toBeGreaterThan(r.bridges.length / 2);
  });

  it('converts to plain JSON', async () => {
    const r = await run;
    const back = JSON.parse(JSON.stringify(toJSON(r))) as { points: number[]; layoutXY: number[]; cells: { meanAct: number[]; rows: number[] }[]; bridges: { reason: string }[] };
    expect(back.points).toEqual(Array.from(r.points));
    expect(Float32Array.from(back.layoutXY)).toEqual(r.layoutXY);
    expect(Float32Array.from(back.cells[0]!.meanAct)).toEqual(r.cells[0]!.meanAct);
    expect(back.cells[0]!.rows).toEqual(Array.from(r.cells[0]!.rows));
    expect(back.bridges[0]!.reason).toBe(r.bridges[0]!.reason);
  });
});

describe('pair-axis layout', () => {
  it('puts x = (pair axis + 1) / 2, so equal attribution sits at the centre', async () => {
    const r = await pairAtlas({ ...base, layout: 'pair-axis' });
    for (let k = 0; k < r.points.length; k++) expect(r.layoutXY[2 * k]).toBeCloseTo((r.axis[k]! + 1) / 2, 6);
  });
});

describe('classAtlas and layerAtlas', () => {
  it('builds a one-class atlas from winners and top attributions', async () => {
    const r = await classAtlas({ acts: data.acts, C, attr: data.attrB, winner: data.winner, cls: B, label: data.label, image: data.image, topN: 130, grid: 6, minDensity: 3, umap: { nEpochs: 80 } });
    expect(r.kind).toBe('class');
    expect(r.params.topN).toBe(130);
    const kept = new Set(Array.from(r.points, (q) => data.group[q]));
    expect([...kept].sort()).toEqual(['bridge', 'shark']);
    expect(r.cells.length).toBeGreaterThan(0);
    expect(r.cells[0]!.attr.map((c) => c.cls)).toEqual([B]);
    expect(r.cells[0]!.topClasses).toEqual([]);
  });

  it('builds a whole-layer atlas from a seeded subsample', async () => {
    const opts = { acts: data.acts, C, label: data.label, image: data.image, subsample: 200, grid: 6, minDensity: 3, umap: { nEpochs: 60, nNeighbors: 15 } };
    const r = await layerAtlas(opts);
    expect(r.points.length).toBe(200);
    expect(r.params.umap.minDist).toBe(0.05); // the article's whole-layer setting
    expect(Array.from((await layerAtlas(opts)).points)).toEqual(Array.from(r.points));
    expect(r.cells.every((c) => c.attr.length === 0 && c.labels.top.length > 0)).toBe(true);
  });

  it('fails with EMPTY_ATLAS when the filter leaves fewer than 3 points, naming the pair', async () => {
    const none = new Float32Array(data.N).fill(-1);
    const winner = new Int32Array(data.N).fill(5);
    const err = await pairAtlas({ ...base, attrA: none, attrB: none, winner }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PatchAtlasError);
    expect((err as PatchAtlasError).code).toBe('EMPTY_ATLAS');
    expect((err as PatchAtlasError).message).toContain('grey whale vs great white shark: only 0 of 420 points');
  });

  it('documents the article defaults', () => {
    expect(ATLAS_DEFAULTS.pair.topN).toBe(2000);
    expect(ATLAS_DEFAULTS.class.topN).toBe(3000);
  });
});
