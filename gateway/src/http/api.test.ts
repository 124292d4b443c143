import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';

const json = { 'content-type': 'application/json' };
const newVm = { name: 'browse', mac: '52:54:00:00:00:03', ipv4: '10.20.0.13', profile: 'internet-only' };

describe('the API', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
    vi.restoreAllMocks();
  });

  it('answers health', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', store: 'ok', vms: 2, quarantined: 1 });
  });

  it('answers unknown routes with 404 NOT_FOUND', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ code: 'NOT_FOUND', message: 'no route GET /api/v1/nope' });
  });

  describe('errors', () => {
    it('answers a body that is not JSON with REQUEST_INVALID at /body', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        headers: json,
        payload: '{"name": "x",',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body' });
    });

    it('answers a missing body', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms' });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        code: 'REQUEST_INVALID',
        message: 'the request needs a JSON body',
        path: '/body',
      });
    });

    it('answers an unsupported content type with 415', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        headers: { 'content-type': 'text/csv' },
        payload: 'a,b',
      });
      expect(res.statusCode).toBe(415);
      expect(res.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', path: '/headers/content-type' });
    });

    it('answers a body over the limit with 413', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        headers: json,
        payload: JSON.stringify({ notes: 'x'.repeat(2 * 1024 * 1024) }),
      });
      expect(res.statusCode).toBe(413);
      expect(res.json()).toMatchObject({ code: 'REQUEST_TOO_LARGE' });
    });

    it('names the field a schema refuses: body, query and params', async () => {
      const mac = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        payload: { ...newVm, mac: 'zz:zz' },
      });
      expect(mac.statusCode).toBe(400);
      expect(mac.json()).toEqual({
        code: 'REQUEST_INVALID',
        message: '/body/mac: "zz:zz" is not valid: MAC address, six colon-separated hex pairs',
        path: '/body/mac',
      });
      const extra = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        payload: { ...newVm, colour: 'red' },
      });
      expect(extra.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/colour' });
      const query = await t.app.inject({ method: 'GET', url: '/api/v1/audit?limit=lots' });
      expect(query.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/query/limit' });
      const params = await t.app.inject({ method: 'GET', url: '/api/v1/vms/Not_A_Name' });
      expect(params.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/params/name' });
    });

    it('hides internal errors behind INTERNAL', async () => {
      vi.spyOn(t.store.audit, 'list').mockImplementation(() => {
        throw new Error('SQLITE_CORRUPT: secret detail');
      });
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/audit' });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({
        code: 'INTERNAL',
        message: 'internal error; the service log has the details',
      });
    });

    it('answers an enforcer failure with NFT_APPLY_FAILED and changes nothing', async () => {
      t.enforcer.fail = new Error('nft said no');
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: newVm });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toMatchObject({ code: 'NFT_APPLY_FAILED' });
      expect(t.store.policy.vm('browse')).toBeUndefined();
    });

    it('counts rejected requests by code', async () => {
      await t.app.inject({ method: 'GET', url: '/api/v1/nope' });
      await t.app.inject({ method: 'GET', url: '/api/v1/vms/ghost' });
      await t.app.inject({ method: 'GET', url: '/api/v1/vms/ghost' });
      await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: {} });
      const text = await t.registry.metrics();
      expect(text).toContain('portcullis_api_requests_rejected_total{code="NOT_FOUND"} 1');
      expect(text).toContain('portcullis_api_requests_rejected_total{code="VM_NOT_FOUND"} 2');
      expect(text).toContain('portcullis_api_requests_rejected_total{code="REQUEST_INVALID"} 1');
    });
  });

  describe('audit actor', () => {
    it('records who made the change and why', async () => {
      await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        headers: {
          'x-portcullis-actor': 'cli:alice',
          'x-portcullis-reason': encodeURIComponent('new VM for Bob'),
        },
        payload: newVm,
      });
      expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        actor: 'api:cli:alice',
        reason: 'new VM for Bob',
        action: 'vm.add',
      });
    });

    it('refuses a malformed actor', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms',
        headers: { 'x-portcullis-actor': 'sweeper; DROP' },
        payload: newVm,
      });
      expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/headers/x-portcullis-actor' });
    });
  });

  describe('audit log', () => {
    it('pages newest first and filters', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: newVm });
      await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms/browse/quarantine',
        payload: { reason: 'test' },
      });
      const first = await t.app.inject({ method: 'GET', url: '/api/v1/audit?limit=1' });
      expect(first.statusCode).toBe(200);
      const page = first.json<{ items: { action: string }[]; nextBefore: number }>();
      expect(page.items.map((i) => i.action)).toEqual(['vm.quarantine']);
      const second = await t.app.inject({
        method: 'GET',
        url: `/api/v1/audit?limit=1&before=${page.nextBefore}`,
      });
      expect(second.json<{ items: { action: string }[] }>().items.map((i) => i.action)).toEqual(['vm.add']);
      const filtered = await t.app.inject({
        method: 'GET',
        url: '/api/v1/audit?target=vm/browse&action=vm.add',
      });
      expect(filtered.json<{ items: unknown[] }>().items).toHaveLength(1);
    });
  });

  describe('OpenAPI document', () => {
    it('describes every route with schemas and named components', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
      expect(res.statusCode).toBe(200);
      const doc = res.json<{
        openapi: string;
        info: { title: string };
        paths: Record<
          string,
          Record<
            string,
            {
              operationId: string;
              requestBody?: unknown;
              responses: Record<string, unknown>;
              security?: unknown;
              parameters?: { name: string; in: string }[];
            }
          >
        >;
        components: { schemas: Record<string, unknown> };
      }>();
      expect(doc.openapi).toBe('3.1.0');
      expect(doc.info.title).toBe('Portcullis API');
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/api/v1/health',
          '/api/v1/vms',
          '/api/v1/vms/{name}',
          '/api/v1/vms/{name}/quarantine',
          '/api/v1/vms/{name}/rules',
          '/api/v1/vms/{name}/rules/{id}',
          '/api/v1/profiles',
          '/api/v1/profiles/{name}',
          '/api/v1/schedules/{name}',
          '/api/v1/policy',
          '/api/v1/settings',
          '/api/v1/audit',
          '/api/v1/access-requests',
          '/api/v1/access-requests/{id}/approve',
        ]),
      );
      expect(doc.paths['/api/v1/openapi.json']).toBeUndefined();
      const addVm = doc.paths['/api/v1/vms']!.post!;
      expect(addVm.requestBody).toEqual({
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/VmInput' } } },
      });
      expect(addVm.responses['201']).toMatchObject({
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Vm' } } },
      });
      expect(addVm.security).toEqual([{ bearer: [] }, { session: [], csrf: [] }]);
      expect(doc.paths['/api/v1/vms']!.get!.security).toEqual([{ bearer: [] }, { session: [] }]);
      expect(doc.paths['/api/v1/health']!.get!.security).toBeUndefined();
      expect(doc.paths['/api/v1/access-requests']!.post!.security).toBeUndefined();
      expect(doc.paths['/api/v1/vms/{name}']!.get!.parameters).toEqual([
        expect.objectContaining({ name: 'name', in: 'path', required: true }),
      ]);
      expect(doc.paths['/api/v1/policy']!.put!.requestBody).toMatchObject({
        content: { 'application/yaml': { schema: { type: 'string' } } },
      });
      expect(Object.keys(doc.components.schemas)).toEqual(
        expect.arrayContaining(['Vm', 'Profile', 'Rule', 'Schedule', 'Policy', 'Error']),
      );
      const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
      expect(new Set(ids).size).toBe(ids.length);
      // every $ref resolves
      const refs = JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
      expect(refs.length).toBeGreaterThan(10);
      for (const ref of refs)
        expect(doc.components.schemas[ref.split('/').at(-1)!.replace('"', '')]).toBeDefined();
      // the Vm component refers to Rule rather than repeating it
      expect(JSON.stringify(doc.components.schemas.Vm)).toContain('#/components/schemas/Rule');
    });
  });
});

describe('the API with a token', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi({ token: 's3cret' });
  });
  afterEach(async () => {
    await t.close();
  });

  it('refuses changes without the token', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: newVm });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.json()).toMatchObject({ code: 'UNAUTHORIZED', path: '/headers/authorization' });
    const wrong = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/vms/kid/quarantine',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
    expect(t.store.policy.vm('browse')).toBeUndefined();
  });

  it('accepts changes with the token, and reads without', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms',
      headers: { authorization: 'Bearer s3cret' },
      payload: newVm,
    });
    expect(res.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/vms' })).statusCode).toBe(200);
  });

  it('lets the block page ask for access without the token', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests',
      payload: { vm: 'kid', domain: 'games.example' },
    });
    expect(res.statusCode).toBe(201);
    const approve = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests/1/approve',
      payload: { always: true },
    });
    expect(approve.statusCode).toBe(401);
  });
});
