import type { Argv } from 'yargs';
import { BACKENDS, type BackendName } from '../engine/index.js';
import { Classifier } from '../model/classifier.js';
import { DEFAULT_MODEL } from '../model/descriptor.js';
import type { CliIO } from './io.js';

export interface ModelArgs {
  model: string;
  weights?: string;
  backend: BackendName;
  offline: boolean;
}

/** The flags every command that loads a model shares. */
export function withModel<T>(y: Argv<T>) {
  return y
    .option('model', { alias: 'm', type: 'string', default: DEFAULT_MODEL, describe: 'built-in model name (see `models list`) or a descriptor .json' })
    .option('weights', { type: 'string', describe: 'folder holding model.json (overrides PATCH_ATLAS_MODELS and the cache)' })
    .option('backend', { type: 'string', choices: BACKENDS as BackendName[], default: 'wasm' as BackendName, describe: 'tensor engine; tensorflow needs @tensorflow/tfjs-node installed' })
    .option('offline', { type: 'boolean', default: false, describe: 'never download weights' });
}

export async function loadFromArgs(a: ModelArgs, io: CliIO, quiet = false): Promise<Classifier> {
  let announced = false;
  return Classifier.load({
    model: a.model,
    backend: a.backend,
    download: !a.offline,
    ...(a.weights ? { weights: a.weights } : {}),
    onDownload: (done, total, file) => {
      if (quiet) return;
      if (!announced) io.err(`downloading weights for ${a.model} (${total} files) ...`);
      announced = true;
      if (file && io.errStream.isTTY) io.errStream.write(`\r  ${done + 1}/${total} ${file}\x1b[K`);
      if (!file && io.errStream.isTTY) io.errStream.write('\n');
    },
  });
}
