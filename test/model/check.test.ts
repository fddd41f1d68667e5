import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { isPatchAtlasError } from '../../src/errors.js';
import { checkModel } from '../../src/model/check.js';
import { Classifier } from '../../src/model/classifier.js';
import { listDescriptors } from '../../src/model/descriptor.js';
import { describeReal } from '../helpers/real.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';

/** `models check`: every name and size a descriptor gives, checked against its model before any work. */
const root = mkdtempSync(join(tmpdir(), 'pa-check-'));
const env = { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') };
let good: string;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), join(root, 'tiny_layers'));
  good = writeTinyDescriptor(join(root, 'desc'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
});

/** The tiny descriptor with `layers` replaced. */
function variant(name: string, layers: unknown): string {
  const d = JSON.parse(readFileSync(good, 'utf8')) as Record<string, unknown>;
  const path = join(root, 'desc', `${name}.json`);
  writeFileSync(path, JSON.stringify({ ...d, layers }));
  return path;
}

async function problem(desc: string): Promise<Error> {
  const c = await Classifier.load({ model: desc, env, backend: 'wasm' });
  try {
    checkModel(c);
  } catch (e) {
    expect(isPatchAtlasError(e) && e.code).toBe('BAD_DESCRIPTOR');
    return e as Error;
  } finally {
    c.dispose();
  }
  throw new Error('accepted');
}

describe('checkModel', () => {
  it('resolves a good descriptor: logits width, labels, a spatial atlas layer, every alias', async () => {
    const c = await Classifier.load({ model: good, env, backend: 'wasm' });
    const r = checkModel(c);
    expect(r.defaultLayer).toMatchObject({ name: 'conv_pw_1_relu', tensor: 'conv_pw_1_relu' });
    expect(r.defaultLayer.shape).toHaveLength(3);
    expect(r.logits).toEqual({ tensor: 'conv_preds', width: c.labels.outputs });
    expect(r.aliases).toEqual([{ alias: 'mid', tensor: 'conv_pw_1_relu', shape: r.defaultLayer.shape }]);
    c.dispose();
  });

  it('names the key of an alias to no layer, with the closest names', async () => {
    const e = await problem(variant('bad-alias', { default: 'conv_pw_1_relu', aliases: { mid: 'conv_pw_1_rel' } }));
    expect(e.message).toMatch(/"layers\.aliases\.mid" names "conv_pw_1_rel", which is not a layer of the model; closest: conv_pw_1_relu/);
  });

  it('refuses a placeholder default layer, and one that is not spatial', async () => {
    expect((await problem(variant('todo', { default: 'TODO', aliases: {} }))).message).toMatch(/"layers\.default" "TODO" is neither a layer of the model nor an alias/);
    expect((await problem(variant('flat', { default: 'pool', aliases: {} }))).message).toMatch(/"layers\.default" "pool" has output shape \[16\]; an atlas layer must be spatial/);
  });
});

describeReal('the built-in descriptors', () => {
  it.each(listDescriptors())('%s passes its own check', async (name) => {
    const c = await Classifier.load({ model: name, download: false, backend: 'wasm' });
    expect(checkModel(c).labels.classes).toBe(1000);
    c.dispose();
  });
});
