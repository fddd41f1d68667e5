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
import Handlebars from 'handlebars';
import type { ReportAssets, ReportData } from '../formats/report.js';
import { reportCharts } from './chart-specs.js';
import { reportView } from './view.js';

/** JSON for a `<script type="application/json">` element: parses to `value`, cannot close the element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Trusted script text (chart.js, client.js) made safe to inline: no `</script` or `<!--` can occur. */
export function inlineScript(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

const templates = new Map<string, Handlebars.TemplateDelegate>();

/** report.html's text for `data`, with the template, page script and chart.js given (formats/report.ts reads them). */
export function renderReport(data: ReportData, assets: ReportAssets): string {
  // An isolated instance: helpers or partials registered elsewhere cannot change the escaping.
  let template = templates.get(assets.template);
  if (!template) templates.set(assets.template, (template = Handlebars.create().compile(assets.template)));
  const charts = reportCharts(data);
  return template({
    ...reportView(data),
    dataJson: scriptJson({ format: data.format, title: data.title, charts }),
    chartJs: inlineScript(assets.chartJs),
    clientJs: inlineScript(assets.clientJs),
  });
}
