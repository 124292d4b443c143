import { describe, expect, it } from 'vitest';
import { leasesToReclaim, type PoolLease } from './reclaim.js';

const lease = (n: number, expiresMinute: number): PoolLease => ({
  mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
  ipv4: `10.20.0.${200 + n}`,
  expires: new Date(Date.UTC(2026, 11, 3, 8, expiresMinute)).toISOString(),
});

describe('leasesToReclaim', () => {
  it('gives nothing back while an address of the pool is free', () => {
    expect(leasesToReclaim([], 4)).toEqual([]);
    expect(leasesToReclaim([lease(1, 5), lease(2, 3), lease(3, 9)], 4)).toEqual([]);
  });

  it('gives back the oldest lease (the one that ends first) when the pool is full', () => {
    const leases = [lease(1, 5), lease(2, 3), lease(3, 9), lease(4, 7)];
    expect(leasesToReclaim(leases, 4)).toEqual([lease(2, 3)]);
  });

  it('gives back enough of the oldest to free one address when a smaller pool holds more', () => {
    // a pool made smaller by a config change: its old leases outnumber it
    const leases = [lease(1, 5), lease(2, 3), lease(3, 9), lease(4, 7)];
    expect(leasesToReclaim(leases, 2).map((l) => l.ipv4)).toEqual([
      '10.20.0.202',
      '10.20.0.201',
      '10.20.0.204',
    ]);
  });

  it('frees the one address of a pool of one, and orders leases ending together by address', () => {
    expect(leasesToReclaim([lease(3, 1), lease(1, 1)], 1).map((l) => l.ipv4)).toEqual([
      '10.20.0.201',
      '10.20.0.203',
    ]);
  });
});
