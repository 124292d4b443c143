import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DhcpServer } from '../dhcp/dnsmasq.js';
import type { BudgetController } from '../parental/controller.js';
import { parentalRoutes } from './parental.js';
import { makeTestApi, type TestApi } from './test-app.js';

describe('POST and DELETE /api/v1/vms/:name/pause', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi({
      plugins: [
        async (app) =>
          app.register(parentalRoutes, {
            // t is assigned once makeTestApi returns; the routes use it at request time
            policy: {
              current: () => t.policy.current(),
              pause: (...a) => t.policy.pause(...a),
              resume: (...a) => t.policy.resume(...a),
            },
            // the pause routes use neither
            budgets: {} as BudgetController,
            dhcp: {} as DhcpServer,
          }),
      ],
    });
  });
  afterEach(async () => {
    await t.close();
  });

  it('pauses through the policy service and answers the pause; resume answers paused: false', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/pause',
      headers: { 'x-portcullis-actor': 'mum' },
      payload: { minutes: 5, reason: 'dinner' },
    });
    expect(res.statusCode, res.body).toBe(200);
    const pause = { since: '2026-03-01T12:00:00.000Z', until: '2026-03-01T12:05:00.000Z', reason: 'dinner' };
    expect(res.json()).toEqual({ vm: 'kid', pause });
    expect(t.enforcer.applied.at(-1)?.vms[0]?.pause).toEqual(pause);
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({ actor: 'api:mum', action: 'vm.pause' });

    const resumed = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/kid/pause' });
    expect(resumed.json()).toEqual({ vm: 'kid', paused: false });
    expect(t.policy.getVm('kid').pause).toBeUndefined();
  });

  it('answers a pause of no length with 400 and an unknown VM with 404', async () => {
    const zero = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms/kid/pause',
      payload: { minutes: 0 },
    });
    expect(zero.statusCode).toBe(400);
    for (const method of ['POST', 'DELETE'] as const) {
      const res = await t.app.inject({ method, url: '/api/v1/vms/ghost/pause', payload: {} });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'VM_NOT_FOUND', path: '/params/name' });
    }
    expect(t.policy.getVm('kid').pause).toBeUndefined();
  });
});
