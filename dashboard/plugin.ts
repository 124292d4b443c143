import { readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/** Options of `dashboardPlugin`. */
export interface DashboardOptions {
  /** Folder of the static files. Default: `dashboard/static` beside this file. */
  readonly root?: string;
  /**
   * The API's URL prefix. No dashboard file may be served at or under it, nor at
   * `/metrics` or `/openapi.json`. Default `/api/v1`.
   */
  readonly apiPrefix?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The page may load its own scripts, styles and images and talk to its own origin;
 * nothing inline, nothing from elsewhere, never inside a frame.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The dashboard: the files of `dashboard/static` at the root of the management
 * address (`/` is `index.html`), served by @fastify/static. The page routes with the
 * URL hash, so every file has one exact route (no wildcard) and there is no
 * catch-all: the API and `/metrics` are never shadowed, and a file that would sit on
 * one of their paths is refused at start. Dotfiles are not served.
 *
 * The files are found once, at registration, and read from disk on each request.
 * Their names carry no version, so every answer says `Cache-Control: no-cache` with an
 * ETag (size and modification time): the browser keeps its copy and asks each time,
 * and a 304 answers while the file is unchanged. The page gets a strict Content
 * Security Policy and may not be framed. uPlot (the charts) is served from its npm
 * package at `/vendor/`.
 */
export const dashboardPlugin: FastifyPluginAsync<DashboardOptions> = async (app, opts) => {
  const root = opts.root ?? fileURLToPath(new URL('./static/', import.meta.url));
  const apiPrefix = (opts.apiPrefix ?? '/api/v1').replace(/\/$/, '');
  for (const url of await staticUrls(root)) {
    if (
      url === apiPrefix ||
      url.startsWith(`${apiPrefix}/`) ||
      url === '/metrics' ||
      url === '/openapi.json'
    ) {
      throw new Error(`dashboard file ${url} would shadow a service route; rename it`);
    }
  }
  await vendorRoutes(app);
  await app.register(fastifyStatic, {
    root,
    wildcard: false,
    serveDotFiles: false,
    decorateReply: false,
    index: ['index.html'],
    // our own headers: see setHeaders
    contentType: false,
    cacheControl: false,
    lastModified: false,
    acceptRanges: false,
    setHeaders: (reply, path) => {
      const etag = reply.getHeader('etag');
      // the validator is size and mtime; a client's strong copy of it matches as well
      if (typeof etag === 'string') void reply.header('etag', etag.replace(/^W\//, ''));
      void reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
      const type = CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
      if (reply.statusCode !== 304) void reply.header('content-type', type);
      if (type.startsWith('text/html')) {
        void reply
          .header('content-security-policy', CONTENT_SECURITY_POLICY)
          .header('x-frame-options', 'DENY')
          .header('referrer-policy', 'no-referrer');
      }
    },
  });
};

/**
 * Third-party files the page loads, served from their npm packages (never from a
 * CDN): uPlot for the charts. URL path → file in the package.
 */
const VENDOR: Readonly<Record<string, { readonly pkg: string; readonly file: string }>> = {
  '/vendor/uPlot.esm.js': { pkg: 'uplot', file: 'dist/uPlot.esm.js' },
  '/vendor/uPlot.min.css': { pkg: 'uplot', file: 'dist/uPlot.min.css' },
};

/** The vendor files, each on its exact route, with the same caching as the page's own. */
async function vendorRoutes(app: Parameters<FastifyPluginAsync>[0]): Promise<void> {
  const require = createRequire(import.meta.url);
  for (const [url, { pkg, file }] of Object.entries(VENDOR)) {
    const path = join(dirname(require.resolve(`${pkg}/package.json`)), file);
    app.get(url, async (req, reply) => {
      const s = await stat(path);
      const etag = `"${s.size.toString(16)}-${Math.floor(s.mtimeMs).toString(16)}"`;
      void reply
        .header('etag', etag)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply
        .type(CONTENT_TYPES[extname(path)] ?? 'application/octet-stream')
        .send(await readFile(path));
    });
  }
}

/** The URL path of every file under `root` (`/app.js`, `/views/vm.js`); dotfiles left out. */
async function staticUrls(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const urls = entries
    .filter((entry) => entry.isFile())
    .map((entry) => `/${relative(root, join(entry.parentPath, entry.name)).split(sep).join('/')}`)
    .filter((url) => !url.split('/').some((part) => part.startsWith('.')));
  if (!urls.includes('/index.html')) throw new Error(`no index.html in ${root}`);
  return urls;
}
