import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApi, type TestApi } from './test-app.js';
import { vmStateRoutes } from './vm-state.js';

// the fixture's kid has the "bedtime" schedule (mon, tue 21:00-07:00 Berlin); work is quarantined
const SATURDAY = new Date('2026-01-10T12:00:00Z');
const MONDAY_NIGHT = new Date('2026-01-12T21:30:00Z');

describe('GET /api/v1/vms/:name/state', () => {
  let t: TestApi;
  let now = SATURDAY;
  let budgetBlocked = new Map<string, Date>();
  beforeEach(async () => {
    now = SATURDAY;
    budgetBlocked = new Map();
    t = await makeTestApi({
      plugins: [
        async (app) =>
          app.register(vmStateRoutes, {
            // t is assigned once makeTestApi returns; the routes ask at request time
            policy: { current: () => t.policy.current() },
            now: () => now.getTime(),
            budgetBlocked: () => budgetBlocked,
          }),
      ],
    });
  });
  afterEach(async () => {
    await t.close();
  });

  const state = async (vm: string): Promise<Record<string, unknown>> => {
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/vms/${vm}/state` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  it('says what is in force: profile, schedules, internet', async () => {
    expect(await state('kid')).toEqual({
      vm: 'kid',
      profile: 'kid',
      quarantined: false,
      paused: false,
      internet: 'open',
      schedules: [{ name: 'bedtime', mode: 'deny', active: false }],
    });
    now = MONDAY_NIGHT;
    expect(await state('kid')).toMatchObject({
      internet: 'deny',
      schedules: [{ name: 'bedtime', mode: 'deny', active: true }],
    });
    expect(await state('work')).toMatchObject({ profile: 'quarantine', quarantined: true, internet: 'deny' });
  });

  it('reports a spent daily budget: internet off until the reset', async () => {
    budgetBlocked.set('kid', new Date('2026-01-10T23:00:00Z'));
    expect(await state('kid')).toMatchObject({
      paused: false,
      internet: 'deny',
      budgetSpentUntil: '2026-01-10T23:00:00.000Z',
    });
    // once the reset has passed, it is spent no more
    now = new Date('2026-01-10T23:00:00Z');
    const after = await state('kid');
    expect(after).toMatchObject({ internet: 'open' });
    expect(after).not.toHaveProperty('budgetSpentUntil');
  });

  it('reports a pause until it ends', async () => {
    await t.policy.mutate({ actor: 'test' }, { action: 'vm.pause', target: 'vm/kid' }, (draft) => {
      draft.vms[0]!.pause = { since: '2026-01-10T11:00:00Z', until: '2026-01-10T12:30:00Z' };
      return () => undefined;
    });
    expect(await state('kid')).toMatchObject({ paused: true, internet: 'deny' });
    now = new Date('2026-01-10T12:30:00Z');
    expect(await state('kid')).toMatchObject({ paused: false, internet: 'open' });
  });

  it('answers an unknown VM with 404 VM_NOT_FOUND', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/vms/ghost/state' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'VM_NOT_FOUND', path: '/params/name' });
  });
});
