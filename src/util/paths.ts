import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;
const require = createRequire(import.meta.url);

/** package.json's fields this tool reads about itself (through Node's loader: it is not a format of ours). */
function manifestAt(dir: string): { name?: string; version?: string } | undefined {
  const pkg = join(dir, 'package.json');
  return existsSync(pkg) ? (require(pkg) as { name?: string; version?: string }) : undefined;
}

/** The patch-atlas package folder, whether running from src/ (tests) or dist/src/ (the CLI). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (manifestAt(dir)?.name === 'patch-atlas') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('patch-atlas package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export function packageVersion(): string {
  return manifestAt(packageRoot())!.version!;
}
