import { LabelSet } from '../../model/labels.js';
import { atlasRequest, buildAtlas } from '../../recipes/atlas.js';
import type { Stage } from '../stage.js';

/** The two-class atlas of the collected points and its bridge ranking (source → target). */
export const atlasStage: Stage = {
  name: 'atlas',
  deps: ['collect'],
  settings: (ctx) => ({ pair: [ctx.source.wnid, ctx.target.wnid], grid: ctx.opts.grid, minDensity: ctx.opts.minDensity, layout: 'pair-axis', umapSeed: ctx.opts.seed }),
  budget: (ctx) => `atlas: pair atlas, grid ${ctx.opts.grid}×${ctx.opts.grid}, cells of ≥${ctx.opts.minDensity} points`,
  async run(ctx) {
    const run = ctx.abs(ctx.outputs('collect').files.run!);
    const req = atlasRequest(run, [ctx.source.wnid, ctx.target.wnid], { grid: ctx.opts.grid, minDensity: ctx.opts.minDensity, seed: ctx.opts.seed }, { layout: 'pair-axis', out: ctx.stageDir, onNote: ctx.note });
    const { path, atlas } = await buildAtlas(req);
    const top = atlas.bridges[0];
    const cell = top ? atlas.cells[top.cell] : undefined;
    return {
      files: { atlas: ctx.rel(path) },
      facts: { points: atlas.points, cells: atlas.cells.length },
      summary: `${atlas.points} points in ${atlas.cells.length} cells${cell ? `; top bridge cell ${LabelSet.display(ctx.source)} → ${LabelSet.display(ctx.target)}: (${cell.i},${cell.j}), score ${top!.score?.toFixed(3) ?? 'n/a'}, attributing most to ${cell.topClasses.slice(0, 2).map((t) => t.name).join(', ')}` : ''}`,
    };
  },
};
