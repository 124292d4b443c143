import { afterEach, describe, expect, it } from 'vitest';
import type { ClientPolicy, Verdict } from '../dns/model.js';
import { QueryLog } from '../dns/query-log.js';
import { dnsRoutes, type DnsQueries } from './dns.js';
import { makeTestApi, type TestApi } from './test-app.js';

/** The routes over a real QueryLog; verdicts from a table (the matcher has its own tests). */
function makeDns(): DnsQueries & { log: QueryLog; asked: { name: string; client: string }[] } {
  const log = new QueryLog(10);
  const asked: { name: string; client: string }[] = [];
  return {
    log,
    asked,
    queryLog: (client, options) => log.get(client, options),
    verdict: (name: string, policy: ClientPolicy): Verdict => {
      asked.push({ name, client: policy.client });
      return name.endsWith('roblox.com')
        ? { action: 'block', reason: { kind: 'category', list: 'games', entry: 'roblox.com' } }
        : { action: 'allow' };
    },
  };
}

describe('/api/v1/vms/:name/queries and /dns-check', () => {
  let t: TestApi;
  afterEach(async () => t.close());

  async function setup(): Promise<ReturnType<typeof makeDns>> {
    const dns = makeDns();
    const clients = new Map<string, ClientPolicy>([['kid', { client: 'kid', categories: ['games'] }]]);
    t = await makeTestApi({
      plugins: [async (app) => app.register(dnsRoutes, { dns, client: (vm) => clients.get(vm) })],
    });
    return dns;
  }

  it("returns a VM's query log, newest first, limited", async () => {
    const dns = await setup();
    dns.log.record(
      'kid',
      Date.parse('2026-03-01T12:00:00Z'),
      'example.org',
      'A',
      'allow',
      undefined,
      ['203.0.113.10'],
      12.34,
      false,
    );
    dns.log.record(
      'kid',
      Date.parse('2026-03-01T12:00:01Z'),
      'roblox.com',
      'A',
      'block',
      { kind: 'category', list: 'games', entry: 'roblox.com' },
      ['10.20.0.1'],
      undefined,
      false,
    );
    dns.log.record(
      'other',
      Date.parse('2026-03-01T12:00:02Z'),
      'x.test',
      'A',
      'allow',
      undefined,
      [],
      undefined,
      true,
    );
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid/queries' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      vm: 'kid',
      entries: [
        {
          time: '2026-03-01T12:00:01.000Z',
          name: 'roblox.com',
          type: 'A',
          action: 'block',
          reason: { kind: 'category', list: 'games', entry: 'roblox.com' },
          answers: ['10.20.0.1'],
          cached: false,
        },
        {
          time: '2026-03-01T12:00:00.000Z',
          name: 'example.org',
          type: 'A',
          action: 'allow',
          answers: ['203.0.113.10'],
          upstreamMs: 12.3,
          cached: false,
        },
      ],
    });
    const one = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid/queries?limit=1' });
    expect(one.json<{ entries: unknown[] }>().entries).toHaveLength(1);
  });

  it('says whether a name is blocked for a VM now, and why', async () => {
    const dns = await setup();
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid/dns-check?name=WWW.Roblox.com.' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      vm: 'kid',
      name: 'www.roblox.com',
      action: 'block',
      reason: { kind: 'category', list: 'games', entry: 'roblox.com' },
    });
    expect(dns.asked).toEqual([{ name: 'www.roblox.com', client: 'kid' }]);
  });

  it.each([
    ['/api/v1/vms/ghost/queries', 404, 'VM_NOT_FOUND', '/params/name'],
    ['/api/v1/vms/kid/queries?limit=0', 400, 'REQUEST_INVALID', '/query/limit'],
    ['/api/v1/vms/kid/queries?since=1', 400, 'REQUEST_INVALID', '/query/since'],
    ['/api/v1/vms/kid/dns-check', 400, 'REQUEST_INVALID', '/query/name'],
    ['/api/v1/vms/kid/dns-check?name=bad%20name', 400, 'REQUEST_INVALID', '/query/name'],
  ])('GET %s → %i %s naming %s', async (url, status, code, path) => {
    await setup();
    const res = await t.app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ code, path });
  });
});
