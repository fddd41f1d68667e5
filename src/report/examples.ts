/**
 * One before/after picture per patch, without a model: the image is decoded and the patch pasted
 * exactly as `evaluate` did (same preprocessing, same `pasteRgb`, same grid placement), and the labels
 * are the predictions results.json recorded for that image and placement. So the picture shows what
 * the model was actually given, and the labels are what it actually answered.
 */
import type { Media } from '../data/media.js';
import type { DecodedImage, Preprocess } from '../data/pixels.js';
import type { EvaluationFile } from '../formats/evaluation.js';
import type { PatchExample } from '../formats/report.js';
import { LabelSet } from '../model/labels.js';
import type { PatchPixels } from '../patch/paste.js';
import { gridPlacements, type Position } from '../patch/placement.js';
import { parsePlacement, quotedList } from './format.js';

/**
 * Examples keyed by patch name, for the patches whose pixels are known. The image is the first test
 * image counted in the patch's rate (correct before; for universal runs, not the target before).
 */
export async function patchExamples(ev: EvaluationFile, pixels: Map<string, PatchPixels>, model: { labels: LabelSet; pre: Preprocess }, media: Media, onNote: (n: string) => void): Promise<Map<string, PatchExample>> {
  const out = new Map<string, PatchExample>();
  if (pixels.size === 0) return out;
  const { labels, pre: input } = model;
  const target = labels.tryResolve(ev.target.wnid);
  const name = (outIndex: number | undefined) => {
    const c = outIndex === undefined ? undefined : labels.atOutput(outIndex);
    return c ? LabelSet.display(c) : `output ${outIndex ?? '?'}`;
  };
  // Deferred: pasting pulls in TensorFlow.js, which a report without examples should not load.
  const { pasteRgb } = await import('../patch/paste.js');
  const decoded = new Map<number, DecodedImage | null>();
  const skipped: string[] = [];
  for (const entry of ev.patches) {
    const px = pixels.get(entry.patch);
    const mx = entry.matrix;
    if (!px || !mx) continue;
    const id = ev.source ? entry.metrics.static.placement : entry.metrics.universal.static.placement;
    const j = mx.placements.indexOf(id);
    const parsed = parsePlacement(id);
    const placement = parsed && gridPlacements(input.size, [parsed.size], [parsed.position as Position], { circular: parsed.circular }).find((p) => p.id === id);
    if (j < 0 || !placement) {
      skipped.push(entry.patch);
      continue;
    }
    const counted = (i: number) => (ev.source ? mx.clean.correct[i] === 1 : target ? mx.clean.pred[i] !== target.index : true);
    const i = mx.clean.pred.findIndex((_, k) => counted(k));
    if (i < 0) {
      skipped.push(entry.patch);
      continue;
    }
    if (!decoded.has(i)) decoded.set(i, await media.decode(ev.images[i]!, input));
    const img = decoded.get(i);
    if (!img) {
      onNote(`no before/after example for '${entry.patch}': cannot read ${ev.images[i]}`);
      continue;
    }
    const after = pasteRgb(img, px, placement);
    out.set(entry.patch, {
      image: ev.images[i]!,
      placement: id,
      before: { src: await media.rgb(img.data, img.width, img.height, { format: 'jpeg' }), label: name(mx.clean.pred[i]) },
      after: { src: await media.rgb(after, img.width, img.height, { format: 'jpeg' }), label: name(mx.patched[j]?.pred[i]) },
    });
  }
  if (skipped.length) onNote(`no before/after example for ${quotedList(skipped)}: no counted image or no grid placement to redraw`);
  return out;
}
