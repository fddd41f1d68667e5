import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ATLAS_FILE } from '../../formats/atlas.js';
import { renderIcons } from '../../recipes/icons.js';
import { saveIconPatches } from '../../recipes/patches.js';
import type { Stage } from '../stage.js';

/** Icons optimised together; fixed by the settings so the same settings always give the same icons. */
const batchFor = (icons: number, cells: 'bridges' | 'all') => (cells === 'all' ? 8 : Math.min(icons, 8));

/**
 * Feature-visualisation icons of the top bridge cells, rendered into a copy of the atlas (the atlas
 * stage's own file stays as it was written), the atlas picture, and each icon saved as a patch with a
 * sidecar (kind "icon", the cell it came from) for the evaluation and the report.
 */
export const iconsStage: Stage = {
  name: 'icons',
  deps: ['atlas'],
  makesPatches: true,
  // `all` is keyed apart; the bridges-only key is the one earlier versions wrote.
  settings: (ctx) => ({ cells: ctx.opts.icons, size: ctx.opts.iconPx, steps: ctx.opts.iconSteps, tries: 1, batch: batchFor(ctx.opts.icons, ctx.opts.iconCells), power: ctx.opts.iconPower, seed: ctx.opts.seed, ...(ctx.opts.iconCells === 'all' ? { atlasCells: 'all' } : {}) }),
  budget: (ctx) => `icons: ${ctx.opts.iconCells === 'all' ? 'every atlas cell' : `the top ${ctx.opts.icons} bridge cells`}, ${ctx.opts.iconSteps} steps at ${ctx.opts.iconPx} px; the top ${ctx.opts.icons} become patches`,
  async run(ctx) {
    const atlasPath = join(ctx.stageDir, ATLAS_FILE);
    // A resumed stage keeps the icons its copy already records (renderIcons skips those cells).
    if (!ctx.resuming || !existsSync(atlasPath)) {
      await mkdir(ctx.stageDir, { recursive: true });
      await copyFile(ctx.abs(ctx.outputs('atlas').files.atlas!), atlasPath);
    }
    const c = await ctx.classifier();
    const bar = ctx.progress('icon');
    const r = await renderIcons(c, atlasPath, { cells: ctx.opts.iconCells === 'all' ? 'all' : ctx.opts.icons, iconPx: ctx.opts.iconPx, steps: ctx.opts.iconSteps, tries: 1, batch: batchFor(ctx.opts.icons, ctx.opts.iconCells), cossimPower: ctx.opts.iconPower, seed: ctx.opts.seed }, { onBatch: bar.update });
    bar.done();
    const patches = await saveIconPatches(c, atlasPath, ctx.opts.icons, join(ctx.stageDir, 'patches'));
    return {
      files: { atlas: ctx.rel(atlasPath), picture: ctx.rel(r.picture) },
      patches: patches.map((p) => ctx.rel(p)),
      facts: { rendered: r.rendered, kept: r.reused },
      summary: `${patches.length} icon patches (${r.rendered} rendered${r.reused ? `, ${r.reused} kept from the interrupted run` : ''}); atlas picture ${ctx.rel(r.picture)}`,
    };
  },
};
