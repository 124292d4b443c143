// `npm run build`: the service as one ES module, dist/portcullis.mjs (+ source map),
// for the appliance's `appliance/bin/portcullis`. One bundle instead of ~1,200 module
// files: Node loads the service in a fraction of the time, which counts most in a VM
// without hardware acceleration (under QEMU TCG, loading the separate files took 40 s).
// Native addons stay in node_modules (npm ci --omit=dev). Type checking is `npm run typecheck`.
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Native addons load their binaries relative to their own package: not bundled. */
const external = ['better-sqlite3', 'koffi'];
/** Packages whose files the service serves as they are (dashboard/plugin.ts VENDOR: uPlot). */
const served = ['uplot'];
const dist = join(repo, 'dist');
rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: [join(repo, 'gateway', 'src', 'cli', 'main.ts')],
  outfile: join(dist, 'portcullis.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  external,
  // CommonJS dependencies inside an ES module bundle
  banner: {
    js: [
      "import { createRequire as __pcRequire } from 'node:module';",
      "import { fileURLToPath as __pcPath } from 'node:url';",
      'const require = __pcRequire(import.meta.url);',
      'const __filename = __pcPath(import.meta.url);',
      "const __dirname = __pcPath(new URL('.', import.meta.url));",
    ].join('\n'),
  },
  logLevel: 'warning',
});
// the dashboard finds its files beside the module (dashboard/plugin.ts: ./static/)
cpSync(join(repo, 'dashboard', 'static'), join(dist, 'static'), { recursive: true });
// what the bundle still loads or serves from node_modules: the image keeps only these
// and their dependencies (appliance/image/prune-modules.mjs)
writeFileSync(join(dist, 'runtime-modules.json'), JSON.stringify([...external, ...served]) + '\n');
