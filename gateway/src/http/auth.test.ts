import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../app.js';
import { hashPassword } from '../auth/password.js';
import { DB_FILE, readBackup } from '../backup/backup.js';
import type { Config } from '../config.js';
import { EventBus } from '../events.js';
import { silentLogger } from '../log.js';
import type { NftBackend } from '../nft/backend.js';
import { Store } from '../store/store.js';
import { makePolicy } from '../store/test-fixtures.js';

/**
 * The management listener's gate, through the service as `buildApp` wires it: Host and
 * Origin checks, logins with sessions and CSRF, API tokens, roles and a parent's scope.
 */

const nft: NftBackend = {
  kind: 'nft-cli',
  run: async () => '',
  runText: async () => '{"nftables":[]}',
  close: () => undefined,
};

const HOST = { host: '10.99.0.2:8443' };
const PASSWORD = 'a long enough password';
const CONFIG_TOKEN = 'the-config-files-admin-token-0123';

describe('the management gate', { timeout: 60_000 }, () => {
  let dir: string;
  let store: Store;
  let app: App;
  let admin: string;
  let viewer: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-auth-'));
    store = Store.open({ path: join(dir, DB_FILE) });
    store.replacePolicy(makePolicy(), 'seed');
    const hash = await hashPassword(PASSWORD);
    store.auth.addUser({ name: 'root', role: 'admin', passwordHash: hash }, 'test');
    store.auth.addUser({ name: 'mum', role: 'parent', people: ['alice'], passwordHash: hash }, 'test');
    admin = store.auth.createToken({ name: 'script', role: 'admin' }, 'test').token;
    viewer = store.auth.createToken({ name: 'prometheus', role: 'viewer' }, 'test').token;
    const config: Config = {
      network: {
        lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
        wan: { iface: 'wan0' },
        mgmt: { iface: 'mgmt0', ports: [8443] },
        blockPagePort: 0,
      },
      api: {
        listen: '10.99.0.2',
        port: 8443,
        names: ['gateway.home.arpa'],
        token: CONFIG_TOKEN,
        loginLimits: { perAddress: 8, failuresPerUser: 3 },
      },
      dns: { listen: ['127.0.0.1'], port: 0, upstream: ['127.0.0.1'] },
      dhcp: { enabled: false, leaseTime: '12h' },
      dataDir: dir,
      nft: { backend: 'nft-cli', driftInterval: 0 },
    };
    app = await buildApp(config, { log: silentLogger, nft, store, events: new EventBus() });
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (o: InjectOptions): Promise<LightMyRequestResponse> =>
    app.http.inject({ ...o, headers: { ...HOST, ...(o.headers as Record<string, string>) } });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  /** Log in; the session cookie and CSRF token to send along. */
  async function login(user: string, address = '10.99.0.1') {
    const res = await send({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { user, password: PASSWORD },
      remoteAddress: address,
    });
    expect(res.statusCode, res.body).toBe(200);
    const cookie = res.cookies.find((c) => c.name === 'portcullis-session')!;
    const csrf = res.cookies.find((c) => c.name === 'portcullis-csrf')!;
    return {
      body: res.json<{ csrfToken: string; role: string; vms?: string[] }>(),
      setCookie: cookie,
      headers: { cookie: `portcullis-session=${cookie.value}; portcullis-csrf=${csrf.value}` },
    };
  }

  it('answers only to its own names and addresses: a rebound name gets 421', async () => {
    const forged = await app.http.inject({
      method: 'GET',
      url: '/api/v1/health',
      headers: { host: 'evil.example:8443' },
    });
    expect(forged.statusCode).toBe(421);
    expect(forged.json()).toMatchObject({ code: 'MISDIRECTED_REQUEST', path: '/headers/host' });
    // the dashboard's page too
    expect(
      (await app.http.inject({ method: 'GET', url: '/', headers: { host: 'evil.example' } })).statusCode,
    ).toBe(421);
    for (const host of ['10.99.0.2:8443', 'gateway.home.arpa', '127.0.0.1:8080'])
      expect(
        (await app.http.inject({ method: 'GET', url: '/api/v1/health', headers: { host } })).statusCode,
        host,
      ).toBe(200);
  });

  it('refuses a request from another site, even with a valid token', async () => {
    const pause = { method: 'POST' as const, url: '/api/v1/vms/kid/pause', payload: {} };
    const cross = await send({ ...pause, headers: { ...bearer(admin), origin: 'https://evil.example' } });
    expect(cross.statusCode).toBe(403);
    expect(cross.json()).toMatchObject({ code: 'FORBIDDEN', path: '/headers/origin' });
    expect(store.loadPolicy().vms.find((v) => v.name === 'kid')!.pause).toBeUndefined();
    const fetchSite = await send({ ...pause, headers: { ...bearer(admin), 'sec-fetch-site': 'cross-site' } });
    expect(fetchSite.statusCode).toBe(403);
    // positive control: same origin
    const same = await send({ ...pause, headers: { ...bearer(admin), origin: 'http://10.99.0.2:8443' } });
    expect(same.statusCode, same.body).toBe(200);
    await send({ method: 'DELETE', url: '/api/v1/vms/kid/pause', headers: bearer(admin) });
  });

  it('needs a session or a token for private data; the login, health and a guest request stay open', async () => {
    for (const url of [
      '/api/v1/vms/kid/queries',
      '/api/v1/audit',
      '/api/v1/alerts',
      '/api/v1/policy',
      '/api/v1/vms',
      '/metrics',
    ]) {
      const res = await send({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toMatchObject({ code: 'UNAUTHORIZED' });
    }
    expect((await send({ method: 'GET', url: '/api/v1/health' })).statusCode).toBe(200);
    expect((await send({ method: 'GET', url: '/' })).statusCode).toBe(200);
    const ask = await send({
      method: 'POST',
      url: '/api/v1/access-requests',
      payload: { vm: 'kid', domain: 'homework.example' },
    });
    expect(ask.statusCode).toBe(201);
    expect(
      (
        await send({
          method: 'GET',
          url: '/api/v1/audit',
          headers: bearer('pcl_000000000000_' + 'A'.repeat(43)),
        })
      ).statusCode,
    ).toBe(401);
  });

  it('lets a viewer token read everything and change nothing; /metrics too', async () => {
    expect((await send({ method: 'GET', url: '/api/v1/audit', headers: bearer(viewer) })).statusCode).toBe(
      200,
    );
    expect((await send({ method: 'GET', url: '/metrics', headers: bearer(viewer) })).body).toContain(
      'portcullis_logins_total',
    );
    const change = await send({
      method: 'POST',
      url: '/api/v1/vms/kid/pause',
      payload: {},
      headers: bearer(viewer),
    });
    expect(change.statusCode).toBe(403);
    expect(change.json()).toMatchObject({ code: 'FORBIDDEN' });
  });

  it('logs in with a secure-by-default session cookie; changes need the CSRF token', async () => {
    const s = await login('root');
    expect(s.setCookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(s.body).toMatchObject({ name: 'root', role: 'admin', via: 'session' });
    expect((await send({ method: 'GET', url: '/api/v1/audit', headers: s.headers })).statusCode).toBe(200);

    const rule = { action: 'drop', to: { cidr: '198.51.100.0/24' }, comment: 'from a session' };
    const noCsrf = await send({
      method: 'POST',
      url: '/api/v1/vms/work/rules',
      payload: rule,
      headers: s.headers,
    });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json()).toMatchObject({ code: 'FORBIDDEN', path: '/headers/x-csrf-token' });
    const wrong = await send({
      method: 'POST',
      url: '/api/v1/vms/work/rules',
      payload: rule,
      headers: { ...s.headers, 'x-csrf-token': (await login('root')).body.csrfToken },
    });
    expect(wrong.statusCode).toBe(403);
    const ok = await send({
      method: 'POST',
      url: '/api/v1/vms/work/rules',
      payload: rule,
      headers: { ...s.headers, 'x-csrf-token': s.body.csrfToken, 'x-portcullis-actor': 'somebody-else' },
    });
    expect(ok.statusCode, ok.body).toBe(201);
    // the audit log names who logged in, not the header
    expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({ actor: 'user:root', action: 'rule.add' });
  });

  it('logs out here, and everywhere', async () => {
    const a = await login('root');
    const b = await login('root');
    const me = (h: Record<string, string>) => send({ method: 'GET', url: '/api/v1/auth/me', headers: h });
    expect((await me(a.headers)).statusCode).toBe(200);
    const out = await send({
      method: 'POST',
      url: '/api/v1/auth/logout',
      headers: { ...a.headers, 'x-csrf-token': a.body.csrfToken },
    });
    expect(out.statusCode).toBe(204);
    expect((await me(a.headers)).statusCode).toBe(401);
    expect((await me(b.headers)).statusCode).toBe(200);
    const c = await login('root');
    const all = await send({
      method: 'POST',
      url: '/api/v1/auth/logout-everywhere',
      headers: { ...c.headers, 'x-csrf-token': c.body.csrfToken },
    });
    expect(all.json<{ ended: number }>().ended).toBeGreaterThanOrEqual(2);
    expect((await me(b.headers)).statusCode).toBe(401);
    expect((await me(c.headers)).statusCode).toBe(401);
  });

  it('scopes a parent to the VMs of the people they look after', async () => {
    const s = await login('mum');
    expect(s.body).toMatchObject({ role: 'parent', vms: ['kid'] });
    const h = { ...s.headers, 'x-csrf-token': s.body.csrfToken };
    const vms = await send({ method: 'GET', url: '/api/v1/vms', headers: h });
    expect(vms.json<Array<{ name: string }>>().map((v) => v.name)).toEqual(['kid']);
    expect((await send({ method: 'GET', url: '/api/v1/vms/work', headers: h })).statusCode).toBe(403);
    expect((await send({ method: 'GET', url: '/api/v1/vms/work/queries', headers: h })).statusCode).toBe(403);
    expect((await send({ method: 'GET', url: '/api/v1/vms/kid/queries', headers: h })).statusCode).toBe(200);
    expect((await send({ method: 'GET', url: '/api/v1/audit', headers: h })).statusCode).toBe(403);
    expect((await send({ method: 'GET', url: '/api/v1/policy', headers: h })).statusCode).toBe(403);
    expect(
      (
        await send({
          method: 'POST',
          url: '/api/v1/vms/kid/quarantine',
          payload: { reason: 'nope' },
          headers: h,
        })
      ).statusCode,
    ).toBe(403);

    const paused = await send({
      method: 'POST',
      url: '/api/v1/vms/kid/pause',
      payload: { minutes: 30 },
      headers: h,
    });
    expect(paused.statusCode, paused.body).toBe(200);
    expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({ actor: 'user:mum', action: 'vm.pause' });
    expect(
      (await send({ method: 'POST', url: '/api/v1/vms/work/pause', payload: {}, headers: h })).statusCode,
    ).toBe(403);
    expect(store.loadPolicy().vms.find((v) => v.name === 'work')!.pause).toBeUndefined();

    // access requests: their VM's only, in the list and to decide
    const theirs = store.accessRequests.create({ vm: 'kid', domain: 'maths.example' }, 'guest:kid');
    const other = store.accessRequests.create({ vm: 'work', domain: 'jobs.example' }, 'guest:work');
    const list = await send({ method: 'GET', url: '/api/v1/access-requests', headers: h });
    expect(list.json<Array<{ vm: string }>>().every((r) => r.vm === 'kid')).toBe(true);
    expect(
      (
        await send({
          method: 'POST',
          url: `/api/v1/access-requests/${other.id}/approve`,
          payload: { minutes: 5 },
          headers: h,
        })
      ).statusCode,
    ).toBe(403);
    const approved = await send({
      method: 'POST',
      url: `/api/v1/access-requests/${theirs.id}/approve`,
      payload: { minutes: 5 },
      headers: h,
    });
    expect(approved.json()).toMatchObject({ status: 'approved', decidedBy: 'user:mum' });

    // schedules: only those of their VMs
    const schedule = {
      name: 'homework',
      vms: ['kid'],
      timezone: 'UTC',
      windows: [{ days: ['mon'], start: '16:00', end: '18:00' }],
      mode: 'deny',
    };
    expect(
      (await send({ method: 'POST', url: '/api/v1/schedules', payload: schedule, headers: h })).statusCode,
    ).toBe(201);
    expect(
      (
        await send({
          method: 'POST',
          url: '/api/v1/schedules',
          payload: { ...schedule, name: 'both', vms: ['kid', 'work'] },
          headers: h,
        })
      ).statusCode,
    ).toBe(403);
  });

  it('limits logins per user name and per address', async () => {
    const attempt = (user: string, password: string, address: string) =>
      send({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { user, password },
        remoteAddress: address,
      });
    for (let i = 0; i < 3; i++)
      expect((await attempt('mum', 'not the password', `10.0.0.${i + 1}`)).statusCode).toBe(401);
    // the right password, from yet another address: refused while the user's window lasts
    const limited = await attempt('mum', PASSWORD, '10.0.0.9');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED', path: '/body/user' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // another user is not affected (positive control)
    expect((await attempt('root', PASSWORD, '10.0.0.10')).statusCode).toBe(200);
    // one address: 8 attempts a minute, whatever the names
    const codes: number[] = [];
    for (let i = 0; i < 9; i++) codes.push((await attempt(`nobody${i}`, 'x', '10.0.1.1')).statusCode);
    expect(codes.slice(0, 8).every((c) => c === 401)).toBe(true);
    expect(codes[8]).toBe(429);
  });

  it('gives backups and restores to admins only, whether by session, API token or the config token', async () => {
    // from an address of its own: the login limits are tested apart
    const s = await login('root', '10.99.0.7');
    const parent = bearer(
      store.auth.createToken({ name: 'mum-script', role: 'parent', people: ['alice'] }, 'test').token,
    );
    const asAdmin = [s.headers, bearer(admin), bearer(CONFIG_TOKEN)];
    for (const headers of asAdmin) {
      const res = await send({ method: 'GET', url: '/api/v1/backup', headers });
      expect(res.statusCode, res.body).toBe(200);
      expect(readBackup(res.rawPayload).schemaVersion).toBeGreaterThan(0);
    }
    for (const headers of [bearer(viewer), parent]) {
      const res = await send({ method: 'GET', url: '/api/v1/backup', headers });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'FORBIDDEN' });
    }
    expect((await send({ method: 'GET', url: '/api/v1/backup' })).statusCode).toBe(401);
    // a restore: the gate lets the admin's session (with its CSRF token) through to the file check
    const restore = (headers: Record<string, string>) =>
      send({
        method: 'POST',
        url: '/api/v1/backup/restore',
        headers: { ...headers, 'content-type': 'application/gzip' },
        payload: Buffer.from('not a backup'),
      });
    const bad = await restore({ ...s.headers, 'x-csrf-token': s.body.csrfToken });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'BACKUP_INVALID' });
    expect((await restore(parent)).statusCode).toBe(403);
    expect((await restore(bearer(viewer))).statusCode).toBe(403);
  });

  it('stops honouring a revoked token at once', async () => {
    const { token, record } = store.auth.createToken({ name: 'short-lived', role: 'viewer' }, 'test');
    expect((await send({ method: 'GET', url: '/api/v1/audit', headers: bearer(token) })).statusCode).toBe(
      200,
    );
    store.auth.revokeToken(record.id, 'test');
    expect((await send({ method: 'GET', url: '/api/v1/audit', headers: bearer(token) })).statusCode).toBe(
      401,
    );
  });
});
