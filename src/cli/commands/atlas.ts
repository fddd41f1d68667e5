import type { Argv, CommandModule } from 'yargs';
import { atlasRequest, buildAtlas } from '../../recipes/atlas.js';
import { parsePair } from '../../recipes/pair.js';
import type { CliIO } from '../io.js';
import { progressBar } from '../options.js';

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
      const classes = a.pair !== undefined ? parsePair(a.pair) : a.class !== undefined ? [a.class] : [];
      const req = atlasRequest(a.run, classes, { grid: a.grid, minDensity: a.minDensity, topN: a.topN, neighbors: a.neighbors, minDist: a.minDist, subsample: a.subsample, seed: a.seed }, {
        layout: a.layout,
        ...(a.out ? { out: a.out } : {}),
        onNote: (n) => !a.json && io.err(`note: ${n}`),
      });
      // Progress for the long parts of a large atlas: the k-NN search's rounds and UMAP's epochs (lines without a TTY).
      const knn = progressBar(io, 'k-NN', !a.json, 'round');
      const epochs = progressBar(io, 'UMAP', !a.json, 'epoch');
      req.umap = { ...req.umap, onKnnStep: knn.update, onEpoch: epochs.update };
      const { path, atlas } = await buildAtlas(req);
      knn.done();
      epochs.done();
      const bridges = atlas.bridges;
      if (a.json) return io.out(JSON.stringify({ atlas: path, kind: atlas.kind, points: atlas.points, cells: atlas.cells.length, bridges: bridges.slice(0, 5) }, null, 2));
      io.out(`${path}: ${atlas.kind} atlas of ${atlas.layer}, ${atlas.points} points, ${atlas.cells.length} cells`);
      if (atlas.kind !== 'pair') return;
      const num = (v: number | null, digits = 3) => (v === null ? 'n/a' : v.toFixed(digits));
      io.out(`\ntop bridge cells (${atlas.classes[0]!.name} -> ${atlas.classes[1]!.name}):`);
      for (const b of bridges.slice(0, 5)) {
        const cell = atlas.cells[b.cell]!;
        io.out(`${String(b.rank).padStart(2)}. cell (${cell.i},${cell.j})  score ${num(b.score)}  ${cell.count} points: ${b.reason}`);
        io.out(`    attributes to: ${cell.topClasses.slice(0, 3).map((t) => `${t.name} ${num(t.value, 2)}`).join(', ')}`);
        io.out(`    from images: ${cell.images.slice(0, 3).map((im) => `${im.path.split('/').pop()} (${im.count})`).join(', ')}`);
      }
    },
  };
}
