import { PatchAtlasError } from '../../errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { COLLECT_PARAMS, collect } from '../../recipes/collect.js';
import { checkParams } from '../../recipes/params.js';
import { formatShard, mergeRuns, parseShard } from '../../formats/run/index.js';
import { parsePositions } from '../../attribution/positions.js';
import { openDataset } from '../../data/dataset.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, progressBar, withModel, type ModelArgs } from '../options.js';

interface CollectArgs extends ModelArgs {
  images: string;
  layer?: string;
  out: string;
  positions: string;
  seed: number;
  shard?: string;
  batchSize?: number;
  json: boolean;
}

export function collectCommand(io: CliIO): CommandModule {
  return {
    command: 'collect',
    describe: 'hidden-layer activations and their attribution to every class, into a resumable run folder',
    builder: (y: Argv) =>
      withModel(y)
        .option('images', { type: 'string', demandOption: true, describe: 'image folder or CSV manifest' })
        .option('layer', { type: 'string', describe: 'layer name or alias (default: the model\'s atlas layer)' })
        .option('out', { type: 'string', demandOption: true, describe: 'run folder to write (re-run the same command to resume)' })
        .option('positions', { type: 'string', default: String(COLLECT_PARAMS.positions.default), describe: 'positions per image: a number, or "all" (non-border positions)' })
        .option('seed', { type: 'number', default: COLLECT_PARAMS.seed.default, describe: 'seed for position sampling' })
        .option('shard', { type: 'string', describe: 'i/N: process a deterministic 1/N of the images (join with `merge`)' })
        .option('batch-size', { type: 'number', describe: 'images per batch (default 16; 4 with --positions all)' })
        .option('json', { type: 'boolean', default: false, describe: 'print a JSON summary' })
        .example('$0 collect --images ./imagenet-sample --layer conv_pw_11_relu --out runs/pw11', 'one random position per image')
        .example('$0 collect --images ./imgs --out runs/s0 --shard 0/2', 'first of two shards; then `merge runs/s0 runs/s1 --out runs/all`'),
    handler: async (raw) => {
      const a = raw as unknown as CollectArgs;
      const params = checkParams(COLLECT_PARAMS, { positions: parsePositions(a.positions), seed: a.seed, batchSize: a.batchSize });
      const shard = a.shard ? parseShard(a.shard) : null;
      const c = await loadFromArgs(a, io, a.json);
      const abort = new AbortController();
      const onSigint = () => {
        if (abort.signal.aborted) process.exit(130); // second Ctrl-C: chunks on disk are already safe
        abort.abort();
        io.err('\ninterrupted: finishing the current batch; re-run the same command to resume');
      };
      process.on('SIGINT', onSigint);
      try {
        const ds = await openDataset(a.images, c.labels);
        const skips = skipReporter(io, a.json);
        for (const s of ds.skipped) skips.onSkip(s);
        const bar = progressBar(io, `collect${shard ? ` ${formatShard(shard)}` : ''}`, !a.json);
        let started = false;
        const r = await collect(c, ds, {
          layer: a.layer ?? c.descriptor.layers.default,
          out: a.out,
          ...params,
          shard,
          signal: abort.signal,
          onSkip: skips.onSkip,
          ...(a.json ? {} : { onNote: (n: string) => io.err(`note: ${n}`) }),
          onProgress: (done, total) => {
            if (!started && done > 0 && !a.json) io.err(`resuming: ${done} of ${total} images already done`);
            started = true;
            bar.update(done, total);
          },
        });
        bar.done();
        const m = r.manifest;
        const interrupted = !r.complete && abort.signal.aborted;
        if (a.json) io.out(JSON.stringify({ run: a.out, complete: r.complete, points: m.points, processed: r.processed, resumed: r.resumed, skipped: m.skippedImages.length, method: r.method, seconds: r.seconds, layer: m.layer, positions: m.positions }, null, 2));
        // Stopped by Ctrl-C: the finished images are on disk, and the exit code says the work is not done.
        if (interrupted) throw new PatchAtlasError('INTERRUPTED', `interrupted: ${a.out} holds ${r.resumed + r.processed} finished images`, 're-run the same command to resume');
        if (a.json) return;
        if (!r.complete) return io.out(`${a.out}: partial (${r.resumed + r.processed} images done); re-run the same command to resume`);
        io.out(`${a.out}: ${m.points} points from ${m.processedImages} images at ${m.layer} (${m.channels} channels, attribution to ${m.classes.length} classes${r.method === 'reverse' ? ', reverse-mode' : ''}); ${m.skippedImages.length} skipped; ${r.seconds.toFixed(1)} s`);
      } finally {
        process.off('SIGINT', onSigint);
        c.dispose();
      }
    },
  };
}

export function mergeCommand(io: CliIO): CommandModule {
  return {
    command: 'merge <shards...>',
    describe: 'join shard folders of `collect --shard i/N` (runs) or `screen --shard i/N` (screens) into one',
    builder: (y: Argv) =>
      y
        .positional('shards', { type: 'string', array: true, describe: 'shard folders (all runs, or all screens)' })
        .option('out', { type: 'string', demandOption: true, describe: 'merged folder' })
        .example('$0 merge runs/s0 runs/s1 --out runs/all', 'identical to an unsharded run')
        .example('$0 merge screens/s0 screens/s1 --out screens/all', 'identical to an unsharded screen'),
    handler: async (raw) => {
      const a = raw as unknown as { shards: string[]; out: string };
      if (a.shards.every((s) => existsSync(join(s, 'screen-plan.json')))) {
        const { mergeScreens } = await import('../../recipes/screen.js');
        const r = await mergeScreens(a.shards, a.out);
        return io.out(`${r.files.json}: ${r.file.sets.map((s) => `${s.pairs.length} ${s.name} pairs`).join(', ')} from ${a.shards.length} shards`);
      }
      const m = await mergeRuns(a.shards, a.out);
      io.out(`${a.out}: ${m.points} points from ${a.shards.length} shards`);
    },
  };
}
