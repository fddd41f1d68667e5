import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';

/**
 * Source analysis for test/architecture.test.ts: what a file imports and which functions it calls,
 * read with the TypeScript parser (no type checking), so comments and strings never count.
 */

/** One module reference; `typeOnly` ones vanish at runtime (`import type`, `import { type X }`, `import('x').T`). */
export interface ImportRef { spec: string; typeOnly: boolean; line: number }

/** One call expression: `callee` is the callee as written (`JSON.parse`, `fs.readFile`), `name` its last part. */
export interface CallRef { callee: string; name: string; line: number }
export interface Analysis { imports: ImportRef[]; calls: CallRef[] }

const isTypeOnlyList = (elements: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>): boolean =>
  elements.length > 0 && elements.every((e) => e.isTypeOnly);

const cache = new Map<string, Analysis>();

/** Parses one file (TS or JS); cached by path and text, since every rule walks the same tree. */
export function analyse(path: string, text: string): Analysis {
  const key = `${path}\0${text}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const kind = path.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, kind);
  const imports: ImportRef[] = [];
  const calls: CallRef[] = [];
  const lineOf = (n: ts.Node): number => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const add = (spec: ts.Node | undefined, typeOnly: boolean, at: ts.Node): void => {
    if (spec && ts.isStringLiteralLike(spec)) imports.push({ spec: spec.text, typeOnly, line: lineOf(at) });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) {
      const c = n.importClause;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings) && isTypeOnlyList(c.namedBindings.elements)));
      add(n.moduleSpecifier, typeOnly, n);
    } else if (ts.isExportDeclaration(n)) {
      add(n.moduleSpecifier, n.isTypeOnly || (!!n.exportClause && ts.isNamedExports(n.exportClause) && isTypeOnlyList(n.exportClause.elements)), n);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) {
      add(n.moduleReference.expression, n.isTypeOnly, n);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) {
      add(n.argument.literal, true, n);
    } else if (ts.isCallExpression(n)) {
      const callee = n.expression;
      // import('x') and require('x') with a literal specifier; computed ones cannot be resolved statically.
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(n.arguments[0], false, n);
      const name = ts.isIdentifier(callee) ? callee.text : ts.isPropertyAccessExpression(callee) ? callee.name.text : undefined;
      if (name) calls.push({ callee: callee.getText(sf).replace(/\s+/g, ''), name, line: lineOf(n) });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  const result = { imports, calls };
  cache.set(key, result);
  return result;
}

/**
 * Resolves a relative specifier to a project path (`src/...`, posix). The project writes `.js` for
 * `.ts` files, so `x.js` means `x.ts` unless a real `x.js` exists. Bare specifiers (packages,
 * built-ins) return undefined. A path that names no known file is still returned (as `.ts`) so its layer can be judged.
 */
export function resolveSpec(from: string, spec: string, files: ReadonlyMap<string, string>): string | undefined {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return undefined;
  const target = posix.normalize(posix.join(posix.dirname(from), spec));
  const stem = target.replace(/\.js$/, '');
  return [`${stem}.ts`, target, `${target}.ts`].find((c) => files.has(c)) ?? (target.endsWith('.js') ? `${stem}.ts` : target);
}

/** Every `.ts` / `.js` file under `<root>/src`, keyed `src/...` with forward slashes. */
export function loadSourceTree(root: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const rel of readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
    if (/\.(ts|js)$/.test(rel)) files.set(posix.join('src', rel.split(/[\\/]/).join('/')), readFileSync(join(root, 'src', rel), 'utf8'));
  }
  return files;
}
