import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Env } from '../config.js';
import { PatchAtlasError } from '../errors.js';
import { parseJsonText } from '../formats/file.js';
import { parseModelJson } from '../formats/model-json.js';
import { downloadBounds, fetchBounded } from '../util/download.js';
import { writeFileAtomic } from '../util/atomic.js';
import { decodeModel } from '../engine/index.js';
import type { ModelDescriptor } from './descriptor.js';

export type WeightsSource = 'flag' | 'models-dir' | 'cache' | 'download';
export interface ResolvedWeights {
  /** Path of the model file: model.json (tfjs) or the .onnx file. */
  file: string;
  source: WeightsSource;
}

export interface ResolveOptions {
  /** --weights: a folder holding the model file, or the file itself. */
  weights?: string;
  env: Env;
  /** Download from the descriptor's URL when nothing local is found (default true). */
  download?: boolean;
  onProgress?: (done: number, total: number, file: string) => void;
}

/** The model file's name inside its folder: model.json for tfjs models, the descriptor's (default model.onnx) for ONNX. */
export function modelFileName(d: ModelDescriptor): string {
  return d.format === 'onnx' ? d.weights.file ?? 'model.onnx' : 'model.json';
}

/** The record of the hashes a download arrived with (trust on first use), kept beside the files in the cache. */
export const HASH_RECORD = 'sha256.json';

/** The files a model consists of: the .onnx file, or model.json and its shards. */
export async function weightFiles(d: ModelDescriptor, file: string): Promise<string[]> {
  return d.format === 'onnx' ? [file] : [file, ...(await readArtifactsManifest(file))];
}

/** sha256 (hex) of each file, by file name. */
export async function hashFiles(files: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of files) out[basename(f)] = createHash('sha256').update(await readFile(f)).digest('hex');
  return out;
}

/**
 * Check the weights against the descriptor's pins, else against the hashes recorded when they were downloaded.
 * A changed file (same size or not) is WEIGHTS_INVALID naming it; nothing to check against passes.
 */
export async function verifyWeights(d: ModelDescriptor, w: ResolvedWeights): Promise<void> {
  const pins = d.weights.sha256;
  const recordPath = join(dirname(w.file), HASH_RECORD);
  const record = !pins && w.source === 'cache' && existsSync(recordPath) ? readHashRecord(recordPath) : undefined;
  const want = pins ?? record;
  if (!want) return;
  const got = await hashFiles(await weightFiles(d, w.file));
  for (const [name, hash] of Object.entries(got)) {
    const expected = want[name];
    if (expected === hash) continue;
    const why = expected === undefined ? 'is not among the pinned files' : `has sha256 ${hash.slice(0, 12)}…, ${pins ? `${d.path} pins` : 'it was downloaded with'} ${expected.slice(0, 12)}…`;
    throw new PatchAtlasError('WEIGHTS_INVALID', `weight file ${join(dirname(w.file), name)} ${why}`, pins ? `restore the file, or re-pin with \`patch-atlas models pin ${d.path}\` if you changed it on purpose` : `delete ${dirname(w.file)} and run \`patch-atlas models pull ${d.name}\``);
  }
}

/**
 * `models pin`: write the sha256 of the model's current weight files into its descriptor (a user's descriptor file;
 * built-in descriptors are pinned only with hashes checked against the official bytes, so they are refused here).
 */
export async function pinWeights(d: ModelDescriptor, opts: Pick<ResolveOptions, 'weights' | 'env'>, builtIn: boolean): Promise<Record<string, string>> {
  const w = findLocalWeights(d, opts);
  if (!w) throw new PatchAtlasError('WEIGHTS_MISSING', `no local weights for model "${d.name}" to pin`, `run \`patch-atlas models pull ${d.name}\` first, or pass --weights DIR`);
  const hashes = await hashFiles(await weightFiles(d, w.file));
  if (builtIn)
    throw new PatchAtlasError('BAD_FLAG', `model "${d.name}" is built in: its descriptor is pinned only with hashes verified against the official files`, `copy ${d.path} to your own descriptor and pin that (hashes of ${w.file}: ${Object.entries(hashes).map(([f, h]) => `${f} ${h.slice(0, 12)}…`).join(', ')})`);
  const raw = parseJsonText(readFileSync(d.path, 'utf8'), (where) => new PatchAtlasError('BAD_DESCRIPTOR', `model descriptor ${d.path} is not valid JSON: ${where}`)) as { weights?: Record<string, unknown> };
  raw.weights = { ...(raw.weights ?? {}), sha256: hashes };
  await writeFileAtomic(d.path, `${JSON.stringify(raw, null, 2)}\n`);
  return hashes;
}

function readHashRecord(path: string): Record<string, string> | undefined {
  const raw = parseJsonText(readFileSync(path, 'utf8'), () => new PatchAtlasError('WEIGHTS_INVALID', `${path} is not valid JSON`, 'delete the model folder and pull it again'));
  if (!raw || typeof raw !== 'object' || Object.values(raw).some((h) => typeof h !== 'string')) throw new PatchAtlasError('WEIGHTS_INVALID', `${path} is not a hash record`, 'delete the model folder and pull it again');
  return raw as Record<string, string>;
}

export function cacheFolder(d: ModelDescriptor, env: Env): string {
  return join(env.cacheDir, 'models', d.weights.localName);
}

/** Find weights without touching the network: --weights, then PATCH_ATLAS_MODELS, then the cache. */
export function findLocalWeights(d: ModelDescriptor, opts: Pick<ResolveOptions, 'weights' | 'env'>): ResolvedWeights | undefined {
  const name = modelFileName(d);
  if (d.weights.path && !opts.weights) return { file: d.weights.path, source: 'flag' };
  if (opts.weights) {
    const p = resolve(opts.weights);
    const file = existsSync(p) && statSync(p).isDirectory() ? join(p, name) : p;
    if (!existsSync(file)) throw new PatchAtlasError('WEIGHTS_MISSING', `--weights ${opts.weights}: no ${name} there`, `point --weights at the model's folder or its ${name}`);
    return { file, source: 'flag' };
  }
  if (opts.env.modelsDir) {
    const file = join(opts.env.modelsDir, d.weights.localName, name);
    if (existsSync(file)) return { file, source: 'models-dir' };
  }
  const cached = join(cacheFolder(d, opts.env), name);
  // The model file is renamed into place last, so its presence means the download completed.
  if (existsSync(cached)) return { file: cached, source: 'cache' };
  return undefined;
}

export async function resolveWeights(d: ModelDescriptor, opts: ResolveOptions): Promise<ResolvedWeights> {
  const local = findLocalWeights(d, opts);
  if (local) {
    await verifyWeights(d, local);
    return local;
  }
  if (opts.download === false || !d.weights.url) {
    throw new PatchAtlasError(
      'WEIGHTS_MISSING',
      `no weights for model "${d.name}" (looked in ${opts.env.modelsDir ? `${join(opts.env.modelsDir, d.weights.localName)} and ` : ''}${cacheFolder(d, opts.env)})`,
      d.weights.url ? `run \`patch-atlas models pull ${d.name}\`` : 'pass --weights DIR',
    );
  }
  return { file: await pullWeights(d, opts), source: 'download' };
}

/**
 * Download model.json and its shards into the cache. Shards go to a temporary folder that is
 * renamed into place only when every file arrived with the size the manifest implies.
 */
export async function pullWeights(d: ModelDescriptor, opts: ResolveOptions): Promise<string> {
  if (!d.weights.url) throw new PatchAtlasError('DOWNLOAD_FAILED', `model "${d.name}" has no weights URL in ${d.path}`);
  const dest = cacheFolder(d, opts.env);
  const tmp = `${dest}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    if (d.format === 'onnx') {
      // One file; checked to decode as ONNX before it is moved into place.
      opts.onProgress?.(0, 1, modelFileName(d));
      const bytes = await fetchBytes(d.weights.url, d.weights.mirrors);
      checkOnnx(bytes, d.weights.url);
      await writeFile(join(tmp, modelFileName(d)), bytes);
      await recordHashes(d, [join(tmp, modelFileName(d))], tmp);
      opts.onProgress?.(1, 1, '');
      await rm(dest, { recursive: true, force: true });
      await mkdir(dirname(dest), { recursive: true });
      await rename(tmp, dest);
      return join(dest, modelFileName(d));
    }
    const jsonBytes = await fetchBytes(d.weights.url, d.weights.mirrors);
    // Checked before any shard is fetched: every shard path is a plain file name, so nothing lands outside tmp.
    const json = parseModelJson(new TextDecoder().decode(jsonBytes), d.weights.url, 'DOWNLOAD_FAILED', `check weights.url in ${d.path}`);
    const files = json.weightsManifest.flatMap((g) => g.paths);
    const base = d.weights.url.slice(0, d.weights.url.lastIndexOf('/') + 1);
    let done = 0;
    for (const f of files) {
      opts.onProgress?.(done, files.length, f);
      // Shards come from model.json's own folder: a name such as "https:other.host" would leave it.
      const url = new URL(f, base);
      if (url.origin !== new URL(base).origin || !url.href.startsWith(base))
        throw new PatchAtlasError('DOWNLOAD_FAILED', `${d.weights.url} names shard "${f}", which is not in its own folder`, `check weights.url in ${d.path}`);
      await writeFile(join(tmp, f), await fetchBytes(url.href, d.weights.mirrors));
      done++;
    }
    opts.onProgress?.(done, files.length, '');
    await writeFile(join(tmp, 'model.json'), jsonBytes);
    await readArtifacts(join(tmp, 'model.json')); // validates shard sizes before the rename
    await recordHashes(d, [join(tmp, 'model.json'), ...files.map((f) => join(tmp, f))], tmp);
    await rm(dest, { recursive: true, force: true });
    await mkdir(dirname(dest), { recursive: true });
    await rename(tmp, dest);
    return join(dest, 'model.json');
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Before a download is taken as complete: its files must match the descriptor's pins (if any); their hashes are
 * recorded beside them, so every later load can tell a changed file (trust on first use).
 */
async function recordHashes(d: ModelDescriptor, files: string[], dir: string): Promise<void> {
  const got = await hashFiles(files);
  const pins = d.weights.sha256;
  if (pins) {
    for (const [name, hash] of Object.entries(got)) {
      if (pins[name] !== hash)
        throw new PatchAtlasError('DOWNLOAD_FAILED', `downloaded ${name} has sha256 ${hash.slice(0, 12)}…, but ${d.path} pins ${pins[name] ? `${pins[name]!.slice(0, 12)}…` : 'no hash for it'}`, 'the server sent other bytes than the pinned ones: nothing was kept');
    }
  }
  await writeFile(join(dir, HASH_RECORD), `${JSON.stringify(got, null, 2)}\n`);
}

function checkOnnx(bytes: Uint8Array, url: string): void {
  try {
    if (!decodeModel(bytes).graph) throw new Error('no graph');
  } catch (e) {
    throw new PatchAtlasError('DOWNLOAD_FAILED', `${url} is not an ONNX model (${(e as Error).message})`, 'check weights.url in the descriptor');
  }
}

/** One file of a model download, bounded in time and size (2 GiB), redirected only to the descriptor's mirrors. */
function fetchBytes(url: string, mirrors?: readonly string[]): Promise<Uint8Array> {
  return fetchBounded(url, { ...downloadBounds(process.env), ...(mirrors ? { mirrors } : {}) });
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function specBytes(w: tf.io.WeightsManifestEntry): number {
  const n = w.shape.reduce((a, b) => a * b, 1);
  if (w.quantization) return n * (DTYPE_BYTES[w.quantization.dtype] ?? 4);
  return n * (DTYPE_BYTES[w.dtype] ?? 4);
}

/** The shard files a model.json names, as paths beside it. */
export async function readArtifactsManifest(modelJsonPath: string): Promise<string[]> {
  const json = parseModelJson(await readFile(modelJsonPath, 'utf8'), modelJsonPath, 'WEIGHTS_INVALID');
  return json.weightsManifest.flatMap((g) => g.paths.map((p) => join(dirname(modelJsonPath), p)));
}

/** Read model.json + shards from disk into tfjs ModelArtifacts, checking the shard sizes. */
export async function readArtifacts(modelJsonPath: string): Promise<tf.io.ModelArtifacts> {
  const json = parseModelJson(await readFile(modelJsonPath, 'utf8'), modelJsonPath, 'WEIGHTS_INVALID');
  const dir = dirname(modelJsonPath);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    let groupBytes = 0;
    for (const p of group.paths) {
      const file = join(dir, p);
      if (!existsSync(file)) throw new PatchAtlasError('WEIGHTS_INVALID', `weights shard ${file} is missing`, 'delete the folder and run `patch-atlas models pull` again');
      const buf = await readFile(file);
      chunks.push(buf);
      groupBytes += buf.byteLength;
    }
    // The schema checks shapes and names; dtype strings are tfjs's to judge when it builds the model.
    const weights = group.weights as tf.io.WeightsManifestEntry[];
    const want = weights.reduce((a, w) => a + specBytes(w), 0);
    if (groupBytes !== want) {
      throw new PatchAtlasError('WEIGHTS_INVALID', `weights shards ${group.paths.join(', ')} in ${dir} hold ${groupBytes} bytes, manifest says ${want}`, 'the download is incomplete or corrupt: delete it and pull again');
    }
    specs.push(...weights);
  }
  const total = chunks.reduce((a, c) => a + c.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    data.set(c, off);
    off += c.byteLength;
  }
  return {
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    ...(json.format ? { format: json.format } : {}),
    ...(json.signature ? { signature: json.signature as object } : {}),
    ...(json.userDefinedMetadata ? { userDefinedMetadata: json.userDefinedMetadata as { [key: string]: {} } } : {}),
    weightSpecs: specs,
    weightData: data.buffer,
  };
}

/** A tfjs IOHandler that reads from disk (the browser build of tfjs has no file:// loader). */
export function fileHandler(modelJsonPath: string): tf.io.IOHandler {
  return { load: () => readArtifacts(modelJsonPath) };
}
