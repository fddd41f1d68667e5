import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFormat, parseJson } from '../file.js';
import { MANIFEST_FILE } from './layout.js';
import { packageVersion } from '../../util/paths.js';
import { producer } from '../producer.js';
import { RUN_FORMAT, runManifestFormat, type RunIdentity, type RunManifest } from './types.js';

/** Keys compared to resume or merge, in the order differences are reported. */
export const IDENTITY_KEYS: readonly (keyof RunIdentity)[] = [
  'model',
  'layer',
  'seed',
  'positions',
  'labelSet',
  'classes',
  'channels',
  'layerShape',
  'imageListHash',
];

export function identityOf(m: RunIdentity): RunIdentity {
  return {
    model: m.model,
    layer: m.layer,
    seed: m.seed,
    positions: m.positions,
    labelSet: m.labelSet,
    classes: m.classes,
    channels: m.channels,
    layerShape: m.layerShape,
    imageListHash: m.imageListHash,
  };
}

/** The fields every manifest of a run with this identity starts with (format, who wrote it, the identity). */
export function manifestHeader(identity: RunIdentity) {
  return { format: RUN_FORMAT, tool: 'patch-atlas' as const, version: packageVersion(), producer: producer(identity.model), ...identityOf(identity) };
}

export interface IdentityDiff {
  key: keyof RunIdentity;
  a: string;
  b: string;
}

/** The first key on which two identities differ, with both values rendered short enough for one line. */
export function identityDiff(a: RunIdentity, b: RunIdentity): IdentityDiff | null {
  for (const key of IDENTITY_KEYS) {
    const va = a[key];
    const vb = b[key];
    if (JSON.stringify(va) === JSON.stringify(vb)) continue;
    if (key === 'classes' && Array.isArray(va) && Array.isArray(vb)) {
      // 1000 WordNet ids do not fit a line: name the first differing column instead.
      const ca = va as string[];
      const cb = vb as string[];
      let i = 0;
      while (i < ca.length && i < cb.length && ca[i] === cb[i]) i++;
      return { key, a: `${ca.length} classes, column ${i} = ${ca[i] ?? '(none)'}`, b: `${cb.length} classes, column ${i} = ${cb[i] ?? '(none)'}` };
    }
    return { key, a: short(va), b: short(vb) };
  }
  return null;
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

/** The manifest in `dir`, or null if there is none. Refuses unreadable manifests and other formats. */
export async function readManifest(dir: string): Promise<RunManifest | null> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const hint = 'the run folder is damaged; delete it and collect again';
  return parseFormat(runManifestFormat, parseJson({ code: 'BAD_RUN', hint }, text, path), path);
}
