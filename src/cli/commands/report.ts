import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { buildReportData, writeReport } from '../../recipes/report.js';
import { shellCommand } from '../../util/shell.js';
import type { CliIO } from '../io.js';

interface ReportArgs {
  atlas?: string;
  evaluation?: string;
  accuracy?: string;
  screen?: string;
  model?: string;
  patches?: string[];
  out?: string;
  title?: string;
  examples: boolean;
  png: boolean;
}

export function reportCommand(io: CliIO): CommandModule {
  return {
    command: 'report',
    describe: 'one self-contained HTML report (atlas, bridges, patch flip rates with controls) from earlier results',
    builder: (y: Argv) =>
      y
        .option('atlas', { type: 'string', describe: 'atlas.json from `atlas` (or its folder); icons/ and atlas.png beside it are used when present' })
        .option('evaluation', { type: 'string', describe: 'results.json from `evaluate` (or its folder)' })
        .option('accuracy', { type: 'string', describe: 'JSON from `accuracy --json`' })
        .option('screen', { type: 'string', describe: 'screen.json from `screen` (or its folder): the pooled result heads the report' })
        .option('model', { alias: 'm', type: 'string', describe: 'model (name or descriptor .json) whose class names label the examples (default: the evaluation\'s)' })
        .option('patches', { type: 'string', array: true, describe: 'the patch files or folders given to `evaluate`: shows them and draws before/after examples' })
        .option('out', { type: 'string', describe: 'report folder (default: reports/<title>)' })
        .option('title', { type: 'string', describe: 'report title (default: from the classes)' })
        .option('examples', { type: 'boolean', default: true, describe: 'draw one before/after image per patch (--no-examples to skip)' })
        .option('png', { type: 'boolean', default: true, describe: 'also write charts/*.png (--no-png to skip)' })
        .example('$0 report --atlas run/atlas-grey_whale-vs-great_white_shark --evaluation evaluate-grey_whale-to-great_white_shark --patches ../shared/data/article-patches', 'atlas, bridges and patch results in one page'),
    handler: async (raw) => {
      const a = raw as unknown as ReportArgs;
      const args = [
        ...(['atlas', 'evaluation', 'accuracy', 'screen', 'model', 'title', 'out'] as const).flatMap((k) => (a[k] !== undefined ? [`--${k}`, a[k]!] : [])),
        ...(a.patches?.length ? ['--patches', ...a.patches] : []),
        ...(a.examples ? [] : ['--no-examples']),
        ...(a.png ? [] : ['--no-png']),
      ];
      const data = await buildReportData({
        ...(a.atlas !== undefined ? { atlas: a.atlas } : {}),
        ...(a.evaluation !== undefined ? { evaluation: a.evaluation } : {}),
        ...(a.accuracy !== undefined ? { accuracy: a.accuracy } : {}),
        ...(a.model !== undefined ? { model: a.model } : {}),
        ...(a.screen !== undefined ? { screen: a.screen } : {}),
        ...(a.patches?.length ? { patches: a.patches } : {}),
        ...(a.title !== undefined ? { title: a.title } : {}),
        ...(a.examples ? {} : { examples: false as const }),
        command: shellCommand(['patch-atlas', 'report', ...args]),
        onNote: (n) => io.err(`note: ${n}`),
      });
      const out = a.out ?? join('reports', data.title.replace(/[^\w.-]+/g, '_').replace(/^_+|_+$/g, '') || 'report');
      const files = await writeReport(data, out, { png: a.png });
      io.out(files.html);
    },
  };
}
