import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';

const gaming = {
  name: 'gaming',
  internet: 'open',
  rules: [],
  reach: [],
  ips: { mode: 'ids', failure: 'fail-open' },
};
const school = {
  name: 'school',
  vms: ['kid'],
  timezone: 'Europe/Berlin',
  windows: [{ days: ['mon', 'fri'], start: '08:00', end: '13:00' }],
  mode: 'allowlist-only',
};

describe('/api/v1/profiles', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('lists built-ins, read-only, beside custom profiles', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/profiles' });
    const list = res.json<{ name: string; builtin: boolean }[]>();
    expect(list.map((p) => [p.name, p.builtin])).toEqual([
      ['open', true],
      ['internet-only', true],
      ['work', true],
      ['kid', true],
      ['quarantine', true],
      ['office', false],
    ]);
    const one = await t.app.inject({ method: 'GET', url: '/api/v1/profiles/quarantine' });
    expect(one.json()).toMatchObject({ name: 'quarantine', builtin: true, isolated: true });
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/profiles/ghost' })).json()).toMatchObject({
      code: 'PROFILE_NOT_FOUND',
      path: '/params/name',
    });
  });

  it('adds, replaces and removes a custom profile', async () => {
    const add = await t.app.inject({ method: 'POST', url: '/api/v1/profiles', payload: gaming });
    expect(add.statusCode).toBe(201);
    expect(add.json()).toEqual({ ...gaming, builtin: false });
    const put = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/profiles/gaming',
      payload: { ...gaming, internet: 'allowlist-only', allowDomains: ['steam.example'] },
    });
    expect(put.statusCode).toBe(200);
    expect(t.store.policy.profile('gaming')?.allowDomains).toEqual(['steam.example']);
    expect((await t.app.inject({ method: 'DELETE', url: '/api/v1/profiles/gaming' })).statusCode).toBe(204);
  });

  it('refuses to change built-ins', async () => {
    expect(
      (
        await t.app.inject({ method: 'POST', url: '/api/v1/profiles', payload: { ...gaming, name: 'kid' } })
      ).json(),
    ).toMatchObject({
      code: 'CONFLICT',
      path: '/body/name',
    });
    expect(
      (
        await t.app.inject({
          method: 'PUT',
          url: '/api/v1/profiles/kid',
          payload: { ...gaming, name: 'kid' },
        })
      ).statusCode,
    ).toBe(409);
    expect((await t.app.inject({ method: 'DELETE', url: '/api/v1/profiles/open' })).statusCode).toBe(409);
  });

  it('refuses bad profiles, renames and removing one in use', async () => {
    const reach = await t.app.inject({
      method: 'POST',
      url: '/api/v1/profiles',
      payload: { ...gaming, reach: ['ghost'] },
    });
    expect(reach.json()).toMatchObject({ code: 'POLICY_INVALID', path: '/body/reach/0' });
    const ips = await t.app.inject({
      method: 'POST',
      url: '/api/v1/profiles',
      payload: { ...gaming, ips: { mode: 'maybe', failure: 'fail-open' } },
    });
    expect(ips.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/ips/mode' });
    const rename = await t.app.inject({ method: 'PUT', url: '/api/v1/profiles/office', payload: gaming });
    expect(rename.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body/name' });
    const inUse = await t.app.inject({ method: 'DELETE', url: '/api/v1/profiles/office' });
    expect(inUse.statusCode).toBe(409);
  });
});

describe('/api/v1/schedules', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('lists, adds, shows, replaces and removes schedules', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/schedules' })).json()).toHaveLength(1);
    const add = await t.app.inject({ method: 'POST', url: '/api/v1/schedules', payload: school });
    expect(add.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/schedules/school' })).json()).toEqual(school);
    const put = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/schedules/school',
      payload: { ...school, enabled: false },
    });
    expect(put.json()).toMatchObject({ enabled: false });
    expect((await t.app.inject({ method: 'DELETE', url: '/api/v1/schedules/school' })).statusCode).toBe(204);
    const gone = await t.app.inject({ method: 'GET', url: '/api/v1/schedules/school' });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ code: 'SCHEDULE_NOT_FOUND' });
  });

  it('names the field of a bad schedule', async () => {
    const cases: [object, number, string][] = [
      [{ ...school, timezone: 'Mars/Olympus' }, 400, '/body/timezone'],
      [{ ...school, vms: ['ghost'] }, 400, '/body/vms/0'],
      [
        { ...school, windows: [{ days: ['mon'], start: '25:00', end: '13:00' }] },
        400,
        '/body/windows/0/start',
      ],
      [{ ...school, windows: [{ days: ['mon'], start: '08:00', end: '08:00' }] }, 400, '/body/windows/0/end'],
      [{ ...school, name: 'bedtime' }, 409, '/body/name'],
    ];
    for (const [payload, status, path] of cases) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/schedules', payload });
      expect({ status: res.statusCode, path: res.json<{ path: string }>().path }).toEqual({ status, path });
    }
  });
});
