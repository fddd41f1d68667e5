import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { initBackend } from '../../src/engine/backend.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { isPatchAtlasError } from '../../src/errors.js';
import { loadDescriptor, validateDescriptor } from '../../src/model/descriptor.js';
import { cacheFolder, findLocalWeights, HASH_RECORD, pinWeights, readArtifacts, resolveWeights } from '../../src/model/weights.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-weights-'));
const served = join(root, 'served');
let server: Server;
let base: string;
const hits: string[] = [];
let failShard = false;
/** model.json texts served at /hostile/NAME/model.json; any other /hostile/ file is served as 64 bytes. */
const hostile = new Map<string, string>();

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(16), served);
  server = createServer((req, res) => {
    hits.push(req.url!);
    const evil = /^\/hostile\/([^/]+)\/model\.json$/.exec(req.url!);
    if (evil) return res.end(hostile.get(evil[1]!) ?? '');
    if (req.url!.startsWith('/hostile/')) return res.end(Buffer.alloc(64, 1));
    const file = join(served, req.url!.replace(/^\/m\//, ''));
    if (!existsSync(file) || (failShard && req.url!.includes('shard'))) {
      res.statusCode = 404;
      return res.end();
    }
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/m/`;
});
afterAll(() => server.close());

/** Every file and folder under `dir`, relative, sorted. */
function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

function setup(name: string, url = `${base}model.json`) {
  const dir = join(root, name);
  const desc = loadDescriptor(writeTinyDescriptor(dir, { format: 'layers', size: 16, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu', url }));
  const env = { ...readEnv({}), cacheDir: join(dir, 'cache') };
  return { desc, env };
}

describe('weights', () => {
  it('downloads model.json and shards into the cache on first use, then reuses the cache', async () => {
    const { desc, env } = setup('ok');
    expect(findLocalWeights(desc, { env })).toBeUndefined();
    const got = await resolveWeights(desc, { env });
    expect(got.source).toBe('download');
    expect(got.file).toBe(join(cacheFolder(desc, env), 'model.json'));
    const art = await readArtifacts(got.file);
    expect(art.weightSpecs!.length).toBeGreaterThan(0);
    const n = hits.length;
    const again = await resolveWeights(desc, { env });
    expect(again.source).toBe('cache');
    expect(hits.length).toBe(n);
  });

  it('leaves no cache entry when a shard fails, so a partial download is never taken for complete', async () => {
    const { desc, env } = setup('fail');
    failShard = true;
    try {
      await expect(resolveWeights(desc, { env })).rejects.toThrow(/HTTP 404/);
    } finally {
      failShard = false;
    }
    expect(findLocalWeights(desc, { env })).toBeUndefined();
    expect(existsSync(join(env.cacheDir, 'models')) ? readdirSync(join(env.cacheDir, 'models')) : []).toEqual([]);
  });

  it('refuses truncated shards with a message that says what to do', async () => {
    const dir = join(root, 'trunc');
    await saveLayersModel(tinyLayersModel(16), dir);
    const shard = join(dir, 'group1-shard1of1');
    writeFileSync(shard, readFileSync(shard).subarray(0, 100));
    await expect(readArtifacts(join(dir, 'model.json'))).rejects.toThrow(/hold 100 bytes, manifest says \d+.*pull again/);
  });

  it('refuses a downloaded model.json whose shard paths leave the download folder, before fetching or writing anything', async () => {
    const manifest = JSON.parse(readFileSync(join(served, 'model.json'), 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
    for (const [name, bad, k] of [['up', '../x', 1], ['sub', 'a/b', 0], ['dots', '..', 0], ['up2', '../../x', 0]] as const) {
      const paths = k === 1 ? ['ok.bin', bad] : [bad];
      hostile.set(name, JSON.stringify({ ...manifest, weightsManifest: [{ ...manifest.weightsManifest[0], paths }] }));
      const url = `${base.replace(/\/m\/$/, '/hostile/')}${name}/model.json`;
      const { desc, env } = setup(`hostile-${name}`, url);
      const dir = join(root, `hostile-${name}`);
      const before = listTree(dir);
      const n = hits.length;
      const err = await resolveWeights(desc, { env }).then(() => undefined, (e: unknown) => e);
      expect(isPatchAtlasError(err) && err.code).toBe('DOWNLOAD_FAILED');
      const msg = (err as Error).message;
      expect(msg.split('\n')).toHaveLength(1);
      expect(msg).toContain(`${url} is not a tfjs model.json: weightsManifest[0].paths[${k}] ${JSON.stringify(bad)} is not a plain file name`);
      // Only model.json was fetched and nothing was written: the partial folder is gone, no stray "x" anywhere.
      expect(hits.slice(n)).toEqual([`/hostile/${name}/model.json`]);
      expect(listTree(dir)).toEqual([...before, 'cache', join('cache', 'models')].sort());
      expect(existsSync(join(env.cacheDir, 'models', 'x')) || existsSync(join(env.cacheDir, 'x')) || existsSync(join(root, 'x'))).toBe(false);
      expect(findLocalWeights(desc, { env })).toBeUndefined();
    }
  });

  it('fetches shards only from model.json\'s own folder: a name with a scheme is refused before any fetch', async () => {
    const manifest = JSON.parse(readFileSync(join(served, 'model.json'), 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
    hostile.set('scheme', JSON.stringify({ ...manifest, weightsManifest: [{ ...manifest.weightsManifest[0], paths: ['https:elsewhere.example'] }] }));
    const url = `${base.replace(/\/m\/$/, '/hostile/')}scheme/model.json`;
    const { desc, env } = setup('hostile-scheme', url);
    const n = hits.length;
    await expect(resolveWeights(desc, { env })).rejects.toThrow(/names shard "https:elsewhere\.example", which is not in its own folder/);
    expect(hits.slice(n)).toEqual(['/hostile/scheme/model.json']);
    expect(findLocalWeights(desc, { env })).toBeUndefined();
  });

  it('refuses a descriptor whose localName is not a plain folder name (it names a folder a download replaces)', () => {
    for (const bad of ['../../victim', 'a/b', '..', '.', 'a\\b']) {
      expect(() => validateDescriptor({ name: 'x', format: 'layers', weights: { localName: bad }, input: { size: [8, 8] }, labels: { set: 'imagenet-1000' }, output: { kind: 'logits' }, layers: { default: 'l' } }, 'x.json')).toThrow(/"weights.localName" must be a plain folder name/);
    }
  });

  it('refuses a local model.json whose shard paths leave its folder, and names bad JSON by line and column', async () => {
    const dir = join(root, 'local-hostile');
    await saveLayersModel(tinyLayersModel(16), join(dir, 'm'));
    writeFileSync(join(dir, 'secret.bin'), Buffer.alloc(8));
    const file = join(dir, 'm', 'model.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
    writeFileSync(file, JSON.stringify({ ...manifest, weightsManifest: [{ ...manifest.weightsManifest[0], paths: ['../secret.bin'] }] }));
    await expect(readArtifacts(file)).rejects.toThrow(`${file} is not a tfjs model.json: weightsManifest[0].paths[0] "../secret.bin" is not a plain file name`);
    writeFileSync(file, '{\n  "modelTopology": {},\n  "weightsManifest": [,]\n}');
    await expect(readArtifacts(file)).rejects.toThrow(/model\.json is not a tfjs model\.json: not valid JSON \(.*line 3, column 23\)$/);
    writeFileSync(file, JSON.stringify({ weightsManifest: [] }));
    await expect(readArtifacts(file)).rejects.toMatchObject({ code: 'WEIGHTS_INVALID', message: `${file} is not a tfjs model.json: modelTopology is missing` });
  });

  it('says how to get weights when offline and nothing is local', async () => {
    const { desc, env } = setup('offline');
    await expect(resolveWeights(desc, { env, download: false })).rejects.toThrow(/no weights for model "tiny_layers".*patch-atlas models pull tiny_layers/);
  });

  it('records the hashes a download arrived with, and refuses a shard changed later even at the same size', async () => {
    const { desc, env } = setup('tofu');
    const got = await resolveWeights(desc, { env });
    const record = JSON.parse(readFileSync(join(dirname(got.file), HASH_RECORD), 'utf8')) as Record<string, string>;
    expect(Object.keys(record).sort()).toEqual(['group1-shard1of1', 'model.json']);
    await expect(resolveWeights(desc, { env })).resolves.toMatchObject({ source: 'cache' });
    const shard = join(dirname(got.file), 'group1-shard1of1');
    const bytes = readFileSync(shard);
    bytes[10] = bytes[10]! ^ 0xff;
    writeFileSync(shard, bytes);
    const err = await resolveWeights(desc, { env }).catch((e: unknown) => e);
    expect(isPatchAtlasError(err) && err.code).toBe('WEIGHTS_INVALID');
    expect((err as Error).message).toMatch(/group1-shard1of1 has sha256 .*, it was downloaded with .*; delete .* and run `patch-atlas models pull/);
  });

  it('takes a download as complete only when it matches the descriptor\'s pins', async () => {
    const { desc, env } = setup('pinned-wrong');
    const wrong = { ...desc, weights: { ...desc.weights, sha256: { 'model.json': '0'.repeat(64), 'group1-shard1of1': '1'.repeat(64) } } };
    const err = await resolveWeights(wrong, { env }).catch((e: unknown) => e);
    expect(isPatchAtlasError(err) && err.code).toBe('DOWNLOAD_FAILED');
    expect((err as Error).message).toMatch(/downloaded (model\.json|group1-shard1of1) has sha256 .*but .* pins/);
    expect(findLocalWeights(wrong, { env })).toBeUndefined();
    expect(existsSync(join(env.cacheDir, 'models')) ? readdirSync(join(env.cacheDir, 'models')) : []).toEqual([]);
  });

  it('`models pin` writes the hashes into a user descriptor, which later loads check; built-ins are refused', async () => {
    const { desc, env } = setup('pin');
    await resolveWeights(desc, { env });
    const hashes = await pinWeights(desc, { env }, false);
    const pinned = loadDescriptor(desc.path);
    expect(pinned.weights.sha256).toEqual(hashes);
    await expect(resolveWeights(pinned, { env })).resolves.toMatchObject({ source: 'cache' });
    const json = join(cacheFolder(pinned, env), 'model.json');
    writeFileSync(json, readFileSync(json, 'utf8').replace('"modelTopology"', ' "modelTopology"'));
    const err = await resolveWeights(pinned, { env }).catch((e: unknown) => e);
    expect(isPatchAtlasError(err) && err.code).toBe('WEIGHTS_INVALID');
    expect((err as Error).message).toMatch(/model\.json has sha256 .* pins/);
    const builtIn = await pinWeights(desc, { env }, true).catch((e: unknown) => e);
    expect(isPatchAtlasError(builtIn) && builtIn.code).toBe('BAD_FLAG');
  });
});

