import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PatchAtlasError, type ErrorCode } from '../errors.js';
import { writeJsonAtomic } from '../util/atomic.js';

/**
 * What every format module declares once: its version string, its schema (the TypeScript type is the
 * schema's), the older versions it still reads and how each is upgraded, and how its errors read.
 * `readFormat` is the one way a format file is parsed: a missing file, bad JSON, another tool's file,
 * a version this patch-atlas does not know and a damaged field each give one line naming the file.
 */
export interface Format<T> {
  /** What the file is, as a noun phrase for messages: "an atlas.json written by `patch-atlas atlas`". */
  what: string;
  /** The usual file name ("atlas.json"): a folder named instead of the file is looked into. */
  file: string;
  /** The version written now, e.g. "patch-atlas-atlas/1". */
  version: string;
  schema: z.ZodType<T>;
  /** Older versions still read, each upgraded to the current shape before the schema checks it. */
  upgrades?: Record<string, (raw: Record<string, unknown>) => unknown>;
  /** Files from before the format carried a version string: told apart by a test, then upgraded. */
  unversioned?: { test: (raw: Record<string, unknown>) => boolean; upgrade: (raw: Record<string, unknown>) => unknown };
  /** How to get a good file, appended to every error about this format. */
  hint: string;
  /** Error code for a file that is not what it should be (default BAD_FILE). */
  code?: ErrorCode;
}

/** Where a file came from, for messages: the flag or key that named it (e.g. "--atlas"), if any. */
export interface ReadOptions {
  label?: string;
}

const name = (path: string, o: ReadOptions) => (o.label ? `${o.label} ${path}` : path);

/** Parses already-decoded JSON as format `f`; `path` only names the file in errors. */
export function parseFormat<T>(f: Format<T>, raw: unknown, path: string, o: ReadOptions = {}): T {
  const code = f.code ?? 'BAD_FILE';
  const fail = (msg: string, hint = f.hint) => new PatchAtlasError(code, `${name(path, o)} ${msg}`, hint);
  if (!isObject(raw)) throw fail(`is not ${f.what}: it holds ${describe(raw)}, not a JSON object`);
  let value: unknown = raw;
  const version = raw.format;
  if (version === f.version) value = raw;
  else if (typeof version === 'string' && f.upgrades?.[version]) value = f.upgrades[version]!(raw);
  else if (version === undefined && f.unversioned?.test(raw)) value = f.unversioned.upgrade(raw);
  else if (typeof version === 'string' && version.split('/')[0] === f.version.split('/')[0]) {
    const known = [...Object.keys(f.upgrades ?? {}), f.version].join(', ');
    throw fail(`has format "${version}", this patch-atlas reads ${known}`, 'use the patch-atlas version that wrote it, or make the file again');
  } else throw fail(`is not ${f.what}${version === undefined ? '' : ` (its format is ${JSON.stringify(version)})`}`);
  const r = f.schema.safeParse(value);
  if (!r.success) throw fail(`is damaged: ${firstIssue(r.error)}`);
  return r.data;
}

/** `path` itself, or `file` inside it when `path` is a folder: users may name either. */
export function inFolder(path: string, file: string): string {
  return existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, file)) ? join(path, file) : path;
}

/** Reads and parses a format file (synchronously: these are small JSON files, read once per command). */
export function readFormat<T>(f: Format<T>, given: string, o: ReadOptions = {}): T {
  const path = inFolder(given, f.file);
  if (!existsSync(path)) throw new PatchAtlasError('NOT_FOUND', `${name(path, o)} does not exist`, f.hint);
  if (statSync(path).isDirectory()) throw new PatchAtlasError('NOT_FOUND', `${name(path, o)} is a folder without ${f.file}`, f.hint);
  return parseFormat(f, parseJson(f, readFileSync(path, 'utf8'), path, o), path, o);
}

/** JSON text → value, or one line naming the file. */
export function parseJson(f: Pick<Format<unknown>, 'code' | 'hint'>, text: string, path: string, o: ReadOptions = {}): unknown {
  return parseJsonText(text, (where) => new PatchAtlasError(f.code ?? 'BAD_FILE', `${name(path, o)} is not valid JSON (${where})`, f.hint));
}

/**
 * The one JSON.parse of the project (bar the report's browser script). On a syntax error, `fail` gets where
 * it is, for people: "Unexpected token ',' at line 3, column 14" (V8 gives only an offset, and not always
 * that), and what it returns is thrown.
 */
export function parseJsonText(text: string, fail: (where: string) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fail(jsonErrorWhere(text, e as Error));
  }
}

/** "reason at line L, column C": where a JSON.parse error is. */
function jsonErrorWhere(text: string, e: Error): string {
  // V8 quotes the text around the error (`Unexpected token ']', ..."a"],]}" is not valid JSON`), which may
  // span lines and hold quotes and commas of its own: keep only the reason, the position says more.
  const token = /^Unexpected token '[\s\S]'/u.exec(e.message);
  const first = token ? token[0] : e.message.replace(/ in JSON at position \d+[\s\S]*$/, '').split('\n')[0]!;
  const pos = jsonErrorOffset(text);
  if (pos === undefined) return first;
  const before = text.slice(0, pos).split('\n');
  return `${first} at line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

/** Offset of the first JSON syntax error (a small recursive-descent scan), or undefined if none is found. */
function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  class At extends Error {}
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw new At();
  };
  const lit = (w: string) => (text.startsWith(w, i) ? (i += w.length) : fail());
  const str = () => {
    if (text[i] !== '"') fail();
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i]! < ' ') fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail();
    i++;
  };
  const number = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        str();
        ws();
        lit(':');
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (ch === '"') return str();
    if (ch === 't') return void lit('true');
    if (ch === 'f') return void lit('false');
    if (ch === 'n') return void lit('null');
    number.lastIndex = i;
    const m = number.exec(text);
    if (!m) fail();
    i += m![0].length;
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (e) {
    if (e instanceof At) return Math.min(i, text.length);
    return undefined; // e.g. nesting too deep for the scan: the reason alone must do
  }
}

/** Checks `value` against the schema (a bug if it fails: the writer is ours), then writes it atomically. */
export async function writeFormat<T>(f: Format<T>, path: string, value: T): Promise<void> {
  const r = f.schema.safeParse(value);
  if (!r.success) throw new Error(`refusing to write an invalid ${f.version} to ${path}: ${firstIssue(r.error)}`);
  await writeJsonAtomic(path, value);
}

function firstIssue(e: z.ZodError): string {
  const i = e.issues[0]!;
  const where = i.path.length ? `"${i.path.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k ? '.' : ''}${String(p)}`)).join('')}"` : 'the file';
  const more = e.issues.length > 1 ? ` (and ${e.issues.length - 1} more problem${e.issues.length > 2 ? 's' : ''})` : '';
  return `${where}: ${i.message}${more}`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'a list' : typeof x;
}

// ---- schema pieces shared by several formats ---------------------------------------------------

/** JSON numbers where a non-finite value was written as null (see atlas toJSON). */
export const num = z.number().nullable();
export const className = z.object({ wnid: z.string(), name: z.string() });
export type ClassName = z.infer<typeof className>;
