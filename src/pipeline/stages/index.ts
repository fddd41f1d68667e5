import type { RunOptions } from '../options.js';
import type { Stage } from '../stage.js';
import { accuracyStage } from './accuracy.js';
import { atlasStage } from './atlas.js';
import { collectStage } from './collect.js';
import { evaluateStage } from './evaluate.js';
import { iconsStage } from './icons.js';
import { patchStage } from './patch.js';
import { reportStage } from './report.js';
import { screenStage } from './screen.js';

/**
 * The stages of `run`, in order. Patch-making stages (`makesPatches`) sit between the atlas and the
 * evaluation, which pastes every patch they made (its key includes theirs); another one is one more
 * entry in `makers`, with `deps: ['atlas']` or `['icons']`. EOT patches (`patch`) cost minutes per
 * hundred steps on 2 cores, so they are opt-in: `--eot-steps N`.
 */
export function pipelineStages(opts: Pick<RunOptions, 'eotSteps' | 'screenPairs'> = { eotSteps: 0, screenPairs: 0 }): Stage[] {
  const makers: Stage[] = [iconsStage, ...(opts.eotSteps > 0 ? [patchStage] : [])];
  const screen = opts.screenPairs > 0 ? [screenStage] : [];
  return [accuracyStage, collectStage, atlasStage, ...makers, evaluateStage(makers.map((s) => s.name)), ...screen, reportStage(iconsStage.name, screen.length > 0)];
}
