import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const file = (path: string): string => join(REPO, path);

/** The project modules `path` imports: static ones always, `import()` ones too when asked. Type-only imports are erased, so left out. */
function importsOf(path: string, dynamic: boolean): string[] {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly)
      specifiers.push((node.moduleSpecifier as ts.StringLiteral).text);
    else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly)
      specifiers.push((node.moduleSpecifier as ts.StringLiteral).text);
    else if (
      dynamic &&
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    )
      specifiers.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => resolve(dirname(path), s.replace(/\.js$/, '.ts')))
    .map((p) => (existsSync(p) ? p : join(p.replace(/\.ts$/, ''), 'index.ts')));
}

/** Every project module loaded from `entries`, as repository paths. */
function moduleGraph(entries: readonly string[], dynamic: boolean): Set<string> {
  const seen = new Set<string>();
  const todo = [...entries];
  for (let path = todo.pop(); path !== undefined; path = todo.pop()) {
    if (seen.has(path)) continue;
    seen.add(path);
    todo.push(...importsOf(path, dynamic));
  }
  return new Set([...seen].map((p) => relative(REPO, p)));
}

const isLab = (path: string): boolean => path.startsWith('appliance/lab/');

describe('portcullis serve', () => {
  // what `portcullis serve` loads: the CLI's static graph, then main.ts with everything it may import
  const serve = new Set([
    ...moduleGraph([file('gateway/src/cli/main.ts')], false),
    ...moduleGraph([file('gateway/src/main.ts')], true),
  ]);

  it('loads the service', () => {
    expect(serve).toContain('gateway/src/main.ts');
    expect(serve).toContain('gateway/src/app.ts');
    expect(serve).toContain('gateway/src/nft/sync.ts');
  });

  it('loads nothing of the lab (appliance/lab/)', () => {
    expect([...serve].filter(isLab)).toEqual([]);
  });

  it('would see the lab if a command loaded it: the lab commands import it when they run', () => {
    // positive control: the same walk, following import(), reaches the lab from the CLI
    const all = moduleGraph([file('gateway/src/cli/main.ts')], true);
    expect([...all].filter(isLab)).toContain('appliance/lab/builder.ts');
  });
});
