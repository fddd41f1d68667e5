import type { PositionCount } from '../attribution/positions.js';
import type { BackendName } from '../engine/index.js';
import { CORNERS } from '../patch/placement.js';

/**
 * What `patch-atlas run` does, end to end. Every field that changes a result is part of some stage's
 * cache key (see stages/); batch sizes and progress are not.
 */
export interface RunOptions {
  /** Image folder or CSV manifest. */
  images: string;
  /** Source and target class, as the user named them ("grey whale", n02066245, ...). */
  pair: [string, string];
  /** The pipeline folder: pipeline.json and one sub-folder per stage. */
  out: string;
  model: string;
  weights?: string;
  backend: BackendName;
  /** Download weights when none are found locally. */
  download: boolean;
  /** Photo patches (files or folders) evaluated beside the atlas patches, as controls. */
  patches: string[];
  /** Collect layer (name or alias); default the model's atlas layer. */
  layer?: string;
  /** Positions per image collected. */
  positions: PositionCount;
  /** One seed for the split, position sampling, UMAP, icons and the noise patch. */
  seed: number;
  /** Share of the images held out for evaluation (the rest feed collect → atlas → icons). */
  testFraction: number;
  grid: number;
  minDensity: number;
  /** Icons (and icon patches) for this many top bridge cells. */
  icons: number;
  iconSize: number;
  iconSteps: number;
  iconPower: number;
  /** EOT optimisation steps per patch (0: no `patch` stage) and how many top bridge cells get one (plus one from noise). */
  eotSteps: number;
  eotCells: number;
  /** Patch sides as fractions of the image side, and where they are pasted. */
  sizes: number[];
  placements: string[];
  /** Held-out images evaluated (a class-stratified subsample), all of them, or auto: as many as `evalPasses` forward passes allow. */
  evalImages: number | 'all' | 'auto';
  /** Forward passes `evalImages: 'auto'` sizes the evaluation to: images × (1 + patches × placements). */
  evalPasses: number;
  /** targeted: only source-class images count; universal: every image not of the target; auto: targeted when the held-out half has enough source images. */
  evalMode: 'auto' | 'targeted' | 'universal';
  batchSize: number;
  /** Also write the report's charts as PNG. */
  png: boolean;
  title?: string;
}

/**
 * Defaults sized for the 1000 ImageNet sample images on 2 cores (wasm backend, one core for the model):
 * minutes per stage, not hours. Measured with the machine busy (load 4 on 2 cores; see the budget `run` prints):
 * - accuracy: 1000 images ≈ 90 s;
 * - collect: 500 training images × 4 positions (2000 points) ≈ 60 s; at 1 position per image a
 *   100-image trial kept 62 points in 2 cells for the pair, too few for an atlas;
 * - atlas: a pair grid of 8 keeps ~45 cells of ≥5 points from 2000 points (≈ 7 s);
 * - icons: 6 cells × 128 steps at 80 px ≈ 30 s (80 px: pasted at 45–90 px, so little upsampling);
 * - evaluate costs images × (1 + patches × placements) forward passes, ~19/s on an idle machine (the
 *   wasm engine uses one core) and ~12/s with the machine busy: every held-out image with 7 patches ×
 *   12 placements (3 sizes × 4 corners) would be ~42,000 passes, 40–60 min, so by default the held-out
 *   half is subsampled (class-stratified) to what 5,000 passes allow (4–7 min): 58 images for 6 icon
 *   patches + noise, 24 when the demo adds the article's 10 baseball photos, never fewer than 16.
 */
export const RUN_DEFAULTS = {
  positions: 4 as PositionCount,
  seed: 0,
  testFraction: 0.5,
  grid: 8,
  minDensity: 5,
  icons: 6,
  iconSize: 80,
  iconSteps: 128,
  iconPower: 2,
  eotSteps: 0,
  eotCells: 1,
  sizes: [0.2, 0.3, 0.4],
  placements: [...CORNERS] as string[],
  evalImages: 'auto' as RunOptions['evalImages'],
  evalPasses: 5000,
  evalMode: 'auto' as RunOptions['evalMode'],
  batchSize: 16,
  png: true,
} as const;

/** Source-class images the held-out half needs for `auto` to choose a targeted evaluation. */
export const MIN_TARGETED_IMAGES = 10;
/** The fewest images `evalImages: 'auto'` picks (when the held-out half has them), whatever the pass budget. */
export const MIN_EVAL_IMAGES = 16;
