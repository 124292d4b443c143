import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';

const newVm = { name: 'browse', mac: '52:54:00:00:00:03', ipv4: '10.20.0.13', profile: 'internet-only' };

describe('/api/v1/vms', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('lists and shows VMs', async () => {
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/vms' });
    expect(list.statusCode).toBe(200);
    expect(list.json<{ name: string }[]>().map((v) => v.name)).toEqual(['kid', 'work']);
    const one = await t.app.inject({ method: 'GET', url: '/api/v1/vms/kid' });
    expect(one.json()).toEqual(t.policy.getVm('kid'));
  });

  it('answers an unknown VM with 404 VM_NOT_FOUND', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/vms/ghost'],
      ['DELETE', '/api/v1/vms/ghost'],
      ['DELETE', '/api/v1/vms/ghost/quarantine'],
    ] as const) {
      const res = await t.app.inject({ method, url });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({
        code: 'VM_NOT_FOUND',
        message: 'no VM named "ghost"',
        path: '/params/name',
      });
    }
    const patch = await t.app.inject({ method: 'PATCH', url: '/api/v1/vms/ghost', payload: { notes: 'x' } });
    expect(patch.statusCode).toBe(404);
  });

  it('adds a VM', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: newVm });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual(newVm);
    expect(t.store.policy.vm('browse')).toEqual(newVm);
    expect(t.enforcer.applied.at(-1)?.vms).toHaveLength(3);
  });

  it('refuses a taken name with 409 naming /body/name', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms',
      payload: { ...newVm, name: 'kid' },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'CONFLICT', path: '/body/name' });
  });

  it('refuses a duplicate MAC with 400 naming /body/mac', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms',
      payload: { ...newVm, mac: '52:54:00:00:00:01' },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; path: string; message: string; issues: { path: string }[] }>();
    expect(body.code).toBe('POLICY_INVALID');
    expect(body.path).toBe('/body/mac');
    expect(body.message).toBe('invalid policy: /body/mac: MAC 52:54:00:00:00:01 is already used by VM "kid"');
    expect(body.issues).toEqual([
      { path: '/body/mac', message: 'MAC 52:54:00:00:00:01 is already used by VM "kid"' },
    ]);
  });

  it('refuses a bad rule inside a new VM, naming it', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms',
      payload: { ...newVm, rules: [{ action: 'drop', to: { cidr: '10.0.0.1/8' } }] },
    });
    expect(res.json()).toMatchObject({ code: 'POLICY_INVALID', path: '/body/rules/0/to/cidr' });
  });

  it('refuses quarantine in a new VM: it has its own route', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms',
      payload: { ...newVm, quarantine: { reason: 'x', since: '2026-01-01T00:00:00Z' } },
    });
    expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/quarantine' });
  });

  it('changes fields and removes optional ones given null', async () => {
    const res = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/vms/kid',
      payload: { profile: 'open', notes: null },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ name: 'kid', profile: 'open' });
    expect(res.json()).not.toHaveProperty('notes');
  });

  it('keeps a VM on its port, refuses a port another VM has, and audits a move to another port', async () => {
    const onPort = { ...newVm, port: 'g-browse' };
    const add = await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: onPort });
    expect(add.statusCode).toBe(201);
    expect(add.json()).toEqual(onPort);
    expect(t.enforcer.applied.at(-1)?.vms.find((v) => v.name === 'browse')?.port).toBe('g-browse');
    const taken = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/vms/kid',
      payload: { port: 'g-browse' },
    });
    expect(taken.statusCode).toBe(400);
    expect(taken.json()).toMatchObject({
      code: 'POLICY_INVALID',
      path: '/body/port',
      message: expect.stringContaining('port g-browse is already VM "browse"\'s') as unknown,
    });
    const bad = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/vms/kid',
      payload: { port: 'no spaces' },
    });
    expect(bad.statusCode).toBe(400);
    const move = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/vms/browse',
      payload: { port: 'g-other' },
    });
    expect(move.statusCode).toBe(200);
    expect(move.json()).toMatchObject({ port: 'g-other' });
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      action: 'vm.update',
      before: expect.objectContaining({ port: 'g-browse' }) as unknown,
      after: expect.objectContaining({ port: 'g-other' }) as unknown,
    });
    const off = await t.app.inject({ method: 'PATCH', url: '/api/v1/vms/browse', payload: { port: null } });
    expect(off.json()).not.toHaveProperty('port');
  });

  it('refuses an unknown profile and an empty change', async () => {
    const unknown = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/vms/kid',
      payload: { profile: 'ghost' },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ code: 'POLICY_INVALID', path: '/body/profile' });
    const empty = await t.app.inject({ method: 'PATCH', url: '/api/v1/vms/kid', payload: {} });
    expect(empty.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body' });
    const name = await t.app.inject({ method: 'PATCH', url: '/api/v1/vms/kid', payload: { name: 'other' } });
    expect(name.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/name' });
  });

  it('removes a VM, and refuses one still referred to', async () => {
    await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload: newVm });
    const res = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/browse' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    const referred = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/kid' });
    expect(referred.statusCode).toBe(409);
    expect(referred.json()).toMatchObject({ code: 'CONFLICT', path: '/schedules/0/vms/0' });
  });

  it('quarantines and releases a VM', async () => {
    const q = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/quarantine',
      payload: { reason: 'ET MALWARE beacon' },
    });
    expect(q.statusCode).toBe(200);
    expect(q.json()).toMatchObject({
      quarantine: { reason: 'ET MALWARE beacon', since: '2026-03-01T12:00:00.000Z' },
    });
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      action: 'vm.quarantine',
      reason: 'ET MALWARE beacon',
    });
    const r = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/kid/quarantine' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).not.toHaveProperty('quarantine');
  });

  it('needs a reason to quarantine', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/quarantine',
      payload: { reason: '' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/reason' });
    const missing = await t.app.inject({ method: 'POST', url: '/api/v1/vms/kid/quarantine', payload: {} });
    expect(missing.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/reason' });
  });
});
