import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/engine/backend.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config.js';
import { loadDescriptor } from '../../src/model/descriptor.js';
import { cacheFolder, findLocalWeights, readArtifacts, resolveWeights } from '../../src/model/weights.js';
import { saveLayersModel, tinyLayersModel, writeTinyDescriptor } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-weights-'));
const served = join(root, 'served');
let server: Server;
let base: string;
const hits: string[] = [];
let failShard = false;

beforeAll(async () => {
  await initBackend('wasm');
  await saveLayersModel(tinyLayersModel(16), served);
  server = createServer((req, res) => {
    hits.push(req.url!);
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

function setup(name: string) {
  const dir = join(root, name);
  const desc = loadDescriptor(writeTinyDescriptor(dir, { format: 'layers', size: 16, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu', url: `${base}model.json` }));
  const env = { ...readEnv({}), cacheDir: join(dir, 'cache') };
  return { desc, env };
}

describe('weights', () => {
  it('downloads model.json and shards into the cache on first use, then reuses the cache', async () => {
    const { desc, env } = setup('ok');
    expect(findLocalWeights(desc, { env })).toBeUndefined();
    const got = await resolveWeights(desc, { env });
    expect(got.source).toBe('download');
    expect(got.modelJson).toBe(join(cacheFolder(desc, env), 'model.json'));
    const art = await readArtifacts(got.modelJson);
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

  it('says how to get weights when offline and nothing is local', async () => {
    const { desc, env } = setup('offline');
    await expect(resolveWeights(desc, { env, download: false })).rejects.toThrow(/no weights for model "tiny_layers".*patch-atlas models pull tiny_layers/);
  });
});
