import { describe, expect, it } from 'vitest';
import { clientPolicies } from '../parental/client-policy.js';
import { parseIpv4Range } from '../policy/net.js';
import { makePolicy } from '../store/test-fixtures.js';
import { ClientDirectory, UNASSIGNED } from './identity.js';

const at = new Date('2026-03-01T12:00:00Z');
const views = () => clientPolicies(makePolicy(), at, new Map());

describe('ClientDirectory', () => {
  it('knows nobody before the first update', () => {
    const d = new ClientDirectory();
    expect(d.identify('10.20.0.11')).toBeUndefined();
    expect(d.vm('kid')).toBeUndefined();
  });

  it("identifies a VM by its address and finds the same view by the VM's name", () => {
    const d = new ClientDirectory();
    d.update(views());
    const kid = d.identify('10.20.0.11');
    expect(kid?.vm?.name).toBe('kid');
    expect(kid?.policy.client).toBe('kid');
    expect(d.vm('kid')).toBe(kid);
    expect(d.identify('10.20.0.12')?.vm?.name).toBe('work');
  });

  it('returns the same object for every query until the next update', () => {
    const d = new ClientDirectory();
    d.update(views());
    expect(d.identify('10.20.0.11')).toBe(d.identify('10.20.0.11'));
    const before = d.identify('10.20.0.11');
    d.update(views());
    expect(d.identify('10.20.0.11')).not.toBe(before);
  });

  it('forgets VMs the new views no longer have', () => {
    const d = new ClientDirectory();
    d.update(views());
    d.update(
      clientPolicies(makePolicy({ vms: makePolicy().vms.filter((v) => v.name !== 'kid') }), at, new Map()),
    );
    expect(d.identify('10.20.0.11')).toBeUndefined();
    expect(d.vm('kid')).toBeUndefined();
    expect(d.vm('work')).toBeDefined();
  });

  it('gives devices of the unassigned pool a paused policy and no VM', () => {
    const d = new ClientDirectory({ unassigned: parseIpv4Range('10.20.0.200-10.20.0.249') });
    d.update(views());
    const guest = d.identify('10.20.0.210');
    expect(guest).toEqual({ policy: { client: UNASSIGNED, paused: true } });
    expect(guest?.vm).toBeUndefined();
    // just outside the pool: a stranger
    expect(d.identify('10.20.0.250')).toBeUndefined();
  });

  it('treats addresses of the pool as strangers when there is no pool', () => {
    const d = new ClientDirectory();
    d.update(views());
    expect(d.identify('10.20.0.210')).toBeUndefined();
  });
});
