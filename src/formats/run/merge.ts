import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PatchAtlasError } from '../../errors.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { assembleArrays, Segments, type AssembleSpec } from './assemble.js';
import { formatShard } from './image-list.js';
import { ARRAY_FILES, ARRAY_NAMES, IMAGES_FILE, MANIFEST_FILE, TMP_SUFFIX, rowBytes } from './layout.js';
import { identityDiff, manifestHeader, readManifest } from './manifest.js';
import { RunReader } from './reader.js';
import { META, META_COLUMNS, type RunManifest } from './types.js';

const META_ROWS_PER_BLOCK = 1 << 16;

/**
 * Join complete shard runs (`--shard 0/N` … `N-1/N` of one collect) into one run in `outDir`
 * whose arrays are byte-identical to an unsharded collect's: points ordered by image, each image's
 * points in the order its shard stored them. Everything is streamed; memory is a few numbers per
 * image plus one copy buffer.
 */
export async function mergeRuns(shardDirs: string[], outDir: string): Promise<RunManifest> {
  if (shardDirs.length === 0) throw new PatchAtlasError('BAD_FLAG', 'merge needs the shard run folders to join', 'e.g. patch-atlas merge out/s0 out/s1 --out out/all');
  const readers: RunReader[] = [];
  try {
    for (const d of shardDirs) readers.push(await RunReader.open(d));
    const bySlot = checkShards(readers);
    await claimOutDir(outDir);

    const first = bySlot[0]!.manifest;
    const n = first.shard!.count;
    // Each shard stores its images' points contiguously and in image order; find where each one starts.
    const startOf = new Float64Array(first.images);
    const countOf = new Float64Array(first.images);
    for (const r of bySlot) {
      const k = r.manifest.shard!.index;
      let prev = -1;
      for await (const b of r.blocks('meta', META_ROWS_PER_BLOCK)) {
        for (let i = 0; i < b.rows; i++) {
          const img = b.data[i * META_COLUMNS + META.image]!;
          if (!(img >= prev && img < first.images && img % n === k)) {
            throw new PatchAtlasError('BAD_RUN', `${r.dir}: point ${b.start + i} names image ${img}, which does not belong to shard ${k}/${n} here`, 'the shard run is damaged; collect that shard again');
          }
          if (img !== prev) startOf[img] = b.start + i;
          countOf[img]++;
          prev = img;
        }
      }
    }
    const segs = new Segments();
    for (let i = 0; i < first.images; i++) segs.push(i % n, startOf[i]!, countOf[i]!);

    const specs: AssembleSpec[] = ARRAY_NAMES.map((a) => ({
      file: first.arrays[a].file,
      rowBytes: rowBytes(first.arrays[a]),
      sources: bySlot.map((r) => ({ path: join(r.dir, r.manifest.arrays[a].file), offset: 0 })),
    }));
    await mkdir(outDir, { recursive: true });
    await assembleArrays(outDir, specs, segs);
    await writeJsonAtomic(join(outDir, IMAGES_FILE), bySlot[0]!.images);

    const manifest: RunManifest = {
      ...manifestHeader(first),
      ...(bySlot[0]!.manifest.classNames ? { classNames: bySlot[0]!.manifest.classNames } : {}),
      shard: null,
      images: first.images,
      processedImages: bySlot.reduce((s, r) => s + r.manifest.processedImages, 0),
      skippedImages: bySlot.flatMap((r) => r.manifest.skippedImages).sort((a, b) => a.image - b.image),
      points: segs.rows,
      complete: true,
      createdAt: bySlot.map((r) => r.manifest.createdAt).sort()[0]!,
      finishedAt: new Date().toISOString(),
      arrays: first.arrays,
    };
    // Manifest last: a kill before this leaves a folder without one, which the next merge clears.
    await writeJsonAtomic(join(outDir, MANIFEST_FILE), manifest);
    return manifest;
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}

/** Same identity, same shard count, every shard exactly once; returns the readers by shard index. */
function checkShards(readers: RunReader[]): RunReader[] {
  const base = readers[0]!;
  for (const r of readers) {
    if (!r.manifest.shard) {
      throw new PatchAtlasError('RUN_MISMATCH', `${r.dir} was collected without --shard, so there is nothing to merge it with`, 'merge joins the runs of collect --shard i/N');
    }
  }
  for (const r of readers.slice(1)) {
    const d = identityDiff(base.manifest, r.manifest);
    if (d) {
      throw new PatchAtlasError('RUN_MISMATCH', `shard runs disagree on ${d.key}: ${base.dir} has ${d.a}, ${r.dir} has ${d.b}`, 'merge only shards of one collect (same model, layer, seed, positions, labels and images)');
    }
    if (r.manifest.shard!.count !== base.manifest.shard!.count) {
      throw new PatchAtlasError(
        'RUN_MISMATCH',
        `shard runs disagree on the shard count: ${base.dir} is --shard ${formatShard(base.manifest.shard)}, ${r.dir} is --shard ${formatShard(r.manifest.shard)}`,
        'merge only shards of one collect',
      );
    }
  }
  const n = base.manifest.shard!.count;
  const slots: Array<RunReader | undefined> = new Array(n);
  for (const r of readers) {
    const k = r.manifest.shard!.index;
    const seen = slots[k];
    if (seen) throw new PatchAtlasError('RUN_MISMATCH', `shard ${k}/${n} is given twice (${seen.dir} and ${r.dir})`, 'pass each shard folder once');
    slots[k] = r;
  }
  for (let k = 0; k < n; k++) {
    if (!slots[k]) throw new PatchAtlasError('RUN_MISMATCH', `shard ${k}/${n} is missing`, `pass all ${n} shard folders (collect --shard ${k}/${n} first if it was never run)`);
  }
  return slots as RunReader[];
}

/**
 * The output folder must be new, empty, or the leftovers of a killed merge (no manifest, only
 * our files); never an existing run or someone else's files.
 */
async function claimOutDir(outDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (await readManifest(outDir).catch(() => true)) {
    throw new PatchAtlasError('BAD_RUN', `${outDir} already holds a run`, 'pick another --out for the merged run, or delete that folder');
  }
  const ours = new Set([IMAGES_FILE, ...Object.values(ARRAY_FILES)]);
  const foreign = names.filter((n) => !ours.has(n) && !n.endsWith(TMP_SUFFIX));
  if (foreign.length > 0) {
    throw new PatchAtlasError('BAD_RUN', `${outDir} is not empty (it holds ${foreign[0]})`, 'pick another --out for the merged run, or empty that folder');
  }
  await Promise.all(names.map((n) => rm(join(outDir, n), { recursive: true, force: true })));
}
