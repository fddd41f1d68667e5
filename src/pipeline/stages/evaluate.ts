import type { ImageItem } from '../../data/dataset.js';
import { splitItems } from '../../data/split.js';
import type { Proportion } from '../../evaluate/metrics.js';
import { LabelSet } from '../../model/labels.js';
import { EVALUATE_PARAMS, eligibleImages, evaluate, type EvaluateParams } from '../../recipes/evaluate.js';
import { MIN_EVAL_IMAGES, MIN_TARGETED_IMAGES } from '../options.js';
import type { PipelineContext, Stage } from '../stage.js';

/** The noise control's side: the evaluate recipe's default (recorded in the key as before). */
const NOISE_PX = EVALUATE_PARAMS.noisePx.default;

/**
 * Which held-out images the evaluation uses: targeted (source-class images only) when there are
 * enough of them, else universal (every image not of the target class); then a class-stratified
 * subsample of --eval-images. Deterministic: it depends only on the image list and the seed.
 */
export function evaluationPlan(ctx: PipelineContext, patchMakers: readonly string[]): EvaluationPlan {
  const test = ctx.split.test;
  const where = 'the held-out half';
  const ofSource = test.some((i) => i.label?.wnid === ctx.source.wnid) ? eligibleImages(test, { source: ctx.source, target: ctx.target, where }) : [];
  const want = ctx.opts.evalMode;
  const mode = want === 'auto' ? (ofSource.length >= MIN_TARGETED_IMAGES ? 'targeted' : 'universal') : want;
  const pool = mode === 'targeted' ? ofSource : eligibleImages(test, { target: ctx.target, where });
  // Planned patches: icons: --icons; patch: an EOT patch per cell and one from noise. A maker may deliver fewer.
  const planned: Record<string, number> = { icons: ctx.opts.icons, patch: ctx.opts.eotCells + 1 };
  const patches = patchMakers.reduce((a, m) => a + (planned[m] ?? ctx.opts.icons), 0) + ctx.photoPatches.length + 1;
  const placements = ctx.opts.sizes.length * ctx.opts.placements.length;
  const perImage = 1 + patches * placements;
  const n = ctx.opts.evalImages;
  const count = n === 'all' ? pool.length : n === 'auto' ? Math.max(MIN_EVAL_IMAGES, Math.floor(ctx.opts.evalPasses / perImage)) : n;
  const items = count >= pool.length ? pool : splitItems(pool, { testFraction: count / pool.length, seed: ctx.opts.seed }).test;
  return { mode, candidates: pool.length, items, patches, placements, passes: items.length * perImage };
}

export interface EvaluationPlan {
  mode: 'targeted' | 'universal';
  /** Held-out images eligible (source-class images, or every image not of the target). */
  candidates: number;
  items: ImageItem[];
  /** Planned patch count (atlas patches, photo patches, the noise control) and placements per patch. */
  patches: number;
  placements: number;
  /** Forward passes at most: images × (1 + patches × placements). */
  passes: number;
}

/** The stages whose patches are pasted: every patch-making stage before evaluate, in order. */
export function evaluateStage(patchMakers: readonly string[]): Stage {
  return {
    name: 'evaluate',
    deps: patchMakers,
    settings: (ctx) => {
      const plan = evaluationPlan(ctx, patchMakers);
      return {
        mode: plan.mode,
        source: plan.mode === 'targeted' ? ctx.source.wnid : null,
        target: ctx.target.wnid,
        split: { testFraction: ctx.opts.testFraction, seed: ctx.opts.seed, half: 'test' },
        // The images themselves (not the budget that chose them) are what the result depends on.
        images: plan.items.length,
        sizes: ctx.opts.sizes,
        placements: ctx.opts.placements,
        circular: false,
        noise: { side: NOISE_PX, seed: ctx.opts.seed },
        photos: ctx.photoPatches.map((p) => ({ name: p.name, sha256: p.sha256 })),
      };
    },
    budget: (ctx) => {
      const plan = evaluationPlan(ctx, patchMakers);
      const whom = plan.mode === 'targeted' ? `${LabelSet.display(ctx.source)} images` : `images not of ${LabelSet.display(ctx.target)} (universal)`;
      const chosen = ctx.opts.evalImages === 'auto' ? ` (--eval-images auto: ${ctx.opts.evalPasses.toLocaleString('en-US')} passes)` : '';
      return `evaluate: up to ${plan.patches} patches (${ctx.photoPatches.length} photo, 1 noise) × ${plan.placements} placements (sizes ${ctx.opts.sizes.join(',')} × ${ctx.opts.placements.join(',')}) on ${plan.items.length} of ${plan.candidates} held-out ${whom}: ≤${plan.passes.toLocaleString('en-US')} forward passes${chosen}`;
    },
    async run(ctx) {
      const plan = evaluationPlan(ctx, patchMakers);
      const made = patchMakers.flatMap((s) => (ctx.outputs(s).patches ?? []).map((p) => ctx.abs(p)));
      const files = [...made, ...ctx.photoPatches.map((p) => p.path)];
      const c = await ctx.classifier();
      const source = plan.mode === 'targeted' ? ctx.source : undefined;
      const bar = ctx.progress();
      const r = await evaluate({
        classifier: c,
        images: plan.items,
        patches: files,
        ...(source ? { source } : {}),
        target: ctx.target,
        params: { sizes: ctx.opts.sizes, positions: ctx.opts.placements as EvaluateParams['positions'], noisePx: NOISE_PX, noiseSeed: ctx.opts.seed, batchSize: ctx.opts.batchSize },
        out: ctx.stageDir,
        split: { file: null, testFraction: ctx.opts.testFraction, seed: ctx.opts.seed, candidates: plan.candidates },
        onProgress: (done, total) => bar.update(done, total),
      });
      bar.done();
      const out = r.files;
      const placements = r.placements;
      const headline = (p: (typeof r.results)[number]): Proportion => (source ? p.metrics.dynamic.targeted : p.metrics.dynamic.universal);
      const rate = (p: (typeof r.results)[number]) => (headline(p).n ? headline(p).p : -1);
      const best = r.results.filter((p) => p.patch !== r.noise).sort((a, b) => rate(b) - rate(a) || a.patch.localeCompare(b.patch))[0];
      const noise = r.results.find((p) => p.patch === r.noise);
      const pct = (p: Proportion | undefined) => (p && p.n ? `${(p.p * 100).toFixed(1)} % (${p.k}/${p.n})` : 'n/a');
      return {
        files: { results: ctx.rel(out.json), csv: ctx.rel(out.csv) },
        // Every patch file pasted, in loadPatches order: the report reads the same list so names match.
        inputs: files.map((f) => ctx.rel(f)),
        facts: { mode: plan.mode, images: r.images.length, skipped: r.skipped.length, patches: r.results.length },
        summary: `${plan.mode}, ${r.images.length} images, ${r.results.length} patches × ${placements.length} placements; best dynamic ${best ? `${best.patch} ${pct(headline(best))}` : 'n/a'}, noise ${pct(noise && headline(noise))}`,
      };
    },
  };
}
