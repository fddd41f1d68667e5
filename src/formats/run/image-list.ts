import { createHash } from 'node:crypto';
import { PatchAtlasError } from '../../errors.js';
import type { ImageRecord, ShardSpec } from './types.js';

/**
 * SHA-256 over the ordered (path, label) pairs. Each record is JSON-encoded on its own line so
 * no path or label can be confused with a separator (and null stays distinct from "").
 */
export function hashImageList(records: readonly ImageRecord[]): string {
  const h = createHash('sha256');
  h.update(`patch-atlas-images/1 ${records.length}\n`);
  for (const r of records) h.update(JSON.stringify([r.path, r.label]) + '\n');
  return 'sha256:' + h.digest('hex');
}

/** Global image indices that shard `shard` of `count` images covers (all of them when null). */
export function shardOf(count: number, shard: ShardSpec | null): number[] {
  const out: number[] = [];
  if (!shard) {
    for (let i = 0; i < count; i++) out.push(i);
    return out;
  }
  // Striding (not contiguous blocks) keeps shards balanced even when the list is sorted by class.
  for (let i = shard.index; i < count; i += shard.count) out.push(i);
  return out;
}

export function inShard(image: number, shard: ShardSpec | null): boolean {
  return !shard || image % shard.count === shard.index;
}

export function formatShard(shard: ShardSpec | null): string {
  return shard ? `${shard.index}/${shard.count}` : 'none';
}

/** Parse `--shard i/N` (0 ≤ i < N). */
export function parseShard(text: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new PatchAtlasError('BAD_FLAG', `--shard ${JSON.stringify(text)} is not of the form i/N`, 'e.g. --shard 0/4 for the first of four shards');
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new PatchAtlasError('BAD_FLAG', `--shard ${text}: the shard count must be at least 1`, 'e.g. --shard 0/4');
  if (!Number.isSafeInteger(index) || index >= count) {
    throw new PatchAtlasError('BAD_FLAG', `--shard ${text}: the shard index must be below the count`, `use 0..${count - 1}, e.g. --shard 0/${count}`);
  }
  return { index, count };
}
