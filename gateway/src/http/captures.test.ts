import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CaptureService } from '../capture/service.js';
import { FakeTcpdump } from '../capture/test-fakes.js';
import { captureRoutes, PCAP_TYPE } from './captures.js';
import { makeTestApi, type TestApi } from './test-app.js';

let dir: string;
let api: TestApi;
let captures: CaptureService;
let spawner: FakeTcpdump;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'captures-route-'));
  spawner = new FakeTcpdump();
  // the API is made below: the service reaches its policy and store through it
  captures = new CaptureService({
    dir,
    lanIface: 'lan0',
    policy: () => api.policy.current(),
    alerts: { get: (id) => api.store.alerts.get(id) },
    audit: (e) => api.store.record(e),
    spawner,
    pollMs: 20,
    registry: new Registry(),
  });
  await captures.start();
  api = await makeTestApi({
    plugins: [
      async (scope) => {
        await scope.register(captureRoutes, { captures });
      },
    ],
  });
});

afterEach(async () => {
  await captures.stop();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('/captures', () => {
  it('starts a capture of a VM, lists it, and serves its pcap once it has ended', async () => {
    const started = await api.app.inject({
      method: 'POST',
      url: '/api/v1/captures',
      payload: { vm: 'kid', seconds: 1 },
      headers: { 'x-portcullis-actor': 'ops' },
    });
    expect(started.statusCode).toBe(201);
    const c = started.json<{ id: string; state: string; filter: string }>();
    expect(c).toMatchObject({ state: 'running', filter: 'ether host 52:54:00:00:00:01', actor: 'api:ops' });
    expect(started.headers.location).toBe(`captures/${c.id}.pcap`);

    // still running: no download yet
    const early = await api.app.inject({ method: 'GET', url: `/api/v1/captures/${c.id}.pcap` });
    expect(early.statusCode).toBe(409);
    await captures.ended(c.id);

    const list = await api.app.inject({ method: 'GET', url: '/api/v1/captures' });
    expect(list.json()).toMatchObject([{ id: c.id, state: 'done', packets: 3, reason: 'time' }]);
    const one = await api.app.inject({ method: 'GET', url: `/api/v1/captures/${c.id}` });
    expect(one.json()).toMatchObject({ id: c.id, state: 'done' });

    const pcap = await api.app.inject({ method: 'GET', url: `/api/v1/captures/${c.id}.pcap` });
    expect(pcap.statusCode).toBe(200);
    expect(pcap.headers['content-type']).toBe(PCAP_TYPE);
    expect(pcap.headers['content-disposition']).toBe(`attachment; filename="portcullis-${c.id}.pcap"`);
    expect(pcap.rawPayload.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(pcap.rawPayload.length).toBe(24 + 3 * 76);

    const audit = api.store.audit.list({ action: 'capture.start' }).items;
    expect(audit.map((e) => [e.actor, e.target])).toEqual([['api:ops', `capture/${c.id}`]]);
    expect(api.store.audit.list({ action: 'capture.download' }).items).toHaveLength(1);

    expect((await api.app.inject({ method: 'DELETE', url: `/api/v1/captures/${c.id}` })).statusCode).toBe(
      204,
    );
    const gone = await api.app.inject({ method: 'GET', url: `/api/v1/captures/${c.id}.pcap` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ code: 'CAPTURE_NOT_FOUND' });
  });

  it("captures an alert's flow", async () => {
    const alert = api.store.alerts.add({
      at: '2026-03-01T12:00:00.000Z',
      vm: 'kid',
      src: '10.0.0.10',
      dest: '203.0.113.10',
      signature: 'ET TEST',
    });
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/captures',
      payload: { alertId: alert.id },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      alertId: alert.id,
      seconds: 60,
      filter: 'ether host 52:54:00:00:00:01 and host 10.0.0.10 and host 203.0.113.10',
    });
  });

  it('refuses bad requests with the code and the field', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ vm: 'kid', seconds: 0 }, 400, 'REQUEST_INVALID'],
      [{ vm: 'kid', seconds: 301 }, 400, 'REQUEST_INVALID'],
      [{ vm: 'kid', seconds: 5, maxBytes: 10 }, 400, 'REQUEST_INVALID'],
      [{ vm: 'kid', seconds: 5, filter: 'port 22' }, 400, 'REQUEST_INVALID'],
      [{ vm: 'nobody', seconds: 5 }, 404, 'VM_NOT_FOUND'],
      [{ alertId: 999 }, 404, 'NOT_FOUND'],
    ];
    for (const [payload, status, code] of cases) {
      const res = await api.app.inject({
        method: 'POST',
        url: '/api/v1/captures',
        payload: payload as object,
      });
      expect([res.statusCode, res.json<{ code: string }>().code], JSON.stringify(payload)).toEqual([
        status,
        code,
      ]);
    }
    expect(spawner.calls).toHaveLength(0);
    expect(
      (await api.app.inject({ method: 'GET', url: '/api/v1/captures/../../etc/passwd.pcap' })).statusCode,
    ).toBe(404);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
      paths: Record<string, Record<string, unknown>>;
    }>();
    expect(Object.keys(doc.paths['/api/v1/captures'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/api/v1/captures/{id}'] ?? {}).sort()).toEqual(['delete', 'get']);
  });
});
