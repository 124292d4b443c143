/**
 * policy/ is the pure core: model, validation, compiler, schedules. It reads no
 * files, opens no sockets, runs no processes and knows nothing of the store, the
 * HTTP API or the kernel adapters; what does (the policy service) lives in control/.
 * This test walks the imports of every module under policy/ (tests aside), and of
 * every module those reach, and fails on anything that is not known to be pure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Modules outside policy/ that policy/ may use: pure themselves (their own imports
 * are checked the same way). A new one goes here only if it does no I/O.
 */
const PURE_OUTSIDE = [
  'errors.ts',
  'schema.ts',
  'actions/model.ts',
  'nft/types.ts',
  'nft/names.ts',
  'nft/marks.ts',
];

/** Packages and built-ins that do no I/O (TypeBox: every entry point). */
const PURE_PACKAGES = ['node:crypto', 'typebox', 'yaml'];

/** The package a bare specifier names: `typebox/compile` → `typebox`, `@a/b/c` → `@a/b`. */
const packageOf = (spec: string): string =>
  spec
    .split('/')
    .slice(0, spec.startsWith('@') ? 2 : 1)
    .join('/');

/** `from → to` for each import that leaves the pure set. */
function impurities(
  roots: readonly string[],
  read: (file: string) => string,
  options: { pureOutside: readonly string[]; purePackages: readonly string[] },
): string[] {
  const found: string[] = [];
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    // every import, export … from and import(): type-only ones too
    for (const { fileName: spec } of ts.preProcessFile(read(file), true, true).importedFiles) {
      if (!spec.startsWith('.')) {
        if (!options.purePackages.includes(packageOf(spec))) found.push(`${file} → ${spec}`);
        continue;
      }
      const target = join(dirname(file), spec).replace(/\.js$/, '.ts');
      if (target.startsWith('policy/') || options.pureOutside.includes(target)) queue.push(target);
      else found.push(`${file} → ${target}`);
    }
  }
  return found;
}

function policyModules(dir = join(SRC, 'policy')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return policyModules(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [relative(SRC, path)] : [];
  });
}

const options = { pureOutside: PURE_OUTSIDE, purePackages: PURE_PACKAGES };

describe('policy/ is pure', () => {
  it('imports nothing with I/O, directly or through what it imports', () => {
    const roots = policyModules();
    expect(roots).toContain('policy/compile.ts');
    expect(roots).toContain('policy/compile/vm.ts');
    expect(impurities(roots, (f) => readFileSync(join(SRC, f), 'utf8'), options)).toEqual([]);
  });

  describe('the check itself', () => {
    const graph: Record<string, string> = {
      'policy/a.ts': "import { b } from './b.js';\nimport type { T } from '../nft/types.js';",
      'policy/b.ts': "export { c } from './sub/c.js';",
      'policy/sub/c.ts':
        "import { createHash } from 'node:crypto';\nimport { Compile } from 'typebox/compile';",
      'nft/types.ts': 'export type T = 1;',
      'policy/store-user.ts': "import type { Store } from '../store/store.js';",
      'policy/fs-user.ts': "import { readFileSync } from 'node:fs';",
      'policy/deep.ts': "import { x } from '../errors.js';",
      'errors.ts': "const http = await import('node:http');",
    };
    const check = (roots: string[]): string[] => impurities(roots, (f) => graph[f]!, options);

    it('passes pure modules, through re-exports and sub-folders', () => {
      expect(check(['policy/a.ts'])).toEqual([]);
    });

    it('names a store import, even a type-only one', () => {
      expect(check(['policy/store-user.ts'])).toEqual(['policy/store-user.ts → store/store.ts']);
    });

    it('names a built-in with I/O', () => {
      expect(check(['policy/fs-user.ts'])).toEqual(['policy/fs-user.ts → node:fs']);
    });

    it('follows allowed modules outside policy/ and names what they import', () => {
      expect(check(['policy/deep.ts'])).toEqual(['errors.ts → node:http']);
    });
  });
});
