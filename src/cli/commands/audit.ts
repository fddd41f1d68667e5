import type { Argv, CommandModule } from 'yargs';
import { loadAuditConfig } from '../../audit/config.js';
import { auditSummary, runAudit } from '../../audit/run.js';
import { PatchAtlasError } from '../../errors.js';
import { ENGINE_CHOICES, type EngineChoice } from '../../engine/index.js';
import { DEFAULT_MODEL } from '../../model/descriptor.js';
import { skipReporter, type CliIO } from '../io.js';
import { loadFromArgs, progressBar } from '../options.js';

interface AuditArgs {
  config: string;
  backend: EngineChoice;
  offline: boolean;
  json: boolean;
}

export function auditCommand(io: CliIO): CommandModule {
  return {
    command: 'audit',
    describe: 'run the patch checks and screens of a config file; exit 1 when a threshold is broken (JUnit XML for CI)',
    builder: (y: Argv) =>
      y
        .option('config', { type: 'string', demandOption: true, describe: 'audit config (JSON; see docs/audit.md); its paths are relative to its folder' })
        .option('backend', { type: 'string', choices: ENGINE_CHOICES as EngineChoice[], default: 'auto' as EngineChoice, describe: 'engine: auto, wasm, onnxruntime, cpu, tensorflow (see --help of any command)' })
        .option('offline', { type: 'boolean', default: false, describe: 'never download weights' })
        .option('json', { type: 'boolean', default: false, describe: 'print audit.json\'s content instead of the text summary' })
        .example('$0 audit --config audit.json', 'exit 0 when every threshold holds, 1 otherwise; audit.json and junit.xml in the config\'s output folder'),
    handler: async (raw) => {
      const a = raw as unknown as AuditArgs;
      const cfg = loadAuditConfig(a.config);
      const c = await loadFromArgs({ model: cfg.model ?? DEFAULT_MODEL, backend: a.backend, offline: a.offline, ...(cfg.weights ? { weights: cfg.weights } : {}) }, io, a.json);
      try {
        const skips = skipReporter(io, a.json);
        let bar = progressBar(io, 'evaluate', !a.json);
        const r = await runAudit(cfg, c, {
          onSkip: skips.onSkip,
          onNote: (n) => !a.json && io.err(n),
          onCheck: (check, i, n) => {
            bar.done();
            bar = progressBar(io, 'run' in check ? 'screen' : 'evaluate', !a.json);
            if (!a.json) io.err(`check ${i + 1}/${n}: ${check.name}`);
          },
          onProgress: (done, total) => bar.update(done, total),
          onPair: (done, total) => bar.update(done, total),
        });
        bar.done();
        if (a.json) io.out(JSON.stringify(r, null, 2));
        else for (const line of auditSummary(r, a.config)) io.out(line);
        if (!r.passed) {
          // The audit ran and a threshold broke: the CLI prints this one line and exits 1.
          throw new PatchAtlasError('AUDIT_FAILED', `audit failed: ${r.counts.failed} of ${r.counts.thresholds} thresholds broken`, `details in ${r.files.junit}`);
        }
      } finally {
        c.dispose();
      }
    },
  };
}
