import { ATLAS_FILE, readAtlas } from '../formats/atlas.js';
import { inFolder } from '../formats/file.js';
import { sidecarOf } from '../formats/patch.js';
import { readManifest } from '../formats/run/index.js';
import { listPatchFiles } from '../data/patches.js';
import { recordedModel } from '../model/descriptor.js';

/**
 * The model a result was made with, for commands given no --model: an atlas, a collect run or patch sidecars
 * record the model's name and, for a model of the user's own, its descriptor file (see formats/producer.ts).
 * Undefined where the input records none (the caller then uses the default model).
 */
export type Recorded = { model: string; weights?: string } | undefined;

export function modelOfAtlas(given: string): Recorded {
  const path = inFolder(given, ATLAS_FILE);
  const atlas = readAtlas(path, { label: '--atlas' });
  return recordedModel(atlas.model, atlas.producer.source, `--atlas ${given}`);
}

export async function modelOfRun(dir: string): Promise<Recorded> {
  const m = await readManifest(dir);
  return m ? recordedModel(m.model, m.producer?.source, `--run ${dir}`) : undefined;
}

/** The first patch sidecar's model (patches made by `patch`); photo patches record none. */
export async function modelOfPatches(paths: readonly string[]): Promise<Recorded> {
  for (const file of await listPatchFiles(paths)) {
    const s = await sidecarOf(file);
    if (s) return recordedModel(s.model, s.producer.source, `the patch ${file}`);
  }
  return undefined;
}
