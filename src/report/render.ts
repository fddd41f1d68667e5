/**
 * ReportData → one self-contained report.html (CSS, pictures as data URIs, chart.js and the page
 * script inline; nothing fetched), written atomically beside report-data.json and the PNG charts.
 *
 * Escaping: user-controlled text (file names, class labels, patch names, commands) reaches the page
 * only through Handlebars `{{ }}` (HTML-escaped, always in quoted attributes or text), or inside the
 * JSON block, where `<`, `>`, `&`, U+2028 and U+2029 are \u-escaped so no `</script>` or `<!--` can
 * end or alter the script element. Triple-stash `{{{ }}}` is used only for the three blobs built
 * here (scriptJson / inlineScript), which the template test checks.
 */
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { chartJsSource, reportAsset } from './assets.js';
import { chartSpecs } from './chart-specs.js';
import { writeChartPngs } from './charts-png.js';
import type { ReportData } from './data.js';
import { reportView } from './view.js';

/** JSON for a `<script type="application/json">` element: parses to `value`, cannot close the element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Trusted script text (chart.js, client.js) made safe to inline: no `</script` or `<!--` can occur. */
export function inlineScript(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

let template: Handlebars.TemplateDelegate | undefined;

export function renderReport(data: ReportData): string {
  // An isolated instance: helpers or partials registered elsewhere cannot change the escaping.
  template ??= Handlebars.create().compile(reportAsset('template.hbs'));
  const charts = data.patches ? chartSpecs(data.patches) : [];
  return template({
    ...reportView(data),
    dataJson: scriptJson({ format: data.format, title: data.title, charts }),
    chartJs: inlineScript(chartJsSource()),
    clientJs: inlineScript(reportAsset('client.js')),
  });
}

export interface WrittenReport {
  html: string;
  json: string;
  charts: string[];
}

/** Writes `<dir>/report.html`, `<dir>/report-data.json` and, unless `png: false`, `<dir>/charts/*.png`. */
export async function writeReport(data: ReportData, dir: string, opts: { png?: boolean } = {}): Promise<WrittenReport> {
  const html = join(dir, 'report.html');
  const json = join(dir, 'report-data.json');
  await writeJsonAtomic(json, data);
  const charts = opts.png === false || !data.patches ? [] : await writeChartPngs(data, join(dir, 'charts'));
  await writeFileAtomic(html, renderReport(data));
  return { html, json, charts };
}
