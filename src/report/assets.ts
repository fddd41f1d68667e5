/** Files the report inlines: its template and page script (kept in src/report/, found from src/ or dist/) and chart.js. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { packageRoot } from '../util/paths.js';

export function reportAsset(name: 'template.hbs' | 'client.js'): string {
  return readFileSync(join(packageRoot(), 'src', 'report', name), 'utf8');
}

/** chart.js's UMD build; its package only exports the module builds, so it is found beside them. */
export function chartJsSource(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.js'), 'utf8');
}
