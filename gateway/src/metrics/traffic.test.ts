import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { CounterValue } from '../nft/counters.js';
import { TrafficMetrics, trafficSeries } from './traffic.js';

const c = (packets: number, bytes = packets * 100): CounterValue => ({ packets, bytes });

describe('trafficSeries', () => {
  const counters = new Map([
    ['vm_kid', c(10, 1000)],
    ['vmin_kid', c(20, 30_000)],
    ['vmdrop_policy_kid', c(3)],
    ['vmdrop_budget_kid', c(2)],
    ['vm_gone', c(99)],
    ['spoof_dropped', c(4)],
    ['unknown_mac_dropped', c(1)],
    ['deny_list_dropped', c(7)],
  ]);

  it('gives each policy VM its bytes and packets out and in, and its drops by reason', () => {
    const s = trafficSeries(counters, ['kid']);
    expect(s.traffic).toEqual([
      { vm: 'kid', direction: 'out', packets: 10, bytes: 1000 },
      { vm: 'kid', direction: 'in', packets: 20, bytes: 30_000 },
    ]);
    expect(s.vmDrops.filter((d) => d.packets > 0)).toEqual([
      { vm: 'kid', reason: 'policy', packets: 3 },
      { vm: 'kid', reason: 'budget', packets: 2 },
    ]);
    // every reason is reported, at 0 when nothing was dropped for it
    expect(s.vmDrops.map((d) => d.reason)).toEqual([
      'policy',
      'schedule',
      'pause',
      'budget',
      'ips',
      'bypass',
      'quarantine',
    ]);
  });

  it('labels only the VMs of the policy: a counter of another name is no series', () => {
    const s = trafficSeries(counters, ['kid', 'new-vm']);
    expect(new Set(s.traffic.map((t) => t.vm))).toEqual(new Set(['kid', 'new-vm']));
    // a VM whose counters are not in the kernel yet reports zeros
    expect(s.traffic.find((t) => t.vm === 'new-vm')).toEqual({
      vm: 'new-vm',
      direction: 'out',
      packets: 0,
      bytes: 0,
    });
  });

  it('sums the drops no VM owns by reason: spoofing is a wrong address and an unknown MAC', () => {
    const s = trafficSeries(counters, []);
    expect(Object.fromEntries(s.drops.map((d) => [d.reason, d.packets]))).toEqual({
      spoofing: 5,
      ipv6: 0,
      input: 0,
      deny_list: 7,
      forward: 0,
    });
  });
});

describe('TrafficMetrics', () => {
  it('reads the kernel once per scrape for all its metrics, and follows the policy', async () => {
    const registry = new Registry();
    let reads = 0;
    let vms = ['kid', 'work'];
    new TrafficMetrics({
      registry,
      read: async () => {
        reads++;
        return new Map([['vmin_kid', c(reads, reads * 1500)]]);
      },
      vms: () => vms,
      maxAgeMs: 0,
    });
    const first = await registry.metrics();
    expect(reads).toBe(1);
    expect(first).toContain('portcullis_vm_bytes_total{vm="kid",direction="in"} 1500');
    expect(first).toContain('portcullis_vm_drops_total{vm="work",reason="policy"} 0');
    expect(first).toContain('portcullis_drops_total{reason="spoofing"} 0');
    vms = ['kid'];
    const second = await registry.metrics();
    expect(reads).toBe(2);
    expect(second).toContain('portcullis_vm_bytes_total{vm="kid",direction="in"} 3000');
    expect(second).not.toContain('vm="work"');
  });

  it('keeps the last values and counts the failure when the kernel cannot be read', async () => {
    const registry = new Registry();
    let fail = false;
    new TrafficMetrics({
      registry,
      read: async () => {
        if (fail) throw new Error('nft: no such file');
        return new Map([['vm_kid', c(5, 500)]]);
      },
      vms: () => ['kid'],
      maxAgeMs: 0,
    });
    expect(await registry.metrics()).toContain('portcullis_vm_packets_total{vm="kid",direction="out"} 5');
    fail = true;
    const text = await registry.metrics();
    expect(text).toContain('portcullis_vm_packets_total{vm="kid",direction="out"} 5');
    expect(text).toContain('portcullis_vm_traffic_read_errors_total 1');
  });
});
