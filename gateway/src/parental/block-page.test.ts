import { request } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../store/store.js';
import { AccessRequestIntake } from './access-requests.js';
import { BlockPageServer } from './block-page.js';

describe('BlockPageServer "ask a parent"', () => {
  let store: Store;
  let registry: Registry;
  let server: BlockPageServer;
  let base: string;
  beforeEach(async () => {
    store = Store.open({ path: ':memory:' });
    registry = new Registry();
    const intake = new AccessRequestIntake({ store, registry, limits: { burst: 2, perHour: 1 } });
    server = new BlockPageServer({
      address: '127.0.0.1',
      port: 0,
      explain: () => ({ vm: 'kid', reason: 'games are blocked' }),
      intake,
    });
    await server.start();
    base = `http://127.0.0.1:${server.port}`;
  });
  afterEach(async () => {
    await server.stop();
    store.close();
  });

  /** One HTTP request with this Host header (fetch does not let a caller set it). */
  function http(
    method: string,
    path: string,
    host: string,
    body?: string,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${base}${path}`, { method, headers: { host } }, (res) => {
        let text = '';
        res.on('data', (b: Buffer) => (text += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The block page for `host`, as a browser would load it; returns the form's fields. */
  async function load(host: string): Promise<URLSearchParams> {
    const html = (await http('GET', '/', host)).text;
    const form = new URLSearchParams();
    for (const m of html.matchAll(/<input type="hidden" name="(\w+)" value="([^"]*)">/g)) {
      form.set(
        m[1]!,
        m[2]!.replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c))),
      );
    }
    return form;
  }
  const post = (host: string, form: URLSearchParams) =>
    http('POST', '/.portcullis/ask', host, form.toString());

  it("shows the page for the name in /.portcullis/blocked?host= (Suricata's redirect), whatever the Host", async () => {
    const page = await http('GET', '/.portcullis/blocked?host=Games.Example', '127.0.0.1');
    expect(page.status).toBe(403);
    expect(page.text).toContain('<title>games.example is blocked</title>');
    expect(page.text).toContain('name="domain" value="games.example"');
    // and its form asks for that name
    const form = new URLSearchParams();
    for (const m of page.text.matchAll(/<input type="hidden" name="(\w+)" value="([^"]*)">/g))
      form.set(
        m[1]!,
        m[2]!.replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c))),
      );
    expect((await post('127.0.0.1', form)).status).toBe(201);
    expect(store.accessRequests.pendingFor('kid')).toMatchObject([{ domain: 'games.example' }]);
    // no name, or not a domain name: the request's own Host, as for any path
    for (const q of ['', '?host=', '?host=10.0.0.1', '?host=a%20b', '?host=%3Cscript%3E']) {
      const r = await http('GET', `/.portcullis/blocked${q}`, 'chat.example');
      expect(r.text, q).toContain('<title>chat.example is blocked</title>');
    }
  });

  it('records a request posted from the page it showed', async () => {
    const form = await load('games.example');
    expect(form.get('token')).toMatch(/^[0-9a-z]+\.[\w-]{32}$/);
    form.set('reason', 'homework');
    const res = await post('games.example', form);
    expect(res.status).toBe(201);
    expect(store.accessRequests.pendingFor('kid')).toMatchObject([
      { domain: 'games.example', reason: 'homework' },
    ]);
  });

  it('refuses a post without the token of a page about that domain, and counts it', async () => {
    const noToken = new URLSearchParams({ domain: 'games.example', url: 'http://games.example/' });
    expect((await post('games.example', noToken)).status).toBe(403);
    const other = await load('games.example');
    other.set('domain', 'chat.example');
    expect((await post('games.example', other)).status).toBe(403);
    expect(store.accessRequests.pendingFor('kid')).toHaveLength(0);
    const m = await registry.getSingleMetric('portcullis_access_requests_total')!.get();
    expect(m.values.find((v) => v.labels.result === 'csrf')?.value).toBe(2);
  });

  it('applies the same limits as the API: a flood of names is rate limited', async () => {
    const statuses: number[] = [];
    for (const d of ['a', 'b', 'c', 'd'])
      statuses.push((await post(`${d}.example`, await load(`${d}.example`))).status);
    expect(statuses).toEqual([201, 201, 429, 429]);
    expect(store.accessRequests.pendingFor('kid')).toHaveLength(2);
  });

  it('refuses what is not a domain', async () => {
    const form = await load('10.0.0.1');
    expect((await post('10.0.0.1', form)).status).toBe(400);
  });
});
