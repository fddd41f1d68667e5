/**
 * PNG exports of the report's charts, drawn in Node by chart.js on an @napi-rs/canvas (no browser,
 * no system libraries), with the page's own chart configuration (client.js) so both look the same.
 * The heat map is drawn directly: chart.js has no heat-map type.
 */
import { Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration } from 'chart.js';
import { reportCharts, type ChartSpec } from './chart-specs.js';
import type { ReportData, ReportPatches } from '../formats/report.js';
import { heatColour, pct } from './format.js';

Chart.register(...registerables);

interface ClientCharts {
  config: (spec: ChartSpec, opts: { responsive: boolean; devicePixelRatio: number }) => ChartConfiguration;
}

let client: ClientCharts | undefined;

/** client.js evaluated in a scope of its own: it only defines functions, and `document` is absent, so no page code runs. */
function clientCharts(clientJs: string): ClientCharts {
  if (client) return client;
  const scope: { PatchAtlasCharts?: ClientCharts } = {};
  new Function('self', `${clientJs}\n`)(scope);
  if (!scope.PatchAtlasCharts) throw new Error('client.js did not define PatchAtlasCharts');
  return (client = scope.PatchAtlasCharts);
}

/** One chart as PNG bytes, `width`×`height` px. */
export async function chartPng(spec: ChartSpec, width: number, height: number, clientJs: string): Promise<Buffer> {
  const canvas = new Canvas(width, height);
  const cfg = clientCharts(clientJs).config(spec, { responsive: false, devicePixelRatio: 1 });
  // chart.js takes any object with a 2D context's methods and a `canvas` with width/height.
  const chart = new Chart(canvas.getContext('2d') as unknown as ConstructorParameters<typeof Chart>[0], cfg);
  try {
    chart.draw();
    return await canvas.encode('png');
  } finally {
    chart.destroy();
  }
}

/** Position × size tables of every patch side by side, coloured as in the page. */
export async function heatmapPng(r: ReportPatches): Promise<Buffer | null> {
  const panels = r.patches.filter((p) => p.heat);
  if (panels.length === 0) return null;
  const cw = 64;
  const ch = 28;
  const labelW = 96;
  const titleH = 26;
  const panelW = (p: (typeof panels)[number]) => labelW + cw * p.heat!.sizes.length + 24;
  const panelH = (p: (typeof panels)[number]) => titleH + ch * (p.heat!.positions.length + 1) + 16;
  const perRow = Math.max(1, Math.min(panels.length, Math.floor(1400 / Math.max(...panels.map(panelW)))));
  const w = Math.max(...panels.map(panelW)) * perRow + 16;
  const h = Math.ceil(panels.length / perRow) * Math.max(...panels.map(panelH)) + 16;
  const canvas = new Canvas(w, h);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, w, h);
  panels.forEach((p, k) => {
    const x0 = 8 + (k % perRow) * Math.max(...panels.map(panelW));
    const y0 = 8 + Math.floor(k / perRow) * Math.max(...panels.map(panelH));
    drawHeat(ctx, p.name, p.heat!, x0, y0, { cw, ch, labelW, titleH });
  });
  return canvas.encode('png');
}

function drawHeat(ctx: SKRSContext2D, name: string, heat: NonNullable<ReportPatches['patches'][number]['heat']>, x0: number, y0: number, g: { cw: number; ch: number; labelW: number; titleH: number }): void {
  ctx.textBaseline = 'middle';
  ctx.fillStyle = '#111111';
  ctx.font = 'bold 14px sans-serif';
  ctx.textAlign = 'left';
  ctx.fillText(name.length > 40 ? `${name.slice(0, 39)}…` : name, x0, y0 + g.titleH / 2);
  ctx.font = '12px sans-serif';
  const top = y0 + g.titleH;
  ctx.textAlign = 'center';
  heat.sizes.forEach((s, c) => ctx.fillText(String(s), x0 + g.labelW + c * g.cw + g.cw / 2, top + g.ch / 2));
  heat.positions.forEach((pos, r) => {
    const y = top + (r + 1) * g.ch;
    ctx.textAlign = 'left';
    ctx.fillStyle = '#111111';
    ctx.fillText(pos, x0, y + g.ch / 2);
    heat.rates[r]!.forEach((rt, c) => {
      const col = heatColour(rt?.p ?? null);
      const x = x0 + g.labelW + c * g.cw;
      ctx.fillStyle = col.background;
      ctx.fillRect(x, y, g.cw - 2, g.ch - 2);
      // Outlined, so 0 % (white) cells still read as cells.
      ctx.strokeStyle = '#dddddd';
      ctx.strokeRect(x + 0.5, y + 0.5, g.cw - 3, g.ch - 3);
      ctx.fillStyle = col.text;
      ctx.textAlign = 'center';
      ctx.fillText(rt ? pct(rt.p) : '–', x + g.cw / 2 - 1, y + g.ch / 2);
    });
  });
}

/** Every chart as PNG bytes, named <id>.png, and heatmap.png. */
export async function chartPngs(data: ReportData, clientJs: string): Promise<Array<{ name: string; png: Buffer }>> {
  const out: Array<{ name: string; png: Buffer }> = [];
  const bars = Math.max(1, data.patches?.patches.length ?? 1);
  for (const spec of reportCharts(data)) {
    const groups = spec.labels.length * (spec.id === 'flip-rates' ? bars : 2);
    const width = Math.min(1600, Math.max(800, 120 + groups * 45));
    out.push({ name: `${spec.id}.png`, png: await chartPng(spec, width, 480, clientJs) });
  }
  const heat = data.patches ? await heatmapPng(data.patches) : null;
  if (heat) out.push({ name: 'heatmap.png', png: heat });
  return out;
}
