import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';

describe('/api/v1/vms/:name/rules', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('lists and shows rules', async () => {
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid/rules' });
    expect(list.json<{ id: string }[]>().map((r) => r.id)).toEqual(['r1', 'r2']);
    const one = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid/rules/r2' });
    expect(one.json()).toEqual({
      id: 'r2',
      action: 'accept',
      to: { domain: 'example.org' },
      comment: 'homework',
    });
  });

  it('adds a rule with a generated id, at the end or at a position', async () => {
    const rule = {
      action: 'drop',
      to: { cidr: '203.0.113.0/25' },
      proto: 'tcp',
      ports: ['80', '443'],
      expires: '2026-12-01T00:00:00Z',
    };
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms/kid/rules', payload: rule });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: 'gen-1', ...rule });
    const first = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/rules?position=0',
      payload: { id: 'dns', action: 'accept', to: { special: 'dns' } },
    });
    expect(first.statusCode).toBe(201);
    expect(t.store.policy.rules({ vm: 'kid' }).map((r) => r.id)).toEqual(['dns', 'r1', 'r2', 'gen-1']);
  });

  it('names the field of a bad rule', async () => {
    const cases: [unknown, string, string][] = [
      [{ action: 'drop', to: { cidr: '203.0.113.1/24' } }, 'POLICY_INVALID', '/body/to/cidr'],
      [{ action: 'drop', to: { cidr: 5 } }, 'REQUEST_INVALID', '/body/to/cidr'],
      [{ action: 'drop', to: { colour: 'red' } }, 'REQUEST_INVALID', '/body/to'],
      [{ action: 'explode', to: { special: 'dns' } }, 'REQUEST_INVALID', '/body/action'],
      [{ action: 'drop', to: { domain: 'x.example' }, ports: ['80'] }, 'POLICY_INVALID', '/body/ports'],
      [
        { action: 'drop', to: { domain: 'x.example' }, expires: '2020-01-01T00:00:00Z' },
        'POLICY_INVALID',
        '/body/expires',
      ],
      [{ action: 'drop', to: { vm: 'ghost' } }, 'POLICY_INVALID', '/body/to/vm'],
      [{ id: 'r1', action: 'drop', to: { special: 'dns' } }, 'CONFLICT', '/body/id'],
    ];
    for (const [payload, code, path] of cases) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/vms/kid/rules',
        payload: payload as object,
      });
      expect({ payload, body: res.json() }).toMatchObject({ body: { code, path } });
    }
    const action = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/rules',
      payload: { action: 'explode', to: { special: 'dns' } },
    });
    expect(action.json<{ message: string }>().message).toBe(
      '/body/action: expected "accept" or "reject" or "drop"',
    );
  });

  it('removes a rule by id', async () => {
    const res = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/kid/rules/r1' });
    expect(res.statusCode).toBe(204);
    expect(t.store.policy.rules({ vm: 'kid' }).map((r) => r.id)).toEqual(['r2']);
    const again = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/kid/rules/r1' });
    expect(again.statusCode).toBe(404);
    expect(again.json()).toMatchObject({ code: 'RULE_NOT_FOUND', path: '/params/id' });
  });

  it('answers an unknown VM with 404', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/vms/ghost/rules'],
      ['POST', '/api/v1/vms/ghost/rules'],
    ] as const) {
      const res = await t.app.inject({
        method,
        url,
        payload: method === 'POST' ? { action: 'drop', to: { special: 'dns' } } : undefined,
      });
      expect(res.json()).toMatchObject({ code: 'VM_NOT_FOUND' });
    }
  });

  it('manages the rules of a custom profile, not of a built-in', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/profiles/office/rules',
      payload: { action: 'drop', to: { domain: 'ads.example' } },
    });
    expect(res.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/profiles/office/rules' })).json()).toHaveLength(
      2,
    );
    const builtin = await t.app.inject({
      method: 'POST',
      url: '/api/v1/profiles/kid/rules',
      payload: { action: 'drop', to: { domain: 'ads.example' } },
    });
    expect(builtin.statusCode).toBe(409);
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/v1/profiles/office/rules',
      payload: { action: 'drop', to: { cidr: '10.0.0.1/8' } },
    });
    expect(bad.json()).toMatchObject({ path: '/body/to/cidr' });
  });
});
