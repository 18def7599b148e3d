/** Where the installed package is: its root (the directory of package.json) and its helper programs. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** Directory of the nearest package.json above this module (src/ under vitest, dist/ after tsc). */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('hpcq package root (package.json) not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** Absolute path of a compiled helper program (src/launcher/<name>.c), `dist/libexec/<name>`. */
export function libexecPath(name: string): string {
  return join(packageRoot(), 'dist', 'libexec', name);
}
