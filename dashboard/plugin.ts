import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

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

/** A file as served: read once when the plugin is registered. */
interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
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
 * address (`/` is `index.html`). The page routes with the URL hash, so every file
 * has one exact route and there is no catch-all: the API and `/metrics` are never
 * shadowed, and a file that would sit on one of their paths is refused at start.
 *
 * The files are read once, at registration. Their names carry no version, so every
 * answer says `Cache-Control: no-cache` with an ETag: the browser keeps its copy and
 * asks each time, and a 304 answers while the file is unchanged.
 */
export const dashboardPlugin: FastifyPluginAsync<DashboardOptions> = async (app, opts) => {
  const root = opts.root ?? fileURLToPath(new URL('./static/', import.meta.url));
  const apiPrefix = (opts.apiPrefix ?? '/api/v1').replace(/\/$/, '');
  const files = await readStatic(root);

  for (const [url, file] of files) {
    if (
      url === apiPrefix ||
      url.startsWith(`${apiPrefix}/`) ||
      url === '/metrics' ||
      url === '/openapi.json'
    ) {
      throw new Error(`dashboard file ${url} would shadow a service route; rename it`);
    }
    const handler = (req: FastifyRequest, reply: FastifyReply): FastifyReply => send(req, reply, file);
    app.get(url, handler);
    if (url === '/index.html') app.get('/', handler);
  }
};

/** Every file under `root` by its URL path (`/app.js`, `/views/vm.js`); dotfiles left out. */
async function readStatic(root: string): Promise<Map<string, StaticFile>> {
  const files = new Map<string, StaticFile>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const url = `/${relative(root, path).split(sep).join('/')}`;
    if (url.split('/').some((part) => part.startsWith('.'))) continue;
    const body = await readFile(path);
    files.set(url, {
      body,
      type: CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    });
  }
  if (!files.has('/index.html')) throw new Error(`no index.html in ${root}`);
  return files;
}

function send(req: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  void reply
    .header('cache-control', 'no-cache')
    .header('etag', file.etag)
    .header('x-content-type-options', 'nosniff');
  if (file.type.startsWith('text/html')) {
    void reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer');
  }
  if (matches(req.headers['if-none-match'], file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

/** Whether an If-None-Match header names the ETag (weak comparison, lists and `*`). */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}
