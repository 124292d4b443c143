import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';

describe('/api/v1/access-requests', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  const ask = (payload: object) => t.app.inject({ method: 'POST', url: '/api/v1/access-requests', payload });

  it('records a request, once', async () => {
    const res = await ask({ vm: 'kid', domain: 'games.example', reason: 'homework' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      id: 1,
      vm: 'kid',
      domain: 'games.example',
      status: 'pending',
      reason: 'homework',
    });
    const again = await ask({ vm: 'kid', domain: 'games.example' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: 1 });
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      actor: 'guest:kid',
      action: 'access-request.create',
    });
  });

  it('takes the domain from a blocked URL', async () => {
    const res = await ask({ vm: 'kid', url: 'https://Videos.Example/watch?v=1' });
    expect(res.json()).toMatchObject({ domain: 'videos.example', url: 'https://Videos.Example/watch?v=1' });
  });

  it('refuses requests it cannot act on', async () => {
    expect((await ask({ vm: 'ghost', domain: 'games.example' })).json()).toMatchObject({
      code: 'VM_NOT_FOUND',
    });
    expect((await ask({ vm: 'kid' })).json()).toMatchObject({
      code: 'REQUEST_INVALID',
      path: '/body/domain',
    });
    expect((await ask({ vm: 'kid', url: 'http://10.0.0.1/' })).json()).toMatchObject({
      code: 'REQUEST_INVALID',
      path: '/body/url',
    });
    expect((await ask({ vm: 'kid', url: 'not a url' })).json()).toMatchObject({
      code: 'REQUEST_INVALID',
      path: '/body/url',
    });
    expect((await ask({ vm: 'kid', domain: 'bad domain!' })).json()).toMatchObject({
      code: 'REQUEST_INVALID',
      path: '/body/domain',
    });
  });

  it('lists and shows requests', async () => {
    await ask({ vm: 'kid', domain: 'a.example' });
    await ask({ vm: 'kid', domain: 'b.example' });
    await t.app.inject({ method: 'POST', url: '/api/v1/access-requests/1/deny', payload: {} });
    const pending = await t.app.inject({ method: 'GET', url: '/api/v1/access-requests?status=pending' });
    expect(pending.json<{ domain: string }[]>().map((r) => r.domain)).toEqual(['b.example']);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/access-requests' })).json()).toHaveLength(2);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/access-requests/1' })).json()).toMatchObject({
      status: 'denied',
    });
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/access-requests/9' })).json()).toMatchObject({
      code: 'ACCESS_REQUEST_NOT_FOUND',
      path: '/params/id',
    });
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/access-requests?status=maybe' })).json(),
    ).toMatchObject({ path: '/query/status' });
  });

  it('approves for some minutes with an expiring accept rule first in the VM', async () => {
    await ask({ vm: 'kid', domain: 'games.example' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests/1/approve',
      headers: { 'x-portcullis-actor': 'alice' },
      payload: { minutes: 30 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'approved',
      decidedBy: 'api:alice',
      until: '2026-03-01T12:30:00.000Z',
      ruleId: 'gen-1',
    });
    expect(t.policy.listRules({ vm: 'kid' })[0]).toEqual({
      id: 'gen-1',
      action: 'accept',
      to: { domain: 'games.example' },
      expires: '2026-03-01T12:30:00.000Z',
      comment: 'access request 1',
    });
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests/1/approve',
      payload: { always: true },
    });
    expect(again.statusCode).toBe(409);
    expect(t.policy.listRules({ vm: 'kid' })).toHaveLength(3);
  });

  it('approves always with a rule that does not expire', async () => {
    await ask({ vm: 'kid', domain: 'games.example' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests/1/approve',
      payload: { always: true },
    });
    expect(res.json()).not.toHaveProperty('until');
    expect(t.policy.listRules({ vm: 'kid' })[0]).not.toHaveProperty('expires');
  });

  it('needs minutes or always, not both', async () => {
    await ask({ vm: 'kid', domain: 'games.example' });
    for (const payload of [{}, { minutes: 5, always: true }, { minutes: 0 }, { always: false }]) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/access-requests/1/approve', payload });
      expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID' });
    }
  });

  it('denies with a reason', async () => {
    await ask({ vm: 'kid', domain: 'games.example' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/access-requests/1/deny',
      payload: { reason: 'not on a school night' },
    });
    expect(res.json()).toMatchObject({ status: 'denied', decidedBy: 'api' });
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      action: 'access-request.deny',
      reason: 'not on a school night',
    });
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/v1/access-requests/1/deny', payload: {} })).statusCode,
    ).toBe(409);
  });
});
