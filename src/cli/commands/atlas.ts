import type { Argv, CommandModule } from 'yargs';
import { buildAtlas } from '../../atlas/from-run.js';
import { PatchAtlasError } from '../../errors.js';
import type { CliIO } from '../io.js';
import { wholeNumber } from '../validate.js';

interface AtlasArgs {
  run: string;
  class?: string;
  pair?: string;
  grid?: number;
  minDensity?: number;
  topN?: number;
  layout: 'pair-axis' | 'umap';
  neighbors?: number;
  minDist?: number;
  seed: number;
  subsample?: number;
  out?: string;
  json: boolean;
}

export function atlasCommand(io: CliIO): CommandModule {
  return {
    command: 'atlas',
    describe: 'activation atlas of a collect run: whole layer, one class, or two classes with their bridge cells',
    builder: (y: Argv) =>
      y
        .option('run', { type: 'string', demandOption: true, describe: 'run folder written by `collect`' })
        .option('class', { type: 'string', describe: 'one class (name or WordNet id): a class activation atlas' })
        .option('pair', { type: 'string', describe: '"A:B": compare two classes and rank the cells that push A toward B' })
        .option('grid', { type: 'number', describe: 'grid size G (G×G cells; default 10, 20 for a whole layer)' })
        .option('min-density', { type: 'number', describe: 'points a cell needs to be kept (default 5)' })
        .option('top-n', { type: 'number', describe: 'points kept per class by attribution (default 2000 for a pair, 3000 for a class)' })
        .option('layout', { choices: ['pair-axis', 'umap'] as const, default: 'pair-axis' as const, describe: 'pair atlas layout: attribution axis × 1-D UMAP (article), or 2-D UMAP' })
        .option('neighbors', { type: 'number', describe: 'UMAP n_neighbors (default 20; 50 for a whole layer)' })
        .option('min-dist', { type: 'number', describe: 'UMAP min_dist (default 0.01; 0.05 for a whole layer)' })
        .option('seed', { type: 'number', default: 0, describe: 'UMAP seed' })
        .option('subsample', { type: 'number', describe: 'whole-layer atlas: lay out at most this many points (default 20000)' })
        .option('out', { type: 'string', describe: 'output folder (default: RUN/atlas-<classes>/)' })
        .option('json', { type: 'boolean', default: false, describe: 'print a JSON summary' })
        .conflicts('class', 'pair')
        .example('$0 atlas --run runs/pw11 --pair "grey whale:great white shark"', 'bridge cells between the two classes')
        .example('$0 atlas --run runs/pw11 --class n02066245 --grid 8', 'class activation atlas'),
    handler: async (raw) => {
      const a = raw as unknown as AtlasArgs;
      let classes: string[] = [];
      if (a.pair !== undefined) {
        classes = a.pair.split(':').map((s) => s.trim());
        if (classes.length !== 2 || classes.some((s) => !s)) throw new PatchAtlasError('BAD_FLAG', `--pair "${a.pair}" must be two classes separated by a colon`, 'e.g. --pair "grey whale:great white shark"');
      } else if (a.class !== undefined) classes = [a.class];
      wholeNumber('grid', a.grid);
      wholeNumber('min-density', a.minDensity);
      wholeNumber('top-n', a.topN);
      wholeNumber('neighbors', a.neighbors);
      wholeNumber('subsample', a.subsample);
      if (a.minDist !== undefined && !(a.minDist >= 0 && a.minDist <= 1)) throw new PatchAtlasError('BAD_FLAG', `--min-dist ${a.minDist} must be between 0 and 1`);
      const umap = { seed: a.seed, ...(a.neighbors ? { nNeighbors: a.neighbors } : {}), ...(a.minDist !== undefined ? { minDist: a.minDist } : {}) };
      const { path, atlas } = await buildAtlas({
        run: a.run,
        classes,
        layout: a.layout,
        umap,
        ...(a.grid ? { grid: a.grid } : {}),
        ...(a.minDensity ? { minDensity: a.minDensity } : {}),
        ...(a.topN ? { topN: a.topN } : {}),
        ...(a.subsample ? { subsample: a.subsample } : {}),
        ...(a.out ? { out: a.out } : {}),
        onNote: (n) => !a.json && io.err(`note: ${n}`),
      });
      const bridges = atlas.bridges as Array<{ cell: number; rank: number; score: number; reason: string }>;
      if (a.json) return io.out(JSON.stringify({ atlas: path, kind: atlas.kind, points: atlas.points, cells: atlas.cells.length, bridges: bridges.slice(0, 5) }, null, 2));
      io.out(`${path}: ${atlas.kind} atlas of ${atlas.layer}, ${atlas.points} points, ${atlas.cells.length} cells`);
      if (atlas.kind !== 'pair') return;
      io.out(`\ntop bridge cells (${atlas.classes[0]!.name} -> ${atlas.classes[1]!.name}):`);
      for (const b of bridges.slice(0, 5)) {
        const cell = atlas.cells[b.cell]!;
        io.out(`${String(b.rank).padStart(2)}. cell (${cell.i},${cell.j})  score ${b.score.toFixed(3)}  ${cell.count} points: ${b.reason}`);
        io.out(`    attributes to: ${cell.topClasses.slice(0, 3).map((t) => `${t.name} ${t.value.toFixed(2)}`).join(', ')}`);
        io.out(`    from images: ${cell.images.slice(0, 3).map((im) => `${im.path.split('/').pop()} (${im.count})`).join(', ')}`);
      }
    },
  };
}
