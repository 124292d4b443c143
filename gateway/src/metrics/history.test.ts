import { describe, expect, it } from 'vitest';
import type { CounterValue } from '../nft/counters.js';
import { Ring, TrafficHistory } from './history.js';

describe('Ring', () => {
  it('keeps the last values in order, the oldest overwritten', () => {
    const r = new Ring(3);
    expect(r.last(3)).toEqual([]);
    for (const v of [1, 2, 3, 4]) r.push(v);
    expect(r.last(3)).toEqual([2, 3, 4]);
    expect(r.last(2)).toEqual([3, 4]);
    expect(r.last(10)).toEqual([2, 3, 4]);
  });
});

describe('TrafficHistory', () => {
  const bytes = (n: number): CounterValue => ({ packets: 0, bytes: n });

  it('keeps the bytes of each step per VM and the DNS queries allowed and blocked', async () => {
    let counters = new Map([
      ['vm_kid', bytes(100)],
      ['vmin_kid', bytes(1000)],
    ]);
    let dns = { queries: 10, blocks: 2 };
    let now = 0;
    const h = new TrafficHistory({
      read: async () => counters,
      vms: () => ['kid'],
      dns: () => dns,
      now: () => now,
    });
    await h.sample(); // the baseline: no point yet
    expect(h.series(60).times).toEqual([]);
    counters = new Map([
      ['vm_kid', bytes(300)],
      ['vmin_kid', bytes(6000)],
    ]);
    dns = { queries: 25, blocks: 5 };
    now = 60_000;
    await h.sample();
    expect(h.series(60)).toEqual({
      step: 60,
      times: [60_000],
      vms: { kid: { in: [5000], out: [200] } },
      dns: { allowed: [12], blocked: [3] },
    });
  });

  it('counts from zero after a counter reset, and adds a new VM with zeros before it', async () => {
    let counters = new Map([['vmin_kid', bytes(5000)]]);
    let vms = ['kid'];
    const h = new TrafficHistory({
      read: async () => counters,
      vms: () => vms,
      dns: () => ({ queries: 0, blocks: 0 }),
    });
    await h.sample();
    counters = new Map([['vmin_kid', bytes(7000)]]);
    await h.sample();
    // the table was replaced: its counters start again
    counters = new Map([
      ['vmin_kid', bytes(400)],
      ['vmin_new', bytes(50)],
    ]);
    vms = ['kid', 'new'];
    await h.sample();
    const s = h.series(60);
    expect(s.vms.kid!.in).toEqual([2000, 400]);
    expect(s.vms.new!.in).toEqual([0, 50]);
  });

  it('skips a step whose reading failed, and drops VMs that left the policy', async () => {
    let fail = false;
    let vms = ['kid', 'work'];
    const h = new TrafficHistory({
      read: async () => {
        if (fail) throw new Error('nft gone');
        return new Map();
      },
      vms: () => vms,
      dns: () => ({ queries: 0, blocks: 0 }),
    });
    await h.sample();
    await h.sample();
    fail = true;
    await h.sample();
    expect(h.series(60).times).toHaveLength(1);
    fail = false;
    vms = ['kid'];
    await h.sample();
    expect(Object.keys(h.series(60).vms)).toEqual(['kid']);
  });
});
