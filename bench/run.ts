/**
 * `npm run bench [-- --only forward,collect,gradient,featvis,atlas] [--collect-images 200] [--atlas-points 10000,50000] [--no-peers]`
 * Runs each workload in its own process and prints figures, peak memory, and ratios against baselines
 * measured in the same run: the PyTorch / umap-learn peers from ../shared/peers where installed, and
 * plain forward throughput for collection. Timings belong here, never in tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readEnv } from '../src/config.js';

type Row = Record<string, number | string>;
const args = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const only = new Set(flag('only', 'forward,collect,gradient,featvis,atlas').split(','));
const usePeers = !args.includes('--no-peers');
const here = dirname(fileURLToPath(import.meta.url));
const env = readEnv();
const peers = process.env.PATCH_ATLAS_PEERS ?? (env.dataDir ? join(dirname(env.dataDir), 'peers') : undefined);

function workload(name: string, a: Row): Row {
  const r = spawnSync(process.execPath, [join(here, 'workload.js'), name, JSON.stringify(a)], { encoding: 'utf8', env: process.env });
  if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Row;
}

function peer(script: string, ...a: string[]): Row | undefined {
  if (!usePeers || !peers || !existsSync(join(peers, script))) return undefined;
  try {
    const t0 = Date.now();
    const out = execFileSync('/usr/bin/python3', [join(peers, script), ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ...(JSON.parse(out.trim().split('\n').pop()!) as Row), wall_s: (Date.now() - t0) / 1000 };
  } catch (e) {
    console.error(`peer ${script} unavailable: ${(e as Error).message.split('\n')[0]} (apt-get install -y python3-torch python3-torchvision umap-learn)`);
    return undefined;
  }
}

/** Like peer(), but also the peer's peak memory from GNU time (stderr's last line, kB). */
function peerWithMemory(script: string, ...a: string[]): Row | undefined {
  if (!usePeers || !peers || !existsSync(join(peers, script)) || !existsSync('/usr/bin/time')) return peer(script, ...a);
  const t0 = Date.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '/usr/bin/python3', join(peers, script), ...a], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const kb = Number(r.stderr.trim().split('\n').pop());
  return { ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Row), wall_s: (Date.now() - t0) / 1000, max_rss_mb: Math.round(kb / 1024) };
}

const table: Array<[string, string, string, string, string]> = [];
const fmt = (v: number | string | undefined, d = 1) => (typeof v === 'number' ? v.toFixed(d) : v ?? '—');
const ratio = (ours: number | undefined, theirs: number | undefined, higherIsBetter: boolean) =>
  ours && theirs ? `${(higherIsBetter ? ours / theirs : theirs / ours).toFixed(2)}×` : '—';

console.log(`patch-atlas bench — node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const torch = only.has('forward') || only.has('collect') || only.has('gradient') || only.has('featvis') ? peer('peer_torch_cpu.py', '2') : undefined;
let forward: Row | undefined;
if (only.has('forward') || only.has('collect')) {
  forward = workload('forward', { batch: 8 });
  const p = torch?.mobilenet_v1_075_forward_b8_img_per_s as number | undefined;
  table.push(['forward, images/s (batch 8)', fmt(forward.images_per_s), fmt(p), ratio(forward.images_per_s as number, p, true), fmt(forward.max_rss_mb, 0)]);
}
if (only.has('collect')) {
  const n = Number(flag('collect-images', '200'));
  const c = workload('collect', { images: n, positions: 1 });
  const p = torch?.mobilenet_v1_075_attribution_b8_img_per_s as number | undefined;
  table.push([`collect + attribution to 1000 classes, images/s (${n} images)`, fmt(c.images_per_s), fmt(p), ratio(c.images_per_s as number, p, true), fmt(c.max_rss_mb, 0)]);
  table.push(['  … vs plain forward in this run', fmt(c.images_per_s), fmt(forward?.images_per_s), ratio(c.images_per_s as number, forward?.images_per_s as number, true), '']);
}
if (only.has('gradient')) {
  // Peer: PyTorch forward + backward to a hidden layer (block 12 ≈ conv_pw_11), batch 8 — the same work as the
  // hidden-layer gradient; the input gradient goes one block further back. Forward: interleaved in the same process.
  const g = workload('gradient', { batch: 8 });
  const p = torch?.mobilenet_v1_075_attribution_b8_img_per_s as number | undefined;
  const pf = torch?.mobilenet_v1_075_forward_b8_img_per_s as number | undefined;
  const fwd = g.forward_images_per_s as number;
  const peerCost = p && pf ? `; PyTorch's attribution: ${(pf / p).toFixed(2)}` : '';
  table.push([`input gradient (1 logit), images/s (batch 8)`, fmt(g.input_grad_images_per_s), fmt(p), ratio(g.input_grad_images_per_s as number, p, true), fmt(g.max_rss_mb, 0)]);
  table.push([`hidden-layer gradient (${String(g.layer)}), images/s (batch 8)`, fmt(g.layer_grad_images_per_s), fmt(p), ratio(g.layer_grad_images_per_s as number, p, true), '']);
  const cost = (v: number | string | undefined) => (typeof v === 'number' ? `costs ${v.toFixed(2)} forward passes` : '');
  table.push([`  … input gradient vs plain forward, same process (${cost(g.input_grad_vs_forward)}${peerCost})`, fmt(g.input_grad_images_per_s), fmt(fwd), ratio(g.input_grad_images_per_s as number, fwd, true), '']);
  table.push([`  … hidden-layer gradient vs plain forward, same process (${cost(g.layer_grad_vs_forward)})`, fmt(g.layer_grad_images_per_s), fmt(fwd), ratio(g.layer_grad_images_per_s as number, fwd, true), '']);
}
if (only.has('featvis')) {
  // Peer: one lucent-style step at 128 px, batch 1 (the peer script has no batch 16 figure).
  const p = torch?.mobilenet_v1_075_featvis_step_128px_b1_ms as number | undefined;
  for (const [size, batch] of [[96, 1], [128, 1], [96, 16], [128, 16]] as const) {
    const f = workload('featvis', { size, batch });
    const peerMs = size === 128 && batch === 1 ? p : undefined;
    table.push([`feature-vis step, ms per icon (${size} px, batch ${batch})`, fmt(f.ms_per_icon), fmt(peerMs), ratio(f.ms_per_icon as number, peerMs, false), fmt(f.max_rss_mb, 0)]);
  }
}
if (only.has('atlas')) {
  for (const n of flag('atlas-points', '10000,50000').split(',').map(Number)) {
    const a = workload('atlas', { points: n });
    const p = peerWithMemory('peer_umap.py', String(n));
    table.push([`layer atlas, ${n} × 384 points, seconds (peer: umap-learn wall)`, fmt(a.seconds), fmt(p?.wall_s), ratio(a.seconds as number, p?.wall_s as number, false), `${fmt(a.max_rss_mb, 0)} (peer ${fmt(p?.max_rss_mb, 0)})`]);
  }
}
const head: [string, string, string, string, string] = ['workload', 'patch-atlas', 'peer', 'ratio (>1 = ahead)', 'peak MB'];
const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
for (const r of [head, ...table]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
