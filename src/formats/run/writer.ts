import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PatchAtlasError } from '../../errors.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { assembleArrays, Segments, type AssembleSpec } from './assemble.js';
import { chunkOffsets, commitChunk, loadChunks, sortedChunk, type ChunkIndex } from './chunk.js';
import { formatShard, hashImageList, inShard, shardOf } from './image-list.js';
import { ARRAY_FILES, ARRAY_NAMES, CHUNKS_DIR, IMAGES_FILE, MANIFEST_FILE, TMP_SUFFIX, arrayInfos, assertLittleEndian, rowBytes } from './layout.js';
import { identityDiff, manifestHeader, readManifest } from './manifest.js';
import { META, META_COLUMNS, type ImageRecord, type PointChunk, type RunIdentity, type RunManifest, type ShardSpec } from './types.js';

/**
 * Writes one collect run (or one shard of it) so it can be killed at any moment and resumed:
 * points arrive as chunks, each committed atomically under chunks/; finalize() streams the chunks,
 * ordered by image, into the final arrays and only then marks the manifest complete.
 */
export class RunWriter {
  /** Images (global indices) covered by committed chunks, processed or skipped. */
  readonly doneImages: Set<number>;
  /** Leftovers of an interrupted run that open() deleted (file names under chunks/), for logging. */
  readonly discarded: string[];
  private chunks: ChunkIndex[];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private current: RunManifest,
    /** True when open() found an existing run and continues it. */
    readonly resumed: boolean,
    chunks: ChunkIndex[],
    doneImages: Set<number>,
    discarded: string[],
  ) {
    this.chunks = chunks;
    this.doneImages = doneImages;
    this.discarded = discarded;
  }

  get manifest(): RunManifest {
    return this.current;
  }

  /** The run is finished: nothing left to write (a re-run of collect can stop here). */
  get complete(): boolean {
    return this.current.complete;
  }

  get shard(): ShardSpec | null {
    return this.current.shard;
  }

  /** Points committed so far (final count once complete). */
  get points(): number {
    return this.current.complete ? this.current.points : this.chunks.reduce((n, c) => n + c.points, 0);
  }

  /** This shard's images that still need collecting, in index order. */
  pendingImages(): number[] {
    if (this.complete) return [];
    return shardOf(this.current.images, this.current.shard).filter((i) => !this.doneImages.has(i));
  }

  /**
   * Create the run in `dir`, or resume the run already there if it was started with the same
   * identity and shard. `images` is the full, unsharded list.
   */
  static async open(dir: string, identity: RunIdentity, images: ImageRecord[], shard: ShardSpec | null, classNames?: string[]): Promise<RunWriter> {
    assertLittleEndian();
    if (identity.imageListHash !== hashImageList(images)) throw new Error('RunWriter.open: identity.imageListHash is not hashImageList(images)');
    if (shard && !(Number.isInteger(shard.count) && shard.count >= 1 && Number.isInteger(shard.index) && shard.index >= 0 && shard.index < shard.count)) {
      throw new Error(`RunWriter.open: bad shard ${JSON.stringify(shard)}`);
    }
    await mkdir(dir, { recursive: true });
    const existing = await readManifest(dir);
    const infos = arrayInfos(identity);
    const chunksDir = join(dir, CHUNKS_DIR);

    if (!existing) {
      await claimEmptyDir(dir);
      const manifest: RunManifest = {
        ...manifestHeader(identity),
        ...(classNames ? { classNames } : {}),
        shard: shard ? { index: shard.index, count: shard.count } : null,
        images: images.length,
        processedImages: 0,
        skippedImages: [],
        points: 0,
        complete: false,
        createdAt: new Date().toISOString(),
        finishedAt: null,
        arrays: infos,
      };
      // images.json before the manifest: a manifest always has its image list beside it.
      await writeJsonAtomic(join(dir, IMAGES_FILE), images);
      await mkdir(chunksDir, { recursive: true });
      await writeJsonAtomic(join(dir, MANIFEST_FILE), manifest);
      return new RunWriter(dir, manifest, false, [], new Set(), []);
    }

    const diff = identityDiff(existing, identity);
    if (diff) {
      throw new PatchAtlasError(
        'RUN_MISMATCH',
        `${dir} holds a run with ${diff.key} ${diff.a}, this collect has ${diff.key} ${diff.b}`,
        'pick another --out, or delete the folder to start over',
      );
    }
    if (formatShard(existing.shard) !== formatShard(shard)) {
      const say = (s: ShardSpec | null) => (s ? `--shard ${formatShard(s)}` : 'no --shard');
      throw new PatchAtlasError(
        'RUN_MISMATCH',
        `${dir} holds a run collected with ${say(existing.shard)}, this collect has ${say(shard)}`,
        'pick another --out, or delete the folder to start over',
      );
    }
    await removeTmpFiles(dir);
    if (existing.complete) {
      // A kill between the complete manifest and removing chunks/ leaves chunks/ behind: finish that.
      await rm(chunksDir, { recursive: true, force: true });
      return new RunWriter(dir, existing, true, [], new Set(shardOf(existing.images, existing.shard)), []);
    }
    // Final arrays in an incomplete run are from a finalize that was killed before its manifest: untrusted.
    await Promise.all(ARRAY_NAMES.map((a) => rm(join(dir, ARRAY_FILES[a]), { force: true })));
    await mkdir(chunksDir, { recursive: true });
    const { chunks, discarded } = await loadChunks(chunksDir, infos);
    const done = new Set<number>();
    for (const c of chunks) {
      for (const i of [...c.images, ...c.skipped.map((s) => s.image)]) {
        if (done.has(i)) {
          throw new PatchAtlasError('BAD_RUN', `${dir} has two chunks covering image ${i} (were two collects writing it at once?)`, 'delete the folder and collect again');
        }
        done.add(i);
      }
    }
    return new RunWriter(dir, existing, true, chunks, done, discarded);
  }

  /** Commit one chunk (atomically: after a kill it is either fully there or not at all). */
  writeChunk(chunk: PointChunk): Promise<void> {
    // Serialised, so the done-image checks see every earlier chunk even if callers do not await.
    const next = this.queue.then(() => this.writeChunkNow(chunk));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async writeChunkNow(chunk: PointChunk): Promise<void> {
    if (this.complete) throw new Error(`RunWriter.writeChunk: ${this.dir} is already complete`);
    const m = this.current;
    // Skipped images may be listed in `images` too or only in `skipped`; either way they count as
    // covered, not processed, and may not carry points.
    const skipped = new Set<number>();
    for (const s of chunk.skipped) {
      if (skipped.has(s.image)) throw new Error(`writeChunk: image ${s.image} is skipped twice`);
      skipped.add(s.image);
    }
    const processed = new Set<number>();
    for (const i of chunk.images) {
      if (processed.has(i)) throw new Error(`writeChunk: image ${i} is listed twice`);
      processed.add(i);
    }
    for (const i of skipped) processed.delete(i);
    const covered = [...processed, ...skipped];
    for (const i of covered) {
      if (!Number.isInteger(i) || i < 0 || i >= m.images) throw new Error(`writeChunk: image ${i} is not an index into the ${m.images} images`);
      if (!inShard(i, m.shard)) throw new Error(`writeChunk: image ${i} is not in shard ${formatShard(m.shard)}`);
      if (this.doneImages.has(i)) throw new Error(`writeChunk: image ${i} is already written`);
    }
    for (let r = 0; r < chunk.meta.length; r += META_COLUMNS) {
      const img = chunk.meta[r + META.image]!;
      if (!processed.has(img)) throw new Error(`writeChunk: a point names image ${img}, which is not among the chunk's processed images`);
    }
    if (covered.length === 0) return; // nothing to commit (and no points, by the check above)
    const infos = m.arrays;
    const index = await commitChunk(join(this.dir, CHUNKS_DIR), sortedChunk({ ...chunk, images: [...processed] }, infos), infos);
    this.chunks.push(index);
    for (const i of covered) this.doneImages.add(i);
  }

  /**
   * Stream all chunks, ordered by image, into the final arrays; then write the complete manifest;
   * then drop chunks/. Each step is safe to kill: see the comments at each.
   */
  async finalize(): Promise<RunManifest> {
    await this.queue;
    if (this.complete) return this.current;
    const m = this.current;
    const pending = this.pendingImages();
    if (pending.length > 0) {
      throw new PatchAtlasError('BAD_RUN', `${this.dir}: ${pending.length} images of shard ${formatShard(m.shard)} are not collected yet (first: image ${pending[0]})`, 're-run collect to finish them');
    }
    // Where each image's rows are: chunks hold rows sorted by image, so an image is one range.
    const chunkOf = new Int32Array(m.images).fill(-1);
    const startOf = new Float64Array(m.images);
    const countOf = new Float64Array(m.images);
    this.chunks.forEach((c, ci) => {
      let row = 0;
      for (const [img, n] of c.counts) {
        chunkOf[img] = ci;
        startOf[img] = row;
        countOf[img] = n;
        row += n;
      }
    });
    const segs = new Segments();
    for (let i = 0; i < m.images; i++) if (chunkOf[i]! >= 0) segs.push(chunkOf[i]!, startOf[i]!, countOf[i]!);

    const offsets = this.chunks.map((c) => chunkOffsets(m.arrays, c.points).offsets);
    const specs: AssembleSpec[] = ARRAY_NAMES.map((a) => ({
      file: m.arrays[a].file,
      rowBytes: rowBytes(m.arrays[a]),
      sources: this.chunks.map((c, ci) => ({ path: join(this.dir, CHUNKS_DIR, c.bin), offset: offsets[ci]![a] })),
    }));
    // Arrays go to .tmp, are synced and renamed; the manifest still says incomplete, so a kill
    // here makes the next open() delete them and finalize again from the intact chunks.
    await assembleArrays(this.dir, specs, segs);

    const done: RunManifest = {
      ...m,
      processedImages: this.chunks.reduce((n, c) => n + c.images.length, 0),
      skippedImages: this.chunks.flatMap((c) => c.skipped).sort((a, b) => a.image - b.image),
      points: segs.rows,
      complete: true,
      finishedAt: new Date().toISOString(),
    };
    // The commit point: from here the arrays are the run.
    await writeJsonAtomic(join(this.dir, MANIFEST_FILE), done);
    this.current = done;
    this.chunks = [];
    // A kill during this rm leaves chunks/ in a complete run; open() removes it.
    await rm(join(this.dir, CHUNKS_DIR), { recursive: true, force: true });
    return done;
  }
}

async function removeTmpFiles(dir: string): Promise<void> {
  const names = await readdir(dir);
  await Promise.all(names.filter((n) => n.endsWith(TMP_SUFFIX)).map((n) => rm(join(dir, n), { force: true })));
}

/**
 * A folder without a manifest may be used only if it is empty or holds nothing but what a kill
 * during creation leaves (images.json, chunks/, .tmp files): never write over someone's files.
 */
async function claimEmptyDir(dir: string): Promise<void> {
  const names = await readdir(dir);
  const ours = new Set([IMAGES_FILE, CHUNKS_DIR]);
  const foreign = names.filter((n) => !ours.has(n) && !n.endsWith(TMP_SUFFIX));
  if (foreign.length > 0) {
    throw new PatchAtlasError('BAD_RUN', `${dir} is not empty and is not a patch-atlas run (it holds ${foreign[0]})`, 'pick another --out, or empty the folder');
  }
  await Promise.all(names.map((n) => rm(join(dir, n), { recursive: true, force: true })));
}
