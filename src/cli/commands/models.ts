import type { Argv, CommandModule } from 'yargs';
import { readEnv } from '../../config.js';
import { DEFAULT_MODEL, isBuiltIn, listDescriptors, loadDescriptor, type ModelDescriptor } from '../../model/descriptor.js';
import { checkModel } from '../../model/check.js';
import { findLocalWeights, pinWeights, pullWeights } from '../../model/weights.js';
import type { CliIO } from '../io.js';
import { loadFromArgs, withModel, type ModelArgs } from '../options.js';

export function modelsCommand(io: CliIO): CommandModule {
  return {
    command: 'models <action> [name]',
    describe: 'list built-in models, show a model\'s layers, check a descriptor against its weights, download weights, or pin their hashes',
    builder: (y: Argv) =>
      withModel(y)
        .positional('action', { choices: ['list', 'info', 'check', 'pull', 'pin'] as const, describe: 'list | info | check | pull | pin' })
        .positional('name', { type: 'string', describe: 'model name (default: --model)' })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
        .example('$0 models list', 'built-in models and where their weights are')
        .example('$0 models info mobilenet_v1_0.75', 'every layer with its output shape')
        .example('$0 models pull', 'download the default model\'s weights into the cache')
        .example('$0 models check my-model.json', 'load it and check every name and size the descriptor gives, before any work')
        .example('$0 models pin my-model.json', 'write the sha256 of its weight files into the descriptor; later loads check them'),
    handler: async (raw) => {
      const a = raw as unknown as ModelArgs & { action: 'list' | 'info' | 'check' | 'pull' | 'pin'; name?: string; json: boolean };
      const name = a.name ?? a.model ?? DEFAULT_MODEL;
      const env = readEnv();
      if (a.action === 'list') {
        const rows = listDescriptors().map((n) => {
          const d = loadDescriptor(n);
          const w = findLocalWeights(d, { env });
          return { name: n, format: d.format, input: d.input.size, classes: d.labels.set, weights: w ? w.file : null, url: d.weights.url ?? null, description: d.description };
        });
        if (a.json) return io.out(JSON.stringify(rows, null, 2));
        for (const r of rows) {
          io.out(`${r.name}  ${r.format}, ${r.input.join('x')}, ${r.classes}  ${r.weights ? `weights: ${r.weights}` : 'weights: not downloaded (`patch-atlas models pull ' + r.name + '`)'}`);
          if (r.description) io.out(`  ${r.description}`);
        }
        return;
      }
      if (a.action === 'pin') {
        const d = loadDescriptor(name);
        const hashes = await pinWeights(d, { env, ...(a.weights ? { weights: a.weights } : {}) }, isBuiltIn(d));
        if (a.json) return io.out(JSON.stringify({ descriptor: d.path, sha256: hashes }, null, 2));
        io.out(`pinned ${Object.keys(hashes).length} weight file(s) in ${d.path}`);
        return;
      }
      if (a.action === 'pull') {
        const d = loadDescriptor(name);
        const have = findLocalWeights(d, { env, ...(a.weights ? { weights: a.weights } : {}) });
        if (have) return io.out(have.file);
        io.err(`downloading ${d.weights.url} ...`);
        const file = await pullWeights(d, { env, onProgress: (done, total) => io.errStream.isTTY && io.errStream.write(`\r  ${done}/${total} files\x1b[K`) });
        if (io.errStream.isTTY) io.errStream.write('\n');
        return io.out(file);
      }
      const c = await loadFromArgs({ ...a, model: name }, io, a.json);
      if (a.action === 'check') {
        try {
          const r = checkModel(c);
          if (a.json) return io.out(JSON.stringify({ descriptor: c.descriptor.path, weights: c.weights.file, ...r }, null, 2));
          io.out(`${c.descriptor.path}: ok`);
          io.out(`weights: ${c.weights.file} (${c.descriptor.format}); forward passes on ${c.forwardBackend}`);
          io.out(`input ${describeInput(c.descriptor)}`);
          io.out(`logits: ${r.logits.tensor}, ${r.logits.width} values = ${r.labels.classes} classes of ${r.labels.set}${r.labels.offset ? ' + 1 background' : ''}`);
          io.out(`atlas layer: ${r.defaultLayer.name} → ${r.defaultLayer.tensor} [${r.defaultLayer.shape.join(', ')}]`);
          io.out(`aliases: ${r.aliases.map((x) => `${x.alias} → ${x.tensor}`).join(', ') || 'none'}`);
          io.out(r.attribution.method === 'jvp' ? 'attribution: forward mode, one pass for every class' : `attribution: one backward pass per class (slow: ${r.attribution.why})`);
          io.out(r.gradients.why === undefined ? 'gradients: the network on onnxruntime (backward graphs) for EOT patches, reverse-mode attribution and icons where faster' : `gradients: on ${r.gradients.engine} (${r.gradients.why})`);
          for (const n of r.notes) io.out(`note: ${n}`);
          return;
        } finally {
          c.dispose();
        }
      }
      try {
        const d = c.descriptor;
        const aliasOf = new Map<string, string[]>();
        for (const [k, v] of Object.entries(d.layers.aliases)) aliasOf.set(v, [...(aliasOf.get(v) ?? []), k]);
        const layers = c.layers.map((l) => ({ ...l, aliases: aliasOf.get(l.name) ?? [] }));
        if (a.json) {
          return io.out(JSON.stringify({ name: d.name, format: d.format, input: d.input, labels: { set: d.labels.set, offset: d.labels.offset, classes: c.labels.size }, output: d.output, defaultLayer: d.layers.default, weights: c.weights.file, layers }, null, 2));
        }
        io.out(`${d.name} (${d.format}) — ${d.description}`);
        io.out(`input ${describeInput(d)}`);
        io.out(`labels ${d.labels.set} (${c.labels.size} classes${d.labels.offset ? ', +1 background' : ''}); logits from ${c.logitsLayer}; forward passes on ${c.forwardBackend}`);
        io.out(`weights: ${c.weights.file}`);
        io.out(`default atlas layer: ${d.layers.default}\n`);
        const w = Math.max(...layers.map((l) => l.name.length));
        for (const l of layers) {
          io.out(`${l.name.padEnd(w)}  ${l.type.padEnd(24)} ${l.shape ? `[${l.shape.join(', ')}]` : '?'}${l.aliases.length ? `  (${l.aliases.join(', ')})` : ''}`);
        }
      } finally {
        c.dispose();
      }
    },
  };
}

/** The input preprocessing in words: size, layout, channel order and the value mapping from [0,1] pixels. */
function describeInput(d: ModelDescriptor): string {
  const i = d.input;
  const round = (v: number) => Number(v.toPrecision(4));
  const values = i.range
    ? `values in [${i.range.join(', ')}]`
    : i.std!.every((s) => Math.abs(s * 255 - 1) < 1e-6)
      ? `values 0–255 minus mean [${i.mean!.map((m) => round(m * 255)).join(', ')}] (RGB order)`
      : `(x − mean) / std with x in [0,1], mean [${i.mean!.map(round).join(', ')}], std [${i.std!.map(round).join(', ')}]`;
  const layout = i.layout === 'nchw' ? 'NCHW (converted to NHWC once, at load)' : 'NHWC';
  const resize = i.resizeShorter ? `shorter side resized to ${i.resizeShorter}, centre crop ${i.size.join('x')}` : `resized to ${i.size.join('x')}`;
  return `${i.size.join('x')}x3, ${layout}, ${(i.channelOrder ?? 'rgb').toUpperCase()}, ${values}; ${resize}`;
}
