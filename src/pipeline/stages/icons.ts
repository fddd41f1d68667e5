import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AtlasFile } from '../../atlas/from-run.js';
import { renderAtlasIcons } from '../../featurevis/atlas-icons.js';
import { LabelSet } from '../../model/labels.js';
import { readPatch, writePatch } from '../../patch/sidecar.js';
import type { Stage } from '../stage.js';

/** Icons optimised together; fixed by the icon count so the same settings always give the same icons. */
const batchFor = (icons: number) => Math.min(icons, 8);

/**
 * Feature-visualisation icons of the top bridge cells, rendered into a copy of the atlas (the atlas
 * stage's own file stays as it was written), the atlas picture, and each icon saved as a patch with a
 * sidecar (kind "icon", the cell it came from) for the evaluation and the report.
 */
export const iconsStage: Stage = {
  name: 'icons',
  deps: ['atlas'],
  makesPatches: true,
  settings: (ctx) => ({ cells: ctx.opts.icons, size: ctx.opts.iconSize, steps: ctx.opts.iconSteps, tries: 1, batch: batchFor(ctx.opts.icons), power: ctx.opts.iconPower, seed: ctx.opts.seed }),
  budget: (ctx) => `icons: the top ${ctx.opts.icons} bridge cells, ${ctx.opts.iconSteps} steps at ${ctx.opts.iconSize} px`,
  async run(ctx) {
    const atlasPath = join(ctx.stageDir, 'atlas.json');
    // A resumed stage keeps the icons its copy already records (renderAtlasIcons skips those cells).
    if (!ctx.resuming || !existsSync(atlasPath)) {
      await mkdir(ctx.stageDir, { recursive: true });
      await copyFile(ctx.abs(ctx.outputs('atlas').files.atlas!), atlasPath);
    }
    const c = await ctx.classifier();
    const bar = ctx.progress('icon');
    const r = await renderAtlasIcons(c, {
      atlas: atlasPath,
      cells: ctx.opts.icons,
      size: ctx.opts.iconSize,
      steps: ctx.opts.iconSteps,
      tries: 1,
      batch: batchFor(ctx.opts.icons),
      cossimPower: ctx.opts.iconPower,
      seed: ctx.opts.seed,
      onBatch: (done, total) => bar.update(done, total),
    });
    bar.done();
    const atlas = JSON.parse(await readFile(atlasPath, 'utf8')) as AtlasFile & { cells: Array<AtlasFile['cells'][number] & { icon?: string; iconObjective?: number }> };
    const bridges = atlas.bridges as Array<{ cell: number; rank: number; score: number; reason?: string }>;
    const patches: string[] = [];
    for (const b of bridges.slice(0, ctx.opts.icons)) {
      const cell = atlas.cells[b.cell]!;
      if (!cell.icon) continue;
      const name = `icon-${b.rank}-cell-${cell.i}-${cell.j}`;
      const icon = await readPatch(join(ctx.stageDir, cell.icon));
      const png = join(ctx.stageDir, 'patches', `${name}.png`);
      await writePatch(png, icon, {
        name,
        kind: 'icon',
        model: ctx.descriptor.name,
        source: { wnid: ctx.source.wnid, name: LabelSet.display(ctx.source) },
        target: { wnid: ctx.target.wnid, name: LabelSet.display(ctx.target) },
        cell: { layer: atlas.layer, i: cell.i, j: cell.j, rank: b.rank, score: b.score, count: cell.count, ...(cell.iconObjective !== undefined ? { objective: cell.iconObjective } : {}) },
        init: 'noise',
        seed: ctx.opts.seed,
        settings: { size: ctx.opts.iconSize, steps: ctx.opts.iconSteps, cossimPower: ctx.opts.iconPower },
      });
      patches.push(ctx.rel(png));
    }
    return {
      files: { atlas: ctx.rel(atlasPath), picture: ctx.rel(r.picture) },
      patches,
      facts: { rendered: r.rendered, kept: r.reused },
      summary: `${patches.length} icon patches (${r.rendered} rendered${r.reused ? `, ${r.reused} kept from the interrupted run` : ''}); atlas picture ${ctx.rel(r.picture)}`,
    };
  },
};
