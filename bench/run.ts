/**
 * `npm run bench [-- --only forward,collect,gradient,featvis,steps,atlas,demo] [--collect-images 200] [--atlas-points 10000,50000] [--peer-budget 3600] [--no-peers]`
 * At the article's scale: `npm run bench -- --only atlas --atlas-points 200000,1000000` (about an hour on 2 cores,
 * most of it umap-learn; a peer past --peer-budget seconds is stopped and shown as not finished).
 * Runs each workload in its own process and prints figures, peak memory, and ratios against baselines
 * measured in the same run: the PyTorch / umap-learn peers from ../shared/peers where installed, and
 * plain forward throughput for collection. Timings belong here, never in tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readEnv } from '../src/config.js';
import { median } from './stats.js';

type Row = Record<string, number | string>;
const args = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const only = new Set(flag('only', 'forward,googlenet,collect,evaluate,gradient,featvis,steps,atlas,demo').split(','));
const usePeers = !args.includes('--no-peers');
const here = dirname(fileURLToPath(import.meta.url));
const env = readEnv();
const peers = process.env.PATCH_ATLAS_PEERS ?? (env.dataDir ? join(dirname(env.dataDir), 'peers') : undefined);

function workload(name: string, a: Row): Row {
  const r = spawnSync(process.execPath, [join(here, 'workload.js'), name, JSON.stringify(a)], { encoding: 'utf8', env: process.env });
  if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Row;
}

/** A peer script from ../shared/peers, or (`own`) from bench/peers (same network, other settings). */
function peer(script: string, ...a: string[]): Row | undefined {
  const dir = script.startsWith('bench/') ? join(here, '..', '..') : peers;
  if (!usePeers || !dir || !existsSync(join(dir, script))) return undefined;
  try {
    const t0 = Date.now();
    const out = execFileSync('/usr/bin/python3', [join(dir, script), ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ...(JSON.parse(out.trim().split('\n').pop()!) as Row), wall_s: (Date.now() - t0) / 1000 };
  } catch (e) {
    console.error(`peer ${script} unavailable: ${(e as Error).message.split('\n')[0]} (apt-get install -y python3-torch python3-torchvision umap-learn)`);
    return undefined;
  }
}

/**
 * Like peer(), but also the peer's peak memory from GNU time (stderr's last line, kB). With a budget (seconds) the
 * peer is stopped there by coreutils timeout; a stopped or killed peer comes back as { unfinished: why } with its
 * peak memory so far.
 */
function peerWithMemory(script: string, budgetS: number, ...a: string[]): Row | undefined {
  if (!usePeers || !peers || !existsSync(join(peers, script)) || !existsSync('/usr/bin/time')) return peer(script, ...a);
  const t0 = Date.now();
  // time → timeout → python: timeout waits for python, so time's %M covers python's peak
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'timeout', String(budgetS), '/usr/bin/python3', join(peers, script), ...a], { encoding: 'utf8' });
  const kb = Number(r.stderr.trim().split('\n').pop());
  const common = { wall_s: (Date.now() - t0) / 1000, max_rss_mb: Math.round(kb / 1024) };
  if (r.status === 124) return { ...common, unfinished: `not finished in ${budgetS} s` };
  // 137: python killed by SIGKILL, on this machine the kernel's OOM killer (umap-learn at 1,000,000 × 512 in 24 GB)
  if (r.status === 137) return { ...common, unfinished: `killed after ${Math.round(common.wall_s)} s (out of memory?)` };
  if (r.status !== 0) return undefined;
  return { ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Row), ...common };
}

const table: Array<[string, string, string, string, string]> = [];
const fmt = (v: number | string | undefined, d = 1) => (typeof v === 'number' ? v.toFixed(d) : v ?? '—');
const ratio = (ours: number | undefined, theirs: number | undefined, higherIsBetter: boolean) =>
  ours && theirs ? `${(higherIsBetter ? ours / theirs : theirs / ours).toFixed(2)}×` : '—';
/** A ratio measured round by round (or pair by pair), > 1 = ours ahead. */
const perRound = (r: number | string | undefined) => (typeof r === 'number' ? `${r.toFixed(2)}×` : '—');

console.log(`patch-atlas bench — node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const torch = only.has('forward') || only.has('googlenet') || only.has('collect') || only.has('gradient') || only.has('featvis') ? peer('peer_torch_cpu.py', '2') : undefined;
let forward: Row | undefined;
if (only.has('forward') || only.has('collect')) {
  forward = workload('forward', { batch: 8, backend: 'wasm' });
  const p = torch?.mobilenet_v1_075_forward_b8_img_per_s as number | undefined;
  table.push([`forward on wasm, images/s (batch 8, ${String(forward.threads)} threads)`, fmt(forward.images_per_s), fmt(p), ratio(forward.images_per_s as number, p, true), fmt(forward.max_rss_mb, 0)]);
  // The default engine for forward-only work: the model exported to ONNX, run by onnxruntime-node.
  try {
    const ort = workload('forward', { batch: 8, backend: 'onnxruntime' });
    table.push([`forward on onnxruntime (the default where installed), images/s (batch 8)`, fmt(ort.images_per_s), fmt(p), ratio(ort.images_per_s as number, p, true), fmt(ort.max_rss_mb, 0)]);
    table.push([`  … onnxruntime vs our wasm forward, same run`, fmt(ort.images_per_s), fmt(forward.images_per_s), ratio(ort.images_per_s as number, forward.images_per_s as number, true), '']);
  } catch (e) {
    console.error(`onnxruntime forward unavailable: ${(e as Error).message}`);
  }
}
if (only.has('googlenet') && env.modelsDir && existsSync(join(env.modelsDir, 'googlenet_bvlc', 'model.onnx'))) {
  // The article's network as ONNX: forward on onnxruntime-node and on our wasm engine, attribution to all classes at
  // mixed4c (one forward-mode pass; the peer runs one backward pass, for one class), and a feature-vis step.
  const pf = torch?.googlenet_forward_b8_img_per_s as number | undefined;
  const wasmFwd = workload('forward', { model: 'googlenet', backend: 'wasm', batch: 8 });
  try {
    const ortFwd = workload('forward', { model: 'googlenet', backend: 'onnxruntime', batch: 8 });
    table.push([`GoogLeNet forward on onnxruntime, images/s (batch 8)`, fmt(ortFwd.images_per_s), fmt(pf), ratio(ortFwd.images_per_s as number, pf, true), fmt(ortFwd.max_rss_mb, 0)]);
    table.push([`  … onnxruntime vs our wasm forward, same run`, fmt(ortFwd.images_per_s), fmt(wasmFwd.images_per_s), ratio(ortFwd.images_per_s as number, wasmFwd.images_per_s as number, true), '']);
  } catch (e) {
    console.error(`onnxruntime forward unavailable: ${(e as Error).message}`);
  }
  table.push([`GoogLeNet forward on wasm, images/s (batch 8)`, fmt(wasmFwd.images_per_s), fmt(pf), ratio(wasmFwd.images_per_s as number, pf, true), fmt(wasmFwd.max_rss_mb, 0)]);
  const at = workload('attribution', { model: 'googlenet', layer: 'mixed4c', batch: 8 });
  const pa = torch?.googlenet_attribution_b8_img_per_s as number | undefined;
  table.push([`GoogLeNet attribution at mixed4c to all 1000 classes (${String(at.method)}), images/s (batch 8); peer: 1 class`, fmt(at.images_per_s), fmt(pa), ratio(at.images_per_s as number, pa, true), fmt(at.max_rss_mb, 0)]);
  const fv = workload('featvis', { model: 'googlenet', layer: 'mixed4c', size: 128, batch: 1, bare: 1 });
  const pv = torch?.googlenet_featvis_step_128px_b1_ms as number | undefined;
  table.push([`GoogLeNet feature-vis step at mixed4c, ms (128 px, batch 1, the peer's work)`, fmt(fv.ms_per_icon), fmt(pv), ratio(fv.ms_per_icon as number, pv, false), fmt(fv.max_rss_mb, 0)]);
}
if (only.has('forward')) {
  // Why forward is where it is: the dense kernel itself, same shapes on both sides (wasm SIMD is 128-bit without
  // FMA; PyTorch's oneDNN JIT uses AVX-512 FMA where the CPU has it).
  const k = workload('pointwise', {});
  const p = peer('bench/peers/peer_pointwise.py', '2')?.gflops as number | undefined;
  table.push([`  … the dense kernel alone: 1×1 conv 8×28×28×384→384, GFLOPS (${String(k.threads)} threads)`, fmt(k.gflops), fmt(p), ratio(k.gflops as number, p, true), '']);
}
if (only.has('collect')) {
  // Peer: forward + backward from a logit to block 12 (≈ conv_pw_11), batch 8 — attribution to one class. Ours is
  // the whole `collect`: JPEG decoding, the activation, attribution to all 1000 classes (JVP) and the store.
  const n = Number(flag('collect-images', '200'));
  const c = workload('collect', { images: n, positions: 1 });
  const p = torch?.mobilenet_v1_075_attribution_b8_img_per_s as number | undefined;
  table.push([`collect: decode + activation + attribution to all 1000 classes, images/s (${n} images)`, fmt(c.images_per_s), fmt(p), ratio(c.images_per_s as number, p, true), fmt(c.max_rss_mb, 0)]);
  table.push(['  … vs plain forward in this run', fmt(c.images_per_s), fmt(forward?.images_per_s), ratio(c.images_per_s as number, forward?.images_per_s as number, true), '']);
  // The same network as a tfjs graph model (written by bench/graph-model.ts): it runs as ONNX, forward mode included.
  const g = workload('collect', { images: n, positions: 1, format: 'graph' });
  table.push([`  … the same network as a tfjs graph model, images/s (attribution: ${String(g.method)})`, fmt(g.images_per_s), fmt(c.images_per_s), ratio(g.images_per_s as number, c.images_per_s as number, true), fmt(g.max_rss_mb, 0)]);
}
if (only.has('evaluate')) {
  // The evaluation block (paste a patch at a placement, classify) against plain forward passes of the same batch, same process.
  const e = workload('evaluate', { images: 32, batch: 16, patches: 4 });
  table.push([`evaluate: paste + score, images/s (batch ${String(e.batch)}, ${String(e.passes)} passes, ${String(e.engine)}) vs plain forward, same process`, fmt(e.images_per_s), fmt(e.forward_images_per_s), ratio(e.images_per_s as number, e.forward_images_per_s as number, true), fmt(e.max_rss_mb, 0)]);
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
  // The same input gradient from a backward graph run by onnxruntime-node (engine/onnx/backward.ts).
  table.push([`input gradient on onnxruntime (backward graph), images/s (batch 8)`, fmt(g.native_input_grad_images_per_s), fmt(p), ratio(g.native_input_grad_images_per_s as number, p, true), '']);
  table.push([`  … onnxruntime backward graph vs our wasm input gradient, same process (median of per-round ratios)`, fmt(g.native_input_grad_images_per_s), fmt(g.input_grad_images_per_s), perRound(g.input_grad_vs_native), '']);
  table.push([`hidden-layer gradient (${String(g.layer)}), images/s (batch 8)`, fmt(g.layer_grad_images_per_s), fmt(p), ratio(g.layer_grad_images_per_s as number, p, true), '']);
  const cost = (v: number | string | undefined) => (typeof v === 'number' ? `costs ${v.toFixed(2)} forward passes` : '');
  table.push([`  … input gradient vs plain forward, same process (${cost(g.input_grad_vs_forward)}${peerCost})`, fmt(g.input_grad_images_per_s), fmt(fwd), ratio(g.input_grad_images_per_s as number, fwd, true), '']);
  table.push([`  … hidden-layer gradient vs plain forward, same process (${cost(g.layer_grad_vs_forward)})`, fmt(g.layer_grad_images_per_s), fmt(fwd), ratio(g.layer_grad_images_per_s as number, fwd, true), '']);
}
if (only.has('featvis')) {
  // Peers: the same step in PyTorch at the same size and batch (bench/peers/peer_featvis.py): Adam on raw pixels
  // (bare), and with lucid's parameterisation and the article's transforms as lucent does them (lucid).
  for (const [size, batch] of [[128, 1], [128, 16]] as const) {
    const p = peer('bench/peers/peer_featvis.py', String(size), String(batch), '2')?.ms_per_icon as number | undefined;
    const bare = workload('featvis', { size, batch, bare: 1 });
    table.push([`feature-vis step on raw pixels, ms per icon (${size} px, batch ${batch})`, fmt(bare.ms_per_icon), fmt(p), ratio(bare.ms_per_icon as number, p, false), fmt(bare.max_rss_mb, 0)]);
    const full = workload('featvis', { size, batch });
    // The chained step and the peer's lucid step take turns, three times at batch 16 (the batch the targets are set
    // at): this 2-core VM has slow spells lasting seconds, and one process each let a spell fall on one side only.
    // Ratios are the median of the pairs' (or the processes') own ratios.
    const pairs: Array<{ peer?: number; nat?: Row }> = [];
    for (let k = 0; k < (batch === 16 ? 3 : 1); k++) {
      const pl = peer('bench/peers/peer_featvis.py', String(size), String(batch), '2', 'lucid')?.ms_per_icon as number | undefined;
      let nat: Row | undefined;
      try {
        // The network on onnxruntime (forward and backward graph), the rest on the tape: featurevis/native-step.ts.
        nat = workload('featvisNative', { size, batch });
      } catch (e) {
        console.error(`native feature-vis step unavailable: ${(e as Error).message}`);
      }
      pairs.push({ peer: pl, nat });
    }
    const pl = median(pairs.map((q) => q.peer));
    table.push([`  … with Fourier param, decorrelation and the article's transforms (peer: the same in PyTorch)`, fmt(full.ms_per_icon), fmt(pl), ratio(full.ms_per_icon as number, pl, false), fmt(full.max_rss_mb, 0)]);
    const nats = pairs.flatMap((q) => (q.nat ? [q.nat] : []));
    if (nats.length) {
      const m = (key: string) => median(nats.map((n) => n[key] as number));
      const n = pairs.length > 1 ? `, median of ${pairs.length}` : '';
      table.push([`  … the network on onnxruntime (native ${fmt(m('native_ms_per_icon'))} + tape ${fmt(m('tape_ms_per_icon'))} ms${n})`, fmt(m('ms_per_icon')), fmt(pl), perRound(median(pairs.map((q) => (q.peer && q.nat ? q.peer / (q.nat.ms_per_icon as number) : undefined)))), fmt(m('max_rss_mb'), 0)]);
      table.push([`  … its native part vs the same network work (activations, then their input gradient) on wasm, alternating (median of per-round ratios${n})`, fmt(m('round_native_ms_per_icon')), fmt(m('round_wasm_ms_per_icon')), perRound(m('native_vs_wasm')), '']);
      // For the row above: the native part is one run of the backward graph of network and objective (readout), which
      // recomputes the forward; this row says how far native kernels are ahead before any backward work.
      table.push([`  … the forward pass alone, onnxruntime vs wasm (what native kernels gain before any backward work)`, fmt(m('native_forward_ms_per_icon')), fmt(m('wasm_forward_ms_per_icon')), ratio(m('native_forward_ms_per_icon'), m('wasm_forward_ms_per_icon'), false), '']);
      table.push([`  … chained vs all-tfjs step, same settings`, fmt(m('ms_per_icon')), fmt(full.ms_per_icon), ratio(m('ms_per_icon'), full.ms_per_icon as number, false), '']);
    }
  }
}
if (only.has('steps')) {
  // What --backend auto chooses for optimisation steps (NATIVE_BY_DEFAULT in model/classifier.ts): the same step
  // with the network on onnxruntime against all on the tape, same process (best of two rounds).
  const googlenet = env.modelsDir && existsSync(join(env.modelsDir, 'googlenet_bvlc', 'model.onnx'));
  for (const [label, a] of [['MobileNet v1 0.75', {}], ['the same as a tfjs graph model', { format: 'graph' }], ...(googlenet ? [['GoogLeNet (ONNX)', { model: 'googlenet' }]] : [])] as Array<[string, Row]>) {
    const s = workload('optimiseSteps', a);
    table.push([`EOT patch step, ${label}: network on onnxruntime vs all on the tape, ms/step (64 px patch, 8 images)`, fmt(s.patch_native_ms), fmt(s.patch_tape_ms), ratio(s.patch_native_ms as number, s.patch_tape_ms as number, false), fmt(s.max_rss_mb, 0)]);
    table.push([`icon step, ${label}: network on onnxruntime vs all on the tape, ms/step (96 px, batch 8, cossim)`, fmt(s.icon_native_ms), fmt(s.icon_tape_ms), ratio(s.icon_native_ms as number, s.icon_tape_ms as number, false), '']);
  }
}
if (only.has('atlas')) {
  // Same data and settings as the peer (random uniform 512-d points, 15 neighbours, min_dist 0.1), wall time of
  // the whole process (start-up included) on both sides; then a whole-layer atlas (UMAP + grid + cells) on
  // clustered 384-d points for the end-to-end figure.
  // Above approximateFrom(15) = 35,000 points our k-NN is NN-descent (src/atlas/umap/neighbours.ts), as umap-learn's.
  const budget = Number(flag('peer-budget', '3600'));
  for (const n of flag('atlas-points', '10000,50000').split(',').map(Number)) {
    const t0 = Date.now();
    const u = workload('umap', { points: n, dims: 512 });
    const wall = (Date.now() - t0) / 1000;
    const p = peerWithMemory('peer_umap.py', budget, String(n));
    const phases = `k-NN ${String(u.knn)} ${fmt(u.knn_s)} s, SGD ${fmt(u.optimise_s)} s`;
    const peerWall = p?.unfinished ? String(p.unfinished) : fmt(p?.wall_s);
    const r = p?.unfinished ? (String(p.unfinished).startsWith('not finished') ? `> ${(budget / wall).toFixed(2)}×` : 'peer failed') : ratio(wall, p?.wall_s as number, false);
    table.push([`UMAP, ${n} × 512 random points, wall seconds incl. start-up (${phases})`, fmt(wall), peerWall, r, `${fmt(u.max_rss_mb, 0)} (peer ${fmt(p?.max_rss_mb, 0)})`]);
    const a = workload('atlas', { points: n });
    table.push([`  layer atlas (UMAP + grid + cells), ${n} × 384 clustered points, seconds (k-NN ${fmt(a.knn_s)} s)`, fmt(a.seconds), '—', '—', fmt(a.max_rss_mb, 0)]);
  }
}
if (only.has('demo') && env.dataDir && env.modelsDir) {
  const out = mkdtempSync(join(tmpdir(), 'pa-bench-demo-'));
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(here, '..', '..', 'bin', 'patch-atlas'), 'demo', '--out', out], { encoding: 'utf8', env: process.env });
  const wall = (Date.now() - t0) / 1000;
  rmSync(out, { recursive: true, force: true });
  table.push(['demo end to end (sample images, fresh), wall seconds; target < 600', r.status === 0 ? fmt(wall) : `failed (${r.status})`, '—', '—', '']);
}
const head: [string, string, string, string, string] = ['workload', 'patch-atlas', 'peer', 'ratio (>1 = ahead)', 'peak MB'];
const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
for (const r of [head, ...table]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
