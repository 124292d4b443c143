// Keep in a production node_modules only what the esbuild bundle loads or serves at run time:
// the packages in dist/runtime-modules.json (the bundle's externals, native addons, and
// packages whose files it serves, uPlot)
// and their dependencies, without their C/C++ sources. Everything else is in the
// bundle already.
//
//   node appliance/image/prune-modules.mjs <node_modules> <dist/runtime-modules.json>
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

const [modules, listFile] = process.argv.slice(2);
if (!modules || !listFile) {
  process.stderr.write('usage: prune-modules.mjs <node_modules> <runtime-modules.json>\n');
  process.exit(2);
}
const keep = new Set();
const visit = (name) => {
  if (keep.has(name)) return;
  const manifest = join(modules, name, 'package.json');
  if (!existsSync(manifest)) {
    process.stderr.write(
      `prune-modules: ${name} is needed at run time but not in ${modules}: run npm ci --omit=dev`,
    );
    process.exit(1);
  }
  keep.add(name);
  const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }))
    if (existsSync(join(modules, dep, 'package.json'))) visit(dep);
};
for (const name of JSON.parse(readFileSync(listFile, 'utf8'))) visit(name);

let removed = 0;
for (const entry of readdirSync(modules)) {
  if (entry.startsWith('.')) continue;
  const names = entry.startsWith('@')
    ? readdirSync(join(modules, entry)).map((n) => `${entry}/${n}`)
    : [entry];
  for (const name of names) {
    if (keep.has(name)) continue;
    rmSync(join(modules, name), { recursive: true, force: true });
    removed += 1;
  }
  if (entry.startsWith('@') && readdirSync(join(modules, entry)).length === 0)
    rmSync(join(modules, entry), { recursive: true });
}
rmSync(join(modules, '.bin'), { recursive: true, force: true });
// better-sqlite3 ships SQLite's C sources beside its prebuilt binary
for (const dir of ['deps', 'src'])
  rmSync(join(modules, 'better-sqlite3', dir), { recursive: true, force: true });
process.stdout.write(`prune-modules: kept ${[...keep].sort().join(', ')}; removed ${removed} packages\n`);
