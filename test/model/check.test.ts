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
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor, writeTinyGraphModel } from '../helpers/tiny-models.js';

/** `models check`: every name and size a descriptor gives, checked against its model before any work. */
const root = mkdtempSync(join(tmpdir(), 'pa-check-'));
const env = { ...readEnv({}), modelsDir: root, cacheDir: join(root, 'cache') };
let good: string;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(32), join(root, 'tiny_layers'));
  good = writeTinyDescriptor(join(root, 'desc'), { format: 'layers', size: 32, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' });
  writeTinyGraphModel(join(root, 'tiny_graph'), 8);
  graph = writeTinyDescriptor(join(root, 'gdesc'), { format: 'graph', size: 8, logits: 'logits', defaultLayer: 'relu1' });
});

let graph: string;

/** A descriptor with some keys replaced. */
function edited(from: string, name: string, edit: (d: Record<string, unknown>) => Record<string, unknown>): string {
  const d = JSON.parse(readFileSync(from, 'utf8')) as Record<string, unknown>;
  const path = join(root, 'desc', `${name}.json`);
  writeFileSync(path, JSON.stringify(edit(d)));
  return path;
}

/** The one line Classifier.load (and so `models check`) refuses a descriptor with. */
async function refused(desc: string): Promise<Error> {
  const e = await Classifier.load({ model: desc, env, backend: 'wasm' }).then(
    (c) => (c.dispose(), new Error('accepted')),
    (err: unknown) => err as Error,
  );
  expect(isPatchAtlasError(e) && e.code, e.message).toBe('BAD_DESCRIPTOR');
  expect(e.message).not.toContain('\n');
  expect(e.message.length).toBeLessThan(400);
  return e;
}

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

  it('says where gradients run: onnxruntime backward graphs under auto, else the engine and why', async () => {
    const auto = await Classifier.load({ model: good, env });
    const wasm = await Classifier.load({ model: good, env, backend: 'wasm' });
    try {
      expect(checkModel(auto).gradients).toEqual({ engine: 'onnxruntime' });
      expect(checkModel(wasm).gradients).toEqual({ engine: 'wasm', why: '--backend wasm' });
      expect(auto.noNativeGradient).toBeUndefined();
    } finally {
      auto.dispose();
      wasm.dispose();
    }
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

describe('descriptor mistakes found at load, each in one line with the fix', () => {
  it('a logits layer that does not exist: the closest names, and `models info` on the file', async () => {
    const e = await refused(edited(good, 'logits', (d) => ({ ...d, output: { kind: 'softmax', logits: 'conv_pred' } })));
    expect(e.message).toMatch(/"output\.logits" "conv_pred" is not a layer of the model/);
    expect((e as { hint?: string }).hint).toMatch(/^closest: conv_preds.*models info .*logits\.json/);
  });

  it('a format that is not what model.json holds, either way, without dumping the topology', async () => {
    expect((await refused(edited(good, 'as-graph', (d) => ({ ...d, format: 'graph' })))).message).toMatch(/"format" is "graph" but .*tiny_layers\/model\.json holds a tfjs layers model/);
    const e = await refused(edited(graph, 'as-layers', (d) => ({ ...d, format: 'layers' })));
    expect(e.message).toMatch(/"format" is "layers" but .*tiny_graph\/model\.json holds a tfjs graph model/);
    expect((e as { hint?: string }).hint).toBe('set "format": "graph"');
  });

  it('a graph input that does not exist, and a label count that does not fit the output', async () => {
    const e = await refused(edited(graph, 'node', (d) => ({ ...d, input: { ...(d.input as object), node: 'inputs' } })));
    expect(e.message).toMatch(/"input\.node" "inputs" is not an input of the graph/);
    expect((e as { hint?: string }).hint).toBe('its inputs: input');
    expect((await refused(edited(good, 'offset', (d) => ({ ...d, labels: { set: 'labels.json', offset: 1 } })))).message).toMatch(/outputs 5 values but its label set "labels\.json" with offset 1 describes 6/);
  });

  it('says how collect will attribute, and notes a logits name resolved by the final-Softmax rule', async () => {
    const c = await Classifier.load({ model: edited(graph, 'zoo-logits', (d) => ({ ...d, output: { kind: 'softmax', logits: 'logit' } })), env, backend: 'wasm' });
    const r = checkModel(c);
    expect(r.attribution).toEqual({ method: 'jvp' });
    expect(r.logits.tensor).toBe('logits');
    expect(r.notes).toEqual(['"output.logits" "logit" is not in the model: the input of its final Softmax, "logits", is used']);
    c.dispose();
    writeTinyGraphModel(join(root, 'tiny_selu'), 8, undefined, 'Selu');
    const s = await Classifier.load({ model: edited(graph, 'selu', (d) => ({ ...d, weights: { localName: 'tiny_selu' } })), env, backend: 'wasm' });
    expect(checkModel(s).attribution).toEqual({ method: 'reverse', why: 'node relu1 (Selu): no ONNX rule' });
    s.dispose();
  });
});

describeReal('the built-in descriptors', () => {
  it.each(listDescriptors())('%s passes its own check', async (name) => {
    const c = await Classifier.load({ model: name, download: false, backend: 'wasm' });
    expect(checkModel(c).labels.classes).toBe(1000);
    c.dispose();
  });
});
