import { listPatchFiles } from '../data/patches.js';
import { PatchAtlasError } from '../errors.js';
import { readAtlas } from '../formats/atlas.js';
import { sidecarOf } from '../formats/patch.js';
import { LabelSet, type ClassRef } from '../model/labels.js';

/**
 * The class pair (source A → target B), resolved once through the model's labels and then carried in
 * the files: atlas.json names A and B, every patch sidecar names them too. So a command that is given
 * an atlas or patches need not be told the classes again.
 */
export interface ClassPair {
  /** Absent: universal (every image not of the target counts). */
  source?: ClassRef;
  target: ClassRef;
}

/** Where a pair came from, for the one line a face prints. */
export type PairOrigin = 'flags' | 'atlas' | 'sidecars';

export interface PairRequest {
  source?: string;
  target?: string;
  /** atlas.json (or its folder): its classes are A and B. */
  atlas?: string;
  /** Patch files or folders: their sidecars' source and target. */
  patches?: readonly string[];
  /** Drop the source the atlas or sidecars give (measure universal success). */
  universal?: boolean;
}

/** "A:B" → ["A", "B"], or one line naming the flag. */
export function parsePair(v: string, flag = '--pair'): [string, string] {
  const parts = v.split(':').map((s) => s.trim());
  if (parts.length !== 2 || parts.some((s) => !s)) throw new PatchAtlasError('BAD_FLAG', `${flag} "${v}" must be two classes separated by a colon`, 'e.g. --pair "grey whale:great white shark"');
  return parts as [string, string];
}

/** Two names → the pair, through the model's labels; the same class twice is refused. */
export function resolvePair(labels: LabelSet, source: string, target: string, flag = '--pair'): Required<ClassPair> {
  const a = labels.resolve(source, `source class (${flag} A:B)`);
  const b = labels.resolve(target, `target class (${flag} A:B)`);
  if (a.wnid === b.wnid) throw new PatchAtlasError('BAD_FLAG', `${flag} names "${LabelSet.display(a)}" twice`, 'give two different classes, e.g. --pair "grey whale:great white shark"');
  return { source: a, target: b };
}

/**
 * The pair for an evaluation. With --target, the flags decide (no --source: universal), as always;
 * without it, the atlas's classes, else the pair the patches' sidecars agree on (--source still
 * overrides A, --universal drops it).
 */
export async function pairFor(labels: LabelSet, req: PairRequest): Promise<ClassPair & { origin: PairOrigin }> {
  let files: { source?: string; target: string; origin: PairOrigin } | undefined;
  if (req.target === undefined) {
    if (req.atlas) {
      const a = readAtlas(req.atlas, { label: '--atlas' });
      if (a.kind !== 'pair') throw new PatchAtlasError('BAD_FLAG', `--atlas ${req.atlas} is a ${a.kind} atlas, not a pair atlas`, 'give --target (and --source)');
      files = { source: a.classes[0]!.wnid, target: a.classes[1]!.wnid, origin: 'atlas' };
    } else if (req.patches?.length) files = await sidecarPair(req.patches);
    if (!files) throw new PatchAtlasError('BAD_FLAG', 'no target class: give --target, or --atlas, or patches whose sidecars name it', 'e.g. --target "great white shark"');
  }
  const target = labels.resolve(req.target ?? files!.target, 'target class');
  const sourceName = req.universal ? undefined : (req.source ?? files?.source);
  const source = sourceName !== undefined ? labels.resolve(sourceName, 'source class') : undefined;
  if (source && source.wnid === target.wnid) throw new PatchAtlasError('BAD_FLAG', `--source and --target are both "${LabelSet.display(target)}"`, 'pick two different classes');
  return { ...(source ? { source } : {}), target, origin: files?.origin ?? 'flags' };
}

/** The pair the patches' sidecars agree on (patches without a sidecar do not vote); undefined if none has one. */
async function sidecarPair(paths: readonly string[]): Promise<{ source?: string; target: string; origin: 'sidecars' } | undefined> {
  const seen = new Map<string, { source?: string; target: string; label: string; file: string }>();
  for (const f of await listPatchFiles(paths)) {
    const sc = await sidecarOf(f);
    if (!sc) continue;
    const key = `${sc.source?.wnid ?? ''}:${sc.target.wnid}`;
    if (!seen.has(key)) seen.set(key, { ...(sc.source ? { source: sc.source.wnid } : {}), target: sc.target.wnid, label: `${sc.source?.name ?? 'any'} → ${sc.target.name}`, file: f });
  }
  if (seen.size > 1) {
    const list = [...seen.values()].map((p) => `${p.label} (${p.file})`).join(', ');
    throw new PatchAtlasError('BAD_FLAG', `the patches' sidecars name different class pairs: ${list}`, 'evaluate them separately, or give --source and --target');
  }
  const only = [...seen.values()][0];
  return only ? { ...(only.source ? { source: only.source } : {}), target: only.target, origin: 'sidecars' } : undefined;
}
