/** The run store: where `collect` puts activations and attributions, and how everything else reads them. */
export { RUN_FORMAT, META, META_COLUMNS, PROB, PROB_COLUMNS } from './types.js';
export type { ArrayDtype, ArrayInfo, ArrayName, ImageRecord, PointChunk, RunIdentity, RunManifest, ShardSpec } from './types.js';
export { fromHalf, fromHalfInto, halfBits, halfValue, toHalf, toHalfInto } from './half.js';
export { formatShard, hashImageList, inShard, parseShard, shardOf } from './image-list.js';
export { ARRAY_FILES, ARRAY_NAMES, CHUNKS_DIR, IMAGES_FILE, MANIFEST_FILE, arrayInfos } from './layout.js';
export { IDENTITY_KEYS, identityDiff, identityOf, readManifest, type IdentityDiff } from './manifest.js';
export { RunWriter } from './writer.js';
export { RunReader, type Block, type Decoded } from './reader.js';
export { mergeRuns } from './merge.js';
