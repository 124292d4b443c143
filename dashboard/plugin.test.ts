import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { dashboardPlugin } from './plugin.js';

describe('dashboardPlugin', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A static folder with the given files. */
  function makeRoot(files: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'dashboard-'));
    dirs.push(root);
    for (const [name, body] of Object.entries(files)) {
      mkdirSync(join(root, name, '..'), { recursive: true });
      writeFileSync(join(root, name), body);
    }
    return root;
  }

  it('serves the shipped files with their content types, no-cache and an ETag', async () => {
    const app = Fastify();
    await app.register(dashboardPlugin);
    for (const [url, type] of [
      ['/', 'text/html; charset=utf-8'],
      ['/index.html', 'text/html; charset=utf-8'],
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/views/vm.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'text/css; charset=utf-8'],
      ['/favicon.svg', 'image/svg+xml'],
    ] as const) {
      const res = await app.inject({ method: 'GET', url });
      expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        url,
        status: 200,
        type,
      });
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers.etag).toMatch(/^"[\w-]+"$/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.body).toContain('<script type="module" src="/app.js">');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    await app.close();
  });

  it('answers 304 while the file is unchanged', async () => {
    const app = Fastify();
    await app.register(dashboardPlugin, { root: makeRoot({ 'index.html': '<p>hi</p>' }) });
    const first = await app.inject({ method: 'GET', url: '/' });
    const etag = first.headers.etag as string;
    const again = await app.inject({
      method: 'GET',
      url: '/',
      headers: { 'if-none-match': `W/"x", ${etag}` },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers.etag).toBe(etag);
    const other = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': '"other"' } });
    expect(other.statusCode).toBe(200);
    await app.close();
  });

  it('leaves the API, /metrics and unknown paths alone', async () => {
    const app = Fastify();
    app.get('/metrics', async () => 'metrics');
    app.get('/api/v1/vms', async () => []);
    await app.register(dashboardPlugin, { root: makeRoot({ 'index.html': 'x', '.secret': 'no' }) });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toBe('metrics');
    expect((await app.inject({ method: 'GET', url: '/api/v1/vms' })).json()).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/api/v1/nothing' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/.secret' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/../package.json' })).statusCode).toBe(404);
    await app.close();
  });

  it('refuses a file that would shadow the API or /metrics', async () => {
    for (const name of ['metrics', 'api/v1/vms', 'openapi.json']) {
      const app = Fastify();
      await expect(
        app.register(dashboardPlugin, { root: makeRoot({ 'index.html': 'x', [name]: 'y' }) }),
      ).rejects.toThrow(/would shadow a service route/);
      await app.close();
    }
  });

  it('needs an index.html', async () => {
    const app = Fastify();
    await expect(app.register(dashboardPlugin, { root: makeRoot({ 'app.js': '' }) })).rejects.toThrow(
      /no index.html/,
    );
    await app.close();
  });

  it('serves uPlot from its npm package, nothing else of it', async () => {
    const app = Fastify();
    await app.register(dashboardPlugin);
    const js = await app.inject({ method: 'GET', url: '/vendor/uPlot.esm.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toContain('export');
    const again = await app.inject({
      method: 'GET',
      url: '/vendor/uPlot.esm.js',
      headers: { 'if-none-match': String(js.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
    expect((await app.inject({ method: 'GET', url: '/vendor/uPlot.min.css' })).headers['content-type']).toBe(
      'text/css; charset=utf-8',
    );
    expect((await app.inject({ method: 'GET', url: '/vendor/uPlot.cjs.js' })).statusCode).toBe(404);
    await app.close();
  });
});
