import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { analyse, loadSourceTree, resolveSpec } from './helpers/imports.js';

/**
 * The project's layering, enforced by reading src/ as text. Every check is a pure function over a
 * `Map<path, source>`, so the last test can prove each one fails on a small fake tree.
 */

type Files = ReadonlyMap<string, string>;
type Layer = 'engine' | 'bottom' | 'platform' | 'blocks' | 'recipes' | 'faces';

/** First path segment under src/ (or the file name, for top-level files) → layer. A new folder must be added here. */
const LAYER_OF: Record<string, Layer> = {
  engine: 'engine',
  'errors.ts': 'bottom', 'config.ts': 'bottom', util: 'bottom',
  model: 'platform', data: 'platform', formats: 'platform',
  atlas: 'blocks', featurevis: 'blocks', patch: 'blocks', evaluate: 'blocks', attribution: 'blocks', report: 'blocks', screen: 'blocks',
  recipes: 'recipes',
  cli: 'faces', pipeline: 'faces', audit: 'faces',
};

/** Each layer may import itself and everything listed; faces may import any layer. */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  engine: ['engine'],
  bottom: ['bottom', 'engine'],
  platform: ['platform', 'bottom', 'engine'],
  blocks: ['blocks', 'platform', 'bottom', 'engine'],
  recipes: ['recipes', 'blocks', 'platform', 'bottom', 'engine'],
  faces: ['faces', 'recipes', 'blocks', 'platform', 'bottom', 'engine'],
};

/** Modules that touch the file system; sharp opens files when given a path. */
const FS_MODULES = new Set(['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'sharp']);

/**
 * Files outside src/formats/ that may still call JSON.parse, and why. Everything else parses through
 * src/formats/ (`parseJsonText` for text that is not one of our formats: descriptors, the audit config).
 */
const JSON_PARSE_ALLOWED: Record<string, string> = {
  'src/report/client.js': "the report's browser script reads the data embedded in the page",
};

/** Where files may be read directly; faces, recipes and blocks go through these. */
const READ_ALLOWED = ['src/formats/', 'src/model/', 'src/data/', 'src/engine/', 'src/util/', 'src/audit/config.ts'];
const READ_CALLS = new Set(['readFile', 'readFileSync', 'createReadStream']);

/** `src/activations/x.ts` → 'activations'; `src/errors.ts` → 'errors.ts'. */
const topOf = (path: string): string => path.split('/')[1] ?? '';
const layerOf = (path: string): Layer | undefined => LAYER_OF[topOf(path)];
const unknownName = (path: string): string => `src/${topOf(path)}${topOf(path).includes('.') ? '' : '/'}`;
const typeTag = (typeOnly: boolean): string => (typeOnly ? ' [type-only]' : '');

/** Rule 1: every import of a project file goes to a layer its importer may import, and never to an unlayered folder. */
function checkDirection(files: Files): string[] {
  const out: string[] = [];
  const unlayered = new Set<string>();
  for (const [path, text] of files) {
    const from = layerOf(path);
    // A file in an unlayered folder cannot be checked: report its folder once instead.
    if (!from) unlayered.add(unknownName(path));
    for (const imp of analyse(path, text).imports) {
      const target = resolveSpec(path, imp.spec, files);
      if (!target?.startsWith('src/')) continue;
      const to = layerOf(target);
      const where = `${path}:${imp.line} → ${target}${typeTag(imp.typeOnly)}`;
      if (!to) out.push(`${where}: ${unknownName(target)} has no layer (add it to LAYER_OF)`);
      else if (from && !MAY_IMPORT[from].includes(to)) out.push(`${where}: ${from} may not import ${to}`);
    }
  }
  return [...out, ...[...unlayered].map((f) => `${f} has no layer (add it to LAYER_OF)`)];
}

/** Rule 4: the engine is a standalone library: only itself, @tensorflow/* and Node built-ins. */
/** What the engine may use besides tfjs: the ONNX format (protobufjs) and onnxruntime-node. */
const ENGINE_PACKAGES = new Set(['protobufjs', 'onnxruntime-node']);

function checkEngine(files: Files): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    if (!path.startsWith('src/engine/')) continue;
    for (const imp of analyse(path, text).imports) {
      const target = resolveSpec(path, imp.spec, files);
      const ok = target ? target.startsWith('src/engine/') : imp.spec.startsWith('@tensorflow/') || imp.spec.startsWith('node:') || ENGINE_PACKAGES.has(imp.spec.split('/')[0]!); // a package's own files count as the package
      if (!ok) out.push(`${path}:${imp.line} → ${target ?? imp.spec}${typeTag(imp.typeOnly)}`);
    }
  }
  return out;
}

/**
 * Rule 2: blocks are pure. From each blocks file, a breadth-first walk over value imports
 * (types vanish at runtime) finds the shortest chain to each file-system module it can reach.
 */
function checkPureBlocks(files: Files): string[] {
  const out: string[] = [];
  for (const start of files.keys()) {
    if (layerOf(start) !== 'blocks') continue;
    const chainTo = new Map<string, string[]>([[start, [start]]]);
    const reported = new Set<string>();
    const queue = [start];
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const chain = chainTo.get(file) ?? [file];
      for (const imp of analyse(file, files.get(file) ?? '').imports) {
        if (imp.typeOnly) continue;
        const target = resolveSpec(file, imp.spec, files);
        if (target === undefined && FS_MODULES.has(imp.spec) && !reported.has(imp.spec)) {
          reported.add(imp.spec);
          out.push([...chain, imp.spec].join(' → '));
        } else if (target !== undefined && files.has(target) && !chainTo.has(target)) {
          chainTo.set(target, [...chain, target]);
          queue.push(target);
        }
      }
    }
  }
  return out;
}

/** Rule 3: parsing and reading files have few owners. Calls are found in the syntax tree, so comments and strings never count. */
function checkFormatOwners(files: Files): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    const mayParse = path.startsWith('src/formats/') || path in JSON_PARSE_ALLOWED;
    const mayRead = READ_ALLOWED.some((p) => path.startsWith(p));
    for (const call of analyse(path, text).calls) {
      if (call.callee === 'JSON.parse' && !mayParse) out.push(`${path}:${call.line} JSON.parse( outside src/formats/`);
      if (READ_CALLS.has(call.name) && !mayRead) out.push(`${path}:${call.line} ${call.callee}( outside the reading layers`);
    }
  }
  return out;
}

describe('architecture', () => {
  const files = loadSourceTree(fileURLToPath(new URL('..', import.meta.url)));

  it('rule 1: imports only point down the layers (engine ← bottom ← platform ← blocks ← recipes ← faces)', () => {
    expect(files.has('src/errors.ts')).toBe(true); // the loader found the tree, so an empty result means something
    expect(checkDirection(files)).toEqual([]);
  });

  it('rule 2: blocks never reach fs or sharp through value imports', () => {
    expect(checkPureBlocks(files)).toEqual([]);
  });

  it('rule 3: JSON.parse lives in src/formats/ (plus the allowlist); only the reading layers read files', () => {
    expect(checkFormatOwners(files)).toEqual([]);
  });

  it('rule 4: src/engine/ imports only itself, @tensorflow/*, protobufjs, onnxruntime-node and Node built-ins', () => {
    expect(checkEngine(files)).toEqual([]);
  });

  it('the checks report violations in a fake tree (so a green run means something)', () => {
    const fake = new Map<string, string>([
      ['src/engine/a.ts', "import { UserError } from '../errors.js';\nimport _ from 'lodash';\nimport * as tf from '@tensorflow/tfjs';"],
      ['src/errors.ts', 'export class UserError extends Error {}'],
      ['src/util/disk.ts', "import { readFileSync } from 'node:fs';\nexport const load = (p: string) => readFileSync(p);"],
      ['src/report/page.ts', "import { load } from '../util/disk.js';\nimport type { Stats } from 'node:fs';\nimport { type Sharp } from 'sharp';"],
      ['src/report/index.ts', "export { load } from './page.js';\nexport type { Main } from '../cli/main.js';"],
      ['src/recipes/x.ts', "// JSON.parse(commented) is fine\nconst m = await import('../cli/main.js');\nJSON.parse('{}');\nimport '../activations/y.js';"],
      ['src/cli/main.ts', "import { readFile } from 'node:fs/promises';\nawait readFile('x');"],
    ]);
    expect(checkDirection(fake)).toEqual([
      'src/engine/a.ts:1 → src/errors.ts: engine may not import bottom',
      'src/report/index.ts:2 → src/cli/main.ts [type-only]: blocks may not import faces',
      'src/recipes/x.ts:2 → src/cli/main.ts: recipes may not import faces',
      'src/recipes/x.ts:4 → src/activations/y.ts: src/activations/ has no layer (add it to LAYER_OF)',
    ]);
    expect(checkEngine(fake)).toEqual(['src/engine/a.ts:1 → src/errors.ts', 'src/engine/a.ts:2 → lodash']);
    expect(checkPureBlocks(fake)).toEqual([
      'src/report/page.ts → src/util/disk.ts → node:fs',
      'src/report/index.ts → src/report/page.ts → src/util/disk.ts → node:fs',
    ]);
    expect(checkFormatOwners(fake)).toEqual([
      'src/recipes/x.ts:3 JSON.parse( outside src/formats/',
      'src/cli/main.ts:2 readFile( outside the reading layers',
    ]);
  });
});
