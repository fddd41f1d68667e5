import { LabelSet } from '../../model/labels.js';
import { buildReportData, writeReport } from '../../recipes/report.js';
import { shellCommand } from '../../util/shell.js';
import type { Stage } from '../stage.js';

/** The self-contained HTML report of the atlas (with icons), the patch evaluation and the clean accuracy. */
export function reportStage(atlasFrom: string, withScreen = false): Stage {
  return {
    name: 'report',
    deps: ['accuracy', atlasFrom, 'evaluate', ...(withScreen ? ['screen'] : [])],
    settings: (ctx) => ({ title: ctx.opts.title ?? null, png: ctx.opts.png }),
    budget: () => 'report: report.html with the atlas, bridge cells, patch flip rates against the controls, and accuracy',
    async run(ctx) {
      const atlas = ctx.abs(ctx.outputs(atlasFrom).files.atlas!);
      const evaluation = ctx.abs(ctx.outputs('evaluate').files.results!);
      const accuracy = ctx.abs(ctx.outputs('accuracy').files.json!);
      const patches = (ctx.outputs('evaluate').inputs ?? []).map((p) => ctx.abs(p));
      const title = ctx.opts.title ?? `${LabelSet.display(ctx.source)} → ${LabelSet.display(ctx.target)} (${ctx.descriptor.name})`;
      const screen = withScreen ? ctx.abs(ctx.outputs('screen').files.screen!) : undefined;
      const command = ['patch-atlas', 'report', '--atlas', atlas, '--evaluation', evaluation, '--accuracy', accuracy, ...(screen ? ['--screen', screen] : []), ...(patches.length ? ['--patches', ...patches] : []), '--title', title, '--out', ctx.stageDir, ...(ctx.opts.png ? [] : ['--no-png'])];
      const data = await buildReportData({ atlas, evaluation, accuracy, ...(screen ? { screen } : {}), patches, title, command: shellCommand(command), onNote: ctx.note });
      const files = await writeReport(data, ctx.stageDir, { png: ctx.opts.png });
      return { files: { html: ctx.rel(files.html), json: ctx.rel(files.json) }, facts: { charts: files.charts.length }, summary: ctx.rel(files.html) };
    },
  };
}
