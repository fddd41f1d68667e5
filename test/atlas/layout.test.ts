import { describe, expect, it } from 'vitest';
import { normaliseLayout, pairAxis, umapLayout, type UmapOptions } from '../../src/atlas/layout.js';
import { percentile } from '../../src/atlas/percentile.js';
import { mulberry32 } from '../../src/util/random.js';
import { PatchAtlasError } from '../../src/errors.js';

/** Two Gaussian clusters in `dims` dims around different (non-negative) centres; labels 0/1. */
function twoClusters(nEach: number, dims: number, seed: number, scaleJitter = false) {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const centres = [0, 1].map(() => Float32Array.from({ length: dims }, () => 2 * rand()));
  const acts = new Float32Array(2 * nEach * dims);
  const cls = new Int32Array(2 * nEach);
  for (let i = 0; i < 2 * nEach; i++) {
    cls[i] = i % 2;
    // with scaleJitter the norm varies 50×, so only the direction tells the clusters apart
    const s = scaleJitter ? 0.2 + 9.8 * rand() : 1;
    for (let d = 0; d < dims; d++) acts[i * dims + d] = s * (centres[i % 2]![d]! + 0.25 * gauss());
  }
  return { acts, cls };
}

/** Leave-one-out 1-NN accuracy of the layout at predicting the cluster. */
function oneNN(xy: Float32Array, cls: Int32Array, nc: number): number {
  const n = cls.length;
  let ok = 0;
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let who = -1;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let d = 0;
      for (let c = 0; c < nc; c++) d += (xy[i * nc + c]! - xy[j * nc + c]!) ** 2;
      if (d < best) [best, who] = [d, j];
    }
    if (cls[who] === cls[i]) ok++;
  }
  return ok / n;
}

const base: UmapOptions = { nNeighbors: 15, minDist: 0.05, nComponents: 2, seed: 7, metric: 'cosine', nEpochs: 150 };

describe('pairAxis', () => {
  it('divides B − A by the 99th percentile of |B − A| and clips to [−1, 1]', () => {
    // x = −100 … 100: |x| sorted is 0,1,1,2,2,…,100,100; rank 0.99·200 = 198 → 99
    const n = 201;
    const attrA = new Float32Array(n);
    const attrB = Float32Array.from({ length: n }, (_, i) => i - 100);
    const idx = Int32Array.from({ length: n }, (_, i) => i);
    const x = pairAxis(attrA, attrB, idx);
    expect(x[100]).toBe(0);
    expect(x[150]).toBeCloseTo(50 / 99, 6);
    expect(x[199]).toBe(1); // 99/99
    expect(x[200]).toBe(1); // 100/99 clipped
    expect(x[0]).toBe(-1);
    expect(x[2]).toBeCloseTo(-98 / 99, 6);
  });

  it('works on a subset in the order given and interpolates the percentile', () => {
    const attrA = Float32Array.from([1, 0, 0, 0, 0, 5]);
    const attrB = Float32Array.from([0, 2, 3, 4, 10, 99]);
    // idx picks x = [4, −1, 10, 3, 2]; |x| sorted 1,2,3,4,10; rank 0.99·4 = 3.96 → 4 + 0.96·6 = 9.76
    const x = pairAxis(attrA, attrB, Int32Array.from([3, 0, 4, 2, 1]));
    expect(percentile([4, 1, 10, 3, 2], 99)).toBeCloseTo(9.76, 10);
    expect(Array.from(x)).toEqual(Array.from(Float32Array.from([4 / 9.76, -1 / 9.76, 1, 3 / 9.76, 2 / 9.76])));
  });

  it('gives zeros when A and B attribute equally', () => {
    const a = Float32Array.from([0.3, 0.5, 0.7]);
    expect(Array.from(pairAxis(a, a, Int32Array.from([0, 1, 2])))).toEqual([0, 0, 0]);
  });
});

describe('normaliseLayout', () => {
  it('clips to the 1st–99th percentile widened by the margin, then scales to [0, 1]', () => {
    // x: 0 … 99 and one outlier 1000 (101 points). p1 = 1, p99 = 99 → range 98, margin 0.1 →
    // clip to [−8.8, 108.8]; the data's own minimum is 0, so x ↦ x / 108.8.
    const n = 101;
    const xy = new Float32Array(2 * n);
    for (let i = 0; i < 100; i++) xy[2 * i] = i;
    xy[2 * 100] = 1000;
    for (let i = 0; i < n; i++) xy[2 * i + 1] = 5; // constant axis
    const out = normaliseLayout(xy, 2, { lo: 1, hi: 99, margin: 0.1 });
    expect(out[0]).toBe(0);
    expect(out[2 * 50]).toBeCloseTo(50 / 108.8, 6);
    expect(out[2 * 99]).toBeCloseTo(99 / 108.8, 6);
    expect(out[2 * 100]).toBe(1);
    for (let i = 0; i < n; i++) expect(out[2 * i + 1]).toBe(0.5);
  });

  it('without a margin the percentiles become the edges', () => {
    const xy = Float32Array.from({ length: 101 }, (_, i) => (i === 0 ? -500 : i));
    const out = normaliseLayout(xy, 1, { margin: 0 });
    // p1 = rank 1 → 1, p99 = rank 99 → 99: −500 and 1 both land on 0, 99 and 100 on 1
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(0);
    expect(out[50]).toBeCloseTo(49 / 98, 6);
    expect(out[99]).toBe(1);
    expect(out[100]).toBe(1);
    for (const v of out) expect(v >= 0 && v <= 1).toBe(true);
  });
});

describe('umapLayout', () => {
  it('separates two well-separated Gaussian clusters (400 points, 64-D)', async () => {
    const { acts, cls } = twoClusters(200, 64, 1);
    for (const metric of ['cosine', 'euclidean'] as const) {
      const xy = await umapLayout(acts, 64, 400, { ...base, metric });
      expect(xy.length).toBe(800);
      expect(oneNN(xy, cls, 2)).toBeGreaterThan(0.95);
    }
  });

  it('is deterministic for a seed, and the seed matters', async () => {
    const { acts } = twoClusters(60, 16, 2);
    const a = await umapLayout(acts, 16, 120, base);
    const b = await umapLayout(acts, 16, 120, base);
    const c = await umapLayout(acts, 16, 120, { ...base, seed: 8 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('with cosine, groups by direction whatever the norm (and copes with zero rows)', async () => {
    const { acts, cls } = twoClusters(150, 32, 3, true);
    acts.fill(0, 0, 32 * 2); // two dead positions: rows 0 and 1
    const xy = await umapLayout(acts, 32, 300, base);
    expect(xy.every(Number.isFinite)).toBe(true);
    const live = Int32Array.from(cls.subarray(2));
    expect(oneNN(xy.subarray(4), live, 2)).toBeGreaterThan(0.95);
  });

  it('with cosine, only directions matter: rescaling rows by powers of two gives the identical layout', async () => {
    const { acts } = twoClusters(50, 16, 9);
    const scaled = acts.map((v, k) => v * 2 ** ((Math.floor(k / 16) % 7) - 3));
    expect(Array.from(await umapLayout(scaled, 16, 100, base))).toEqual(Array.from(await umapLayout(acts, 16, 100, base)));
    const e = { ...base, metric: 'euclidean' as const };
    expect(Array.from(await umapLayout(scaled, 16, 100, e))).not.toEqual(Array.from(await umapLayout(acts, 16, 100, e)));
  });

  it('lays out in 1-D', async () => {
    const { acts, cls } = twoClusters(100, 16, 4);
    const y = await umapLayout(acts, 16, 200, { ...base, nComponents: 1 });
    expect(y.length).toBe(200);
    expect(oneNN(y, cls, 1)).toBeGreaterThan(0.95);
  });

  it('clamps nNeighbors for tiny inputs with a note, and refuses fewer than 3 points', async () => {
    const { acts } = twoClusters(3, 8, 5);
    const notes: string[] = [];
    const xy = await umapLayout(acts, 8, 6, { ...base, nNeighbors: 20, onNote: (s) => notes.push(s) });
    expect(xy.length).toBe(12);
    expect(notes).toEqual(['UMAP nNeighbors 20 ≥ 6 points; using 5']);
    await expect(umapLayout(acts.subarray(0, 16), 8, 2, base)).rejects.toThrow(PatchAtlasError);
    await expect(umapLayout(acts.subarray(0, 16), 8, 2, base)).rejects.toThrow(/at least 3/);
  });

  it('reports every epoch', async () => {
    const { acts } = twoClusters(20, 8, 6);
    const seen: number[] = [];
    await umapLayout(acts, 8, 40, { ...base, nEpochs: 30, onEpoch: (e, total) => seen.push(e * 1000 + total) });
    expect(seen).toEqual(Array.from({ length: 30 }, (_, k) => (k + 1) * 1000 + 30));
  });
});
