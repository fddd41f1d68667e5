import { MAX_GRID } from '../recipes/atlas.js';
import { ATLAS_DEFAULTS } from '../atlas/atlases.js';
import type { PositionCount } from '../attribution/positions.js';
import type { EngineChoice } from '../engine/index.js';
import { CORNERS } from '../patch/placement.js';
import { EVALUATE_PARAMS } from '../recipes/evaluate.js';
import { ICON_PARAMS } from '../recipes/icons.js';
import { defaults, sizeHint, sizeList, wholeNumber, type ParamSpec } from '../recipes/params.js';
import { MAKE_PATCH_PARAMS } from '../recipes/patches.js';

/**
 * What `patch-atlas run` does, end to end. Every field that changes a result is part of some stage's
 * cache key (see stages/); batch sizes and progress are not.
 */
export interface RunOptions extends RunBudget {
  /** Image folder or CSV manifest. */
  images: string;
  /** Source and target class, as the user named them ("grey whale", n02066245, ...). */
  pair: [string, string];
  /** The pipeline folder: pipeline.json and one sub-folder per stage. */
  out: string;
  model: string;
  weights?: string;
  backend: EngineChoice;
  /** Download weights when none are found locally. */
  download: boolean;
  /** Photo patches (files or folders) evaluated beside the atlas patches, as controls. */
  patches: string[];
  /** Collect layer (name or alias); default the model's atlas layer. */
  layer?: string;
  title?: string;
}

/** The settings `run` exposes as flags, each a recipe's parameter (names as the recipes use them). */
export interface RunBudget {
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
  iconPx: number;
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
  /** Icons for the top `icons` bridge cells only, or for every atlas cell (the top `icons` are still the patches). */
  iconCells: 'bridges' | 'all';
  /** Auto class pairs of the screen (each with its sensitivity twin); 0 leaves the screen out. */
  screenPairs: number;
  /** Also write the report's charts as PNG. */
  png: boolean;
}

/**
 * The recipes' own defaults, except where `run` is sized for the 1000 ImageNet sample images on 2 cores
 * (minutes per stage, not hours); each such budget says why. Measured with the machine busy (load 4):
 * - collect: 500 training images × 4 positions (2000 points) ≈ 60 s; at collect's own 1 position per
 *   image a 100-image trial kept 62 points in 2 cells for the pair, too few for an atlas;
 * - atlas: a pair grid of 8 (not 10) keeps ~45 cells of ≥5 points from 2000 points (≈ 7 s);
 * - icons: 6 cells × 128 steps at 80 px ≈ 30 s (80 px: pasted at 45–90 px, so little upsampling);
 * - evaluate costs images × (1 + patches × placements) forward passes; every held-out image with 7
 *   patches × 12 placements (3 sizes × 4 corners; the centre is left out) would be ~42,000 passes,
 *   40–60 min, so by default the held-out half is subsampled (class-stratified) to what 5,000 passes
 *   allow (4–7 min), never fewer than 16 images.
 */
export const RUN_PARAMS: ParamSpec<RunBudget> = {
  positions: { default: 4, check: (v) => (v === 'all' || (Number.isInteger(v) && v >= 1) ? undefined : 'must be a whole number >= 1 or "all"') },
  seed: { default: 0, check: wholeNumber(0) },
  testFraction: MAKE_PATCH_PARAMS.testFraction,
  grid: { default: 8, check: wholeNumber(1, MAX_GRID) },
  minDensity: { default: ATLAS_DEFAULTS.pair.minDensity, check: wholeNumber(1) },
  icons: { default: 6, check: wholeNumber(1) },
  iconPx: { default: 80, check: ICON_PARAMS.iconPx.check! },
  iconSteps: { default: 128, check: ICON_PARAMS.steps.check! },
  iconPower: ICON_PARAMS.cossimPower,
  eotSteps: { default: 0, check: MAKE_PATCH_PARAMS.steps.check! },
  eotCells: { default: 1, check: wholeNumber(1) },
  sizes: { default: [...EVALUATE_PARAMS.sizes.default], check: sizeList, hint: sizeHint },
  placements: { default: [...CORNERS] },
  evalImages: { default: 'auto', check: (v) => (v === 'all' || v === 'auto' || (Number.isInteger(v) && v >= 1) ? undefined : 'must be a whole number >= 1, "all" or "auto"') },
  evalPasses: { default: 5000, check: wholeNumber(1) },
  evalMode: { default: 'auto' },
  batchSize: EVALUATE_PARAMS.batchSize,
  iconCells: { default: 'bridges' },
  // Opt-in for `run` (minutes per dozen pairs on 2 cores); `demo` turns it on (pipeline/demo.ts).
  screenPairs: { default: 0, check: wholeNumber(0) },
  png: { default: true },
};

export const RUN_DEFAULTS: RunBudget = defaults(RUN_PARAMS);

/** Source-class images the held-out half needs for `auto` to choose a targeted evaluation. */
export const MIN_TARGETED_IMAGES = 10;
/** The fewest images `evalImages: 'auto'` picks (when the held-out half has them), whatever the pass budget. */
export const MIN_EVAL_IMAGES = 16;

