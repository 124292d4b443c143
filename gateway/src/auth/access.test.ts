import { describe, expect, it } from 'vitest';
import { actorOf, decide, filterList, vmsOf, type Principal } from './access.js';

const admin: Principal = { via: 'session', name: 'root', role: 'admin', people: [] };
const viewer: Principal = { via: 'token', name: 'prometheus', role: 'viewer', people: [] };
const mum: Principal = { via: 'session', name: 'mum', role: 'parent', people: ['sam'] };
const vms = [
  { name: 'kid', owner: 'sam' },
  { name: 'tablet', owner: 'sam' },
  { name: 'work', owner: 'alice' },
  { name: 'printer' },
];

describe('who may do what', () => {
  it('lets an admin do everything', () => {
    expect(decide(admin, 'PUT', '/policy').allow).toBe(true);
    expect(decide(admin, 'GET', '/audit').allow).toBe(true);
  });

  it('lets a viewer read everything and change nothing', () => {
    expect(decide(viewer, 'GET', '/audit').allow).toBe(true);
    expect(decide(viewer, 'GET', '/metrics').allow).toBe(true);
    // a backup holds every secret: admins only
    expect(decide(viewer, 'GET', '/backup').allow).toBe(false);
    expect(decide(admin, 'GET', '/backup').allow).toBe(true);
    expect(decide(viewer, 'POST', '/vms/:name/pause').allow).toBe(false);
    expect(decide(viewer, 'DELETE', '/vms/:name').allow).toBe(false);
  });

  it('keeps packet captures, reads and downloads too, to admins', () => {
    for (const [method, route] of [
      ['GET', '/captures'],
      ['GET', '/captures/:id'],
      ['POST', '/captures'],
      ['DELETE', '/captures/:id'],
    ] as const) {
      expect(decide(admin, method, route).allow).toBe(true);
      for (const p of [viewer, mum]) {
        expect(decide(p, method, route)).toEqual({ allow: false, reason: 'packet captures are for admins' });
      }
    }
  });

  it("lets a parent at their VMs' parental settings, and nothing else", () => {
    expect(decide(mum, 'POST', '/vms/:name/pause')).toEqual({ allow: true, scope: { kind: 'vm' } });
    expect(decide(mum, 'POST', '/access-requests/:id/approve')).toEqual({
      allow: true,
      scope: { kind: 'request' },
    });
    expect(decide(mum, 'GET', '/vms')).toEqual({ allow: true, scope: { kind: 'filter', list: 'vms' } });
    expect(decide(mum, 'HEAD', '/vms/:name/queries').allow).toBe(true);
    for (const [method, route] of [
      ['GET', '/audit'],
      ['GET', '/policy'],
      ['PUT', '/policy'],
      ['PATCH', '/vms/:name'],
      ['POST', '/vms/:name/quarantine'],
      ['GET', '/ips'],
      ['GET', '/devices/unassigned'],
      ['GET', '/metrics'],
      ['POST', '/profiles'],
    ] as const) {
      expect(decide(mum, method, route).allow, `${method} ${route}`).toBe(false);
    }
  });

  it("finds a parent's VMs by their owners", () => {
    expect([...vmsOf(mum, vms)]).toEqual(['kid', 'tablet']);
    expect([...vmsOf(admin, vms)]).toEqual([]);
  });

  it("cuts lists down to a parent's VMs", () => {
    const mine = vmsOf(mum, vms);
    expect(filterList('vms', vms, mine)).toEqual([vms[0], vms[1]]);
    expect(filterList('schedules', [{ vms: ['kid'] }, { vms: ['kid', 'work'] }, { vms: [] }], mine)).toEqual([
      { vms: ['kid'] },
    ]);
    expect(filterList('alerts', [{ vm: 'kid' }, { vm: 'work' }, { vm: null }], mine)).toEqual([
      { vm: 'kid' },
    ]);
  });

  it('names the actor by how they authenticated', () => {
    expect(actorOf(mum)).toBe('user:mum');
    expect(actorOf(viewer)).toBe('token:prometheus');
  });
});
