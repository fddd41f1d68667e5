/**
 * One before/after picture per patch, without a model: the image is decoded and the patch pasted
 * exactly as `evaluate` did (same preprocessing, same `pasteRgb`, same grid placement), and the labels
 * are the predictions results.json recorded for that image and placement. So the picture shows what
 * the model was actually given, and the labels are what it actually answered.
 */
import { decodeImage } from '../data/decode.js';
import { loadDescriptor, loadLabels } from '../model/descriptor.js';
import { LabelSet } from '../model/labels.js';
import type { PatchPixels } from '../patch/paste.js';
import { gridPlacements, type Position } from '../patch/placement.js';
import type { PatchExample } from './data.js';
import { parsePlacement, quotedList } from './format.js';
import { rgbUri } from './images.js';
import type { EvaluationFile } from './patches.js';

/**
 * Examples keyed by patch name, for the patches whose pixels are known. The image is the first test
 * image counted in the patch's rate (correct before; for universal runs, not the target before).
 */
export async function patchExamples(ev: EvaluationFile, pixels: Map<string, PatchPixels>, onNote: (n: string) => void): Promise<Map<string, PatchExample>> {
  const out = new Map<string, PatchExample>();
  if (pixels.size === 0) return out;
  let labels: LabelSet;
  let input: { size: [number, number]; resizeShorter: number | null };
  try {
    const d = loadDescriptor(ev.model);
    labels = loadLabels(d);
    input = d.input;
  } catch (e) {
    onNote(`no before/after examples: model ${ev.model} is not known here (${(e as Error).message})`);
    return out;
  }
  const target = labels.tryResolve(ev.target.wnid);
  const name = (outIndex: number | undefined) => {
    const c = outIndex === undefined ? undefined : labels.atOutput(outIndex);
    return c ? LabelSet.display(c) : `output ${outIndex ?? '?'}`;
  };
  // Deferred: pasting pulls in TensorFlow.js, which a report without examples should not load.
  const { pasteRgb } = await import('../patch/paste.js');
  const decoded = new Map<number, Awaited<ReturnType<typeof decodeImage>> | null>();
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
    if (!decoded.has(i)) decoded.set(i, await decodeImage(ev.images[i]!, input).catch(() => null));
    const img = decoded.get(i);
    if (!img) {
      onNote(`no before/after example for '${entry.patch}': cannot read ${ev.images[i]}`);
      continue;
    }
    const after = pasteRgb(img, px, placement);
    out.set(entry.patch, {
      image: ev.images[i]!,
      placement: id,
      before: { src: await rgbUri(img.data, img.width, img.height, { format: 'jpeg' }), label: name(mx.clean.pred[i]) },
      after: { src: await rgbUri(after, img.width, img.height, { format: 'jpeg' }), label: name(mx.patched[j]?.pred[i]) },
    });
  }
  if (skipped.length) onNote(`no before/after example for ${quotedList(skipped)}: no counted image or no grid placement to redraw`);
  return out;
}
