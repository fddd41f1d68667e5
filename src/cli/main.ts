import yargs from 'yargs';
import { formatError, isPatchAtlasError } from '../errors.js';
import { packageVersion } from '../util/paths.js';
import { accuracyCommand } from './commands/accuracy.js';
import { atlasCommand } from './commands/atlas.js';
import { auditCommand } from './commands/audit.js';
import { classifyCommand } from './commands/classify.js';
import { collectCommand, mergeCommand } from './commands/collect.js';
import { evaluateCommand } from './commands/evaluate.js';
import { iconsCommand } from './commands/icons.js';
import { modelsCommand } from './commands/models.js';
import { patchCommand } from './commands/patch.js';
import { reportCommand } from './commands/report.js';
import { screenCommand } from './commands/screen.js';
import { demoCommand, runCommand } from './commands/run.js';
import { processIO, type CliIO } from './io.js';

class UsageError extends Error {}

/**
 * argv -> options -> library call. Returns the exit code: 0 ok, 1 failure, 2 usage error.
 * Every error becomes one line here; stack traces only with --debug.
 */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const debug = argv.includes('--debug');
  const parser = yargs(argv)
    .scriptName('patch-atlas')
    .usage('$0 <command> [options]\n\nActivation atlases, bridging features and adversarial patch analysis for image classifiers.')
    .command(modelsCommand(io))
    .command(classifyCommand(io))
    .command(accuracyCommand(io))
    .command(collectCommand(io))
    .command(mergeCommand(io))
    .command(atlasCommand(io))
    .command(iconsCommand(io))
    .command(patchCommand(io))
    .command(evaluateCommand(io))
    .command(screenCommand(io))
    .command(auditCommand(io))
    .command(reportCommand(io))
    .command(runCommand(io))
    .command(demoCommand(io))
    .option('debug', { type: 'boolean', default: false, describe: 'show stack traces for errors' })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .recommendCommands()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .epilogue('Weights: PATCH_ATLAS_MODELS (a folder of model folders), else ~/.cache/patch-atlas (PATCH_ATLAS_CACHE), else downloaded from the model\'s official URL. Threads: PATCH_ATLAS_THREADS (default: every core; try 1 on a busy machine).')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
  try {
    await parser.parseAsync();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`patch-atlas: ${e.message} (see patch-atlas --help)`);
      return 2;
    }
    io.err(`patch-atlas: ${formatError(e)}`);
    if (debug && e instanceof Error && e.stack) io.err(e.stack);
    // 130: stopped by Ctrl-C (128 + SIGINT), as a shell reports it; the finished work is kept.
    return isPatchAtlasError(e) && e.code === 'BAD_FLAG' ? 2 : isPatchAtlasError(e) && e.code === 'INTERRUPTED' ? 130 : 1;
  }
}
