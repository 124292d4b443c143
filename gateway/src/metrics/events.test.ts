import { Registry } from 'prom-client';
import { beforeEach, describe, expect, it } from 'vitest';
import { ALERT, BLOCK, NOTIFY, QUARANTINE } from '../actions/test-fixtures.js';
import { EventBus } from '../events.js';
import type { ChildState } from '../process/supervisor.js';
import { makePolicy } from '../store/test-fixtures.js';
import { subscribeMetrics } from './events.js';

const state = (status: ChildState['status']): ChildState => ({
  status,
  since: '2026-12-02T22:00:00.000Z',
  failures: 0,
});

describe('subscribeMetrics', () => {
  let bus: EventBus;
  let registry: Registry;
  /** The value of a metric with these labels; 0 when it has none yet. */
  const value = async (name: string, labels: Record<string, string>): Promise<number> => {
    const metric = registry.getSingleMetric(name);
    if (!metric) throw new Error(`no metric ${name}`);
    const { values } = await metric.get();
    const hit = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return hit?.value ?? 0;
  };

  beforeEach(() => {
    bus = new EventBus();
    registry = new Registry();
    subscribeMetrics(bus, registry);
  });

  it('counts alerts (ips.alert) and actions carried out or failed (ips.action)', async () => {
    bus.emit('ips.alert', ALERT);
    bus.emit('ips.alert', ALERT);
    bus.emit('ips.action', { decision: BLOCK, ok: true });
    bus.emit('ips.action', { decision: NOTIFY, ok: false, error: 'timeout' });
    bus.emit('ips.action', { decision: QUARANTINE, ok: true });
    expect(await value('portcullis_ips_actions_total', { kind: 'record' })).toBe(2);
    expect(await value('portcullis_ips_actions_total', { kind: 'block' })).toBe(1);
    expect(await value('portcullis_ips_actions_total', { kind: 'quarantine' })).toBe(1);
    expect(await value('portcullis_ips_actions_total', { kind: 'notify' })).toBe(0);
    expect(await value('portcullis_ips_action_failures_total', { kind: 'notify' })).toBe(1);
  });

  it("follows each supervised child's status (suricata.status, dhcp.status)", async () => {
    for (const [event, child] of [
      ['suricata.status', 'suricata'],
      ['dhcp.status', 'dhcp'],
    ] as const) {
      bus.emit(event, state('running'));
      expect(await value('portcullis_child_up', { child })).toBe(1);
      bus.emit(event, state('backoff'));
      expect(await value('portcullis_child_up', { child })).toBe(0);
      bus.emit(event, state('starting'));
      bus.emit(event, state('failed'));
      expect(await value('portcullis_child_failures_total', { child })).toBe(2);
    }
  });

  it('counts policies put in force (policy.applied) and quarantine changes (vm.quarantined, vm.released)', async () => {
    const policy = makePolicy();
    bus.emit('policy.applied', { policy, previous: policy, actor: 'api', action: 'vm.add' });
    bus.emit('vm.quarantined', { vm: 'kid', reason: 'ips', since: '2026-12-02T22:00:00Z', actor: 'ips' });
    bus.emit('vm.released', { vm: 'kid', actor: 'api' });
    bus.emit('vm.released', { vm: 'kid', actor: 'api' });
    expect(await value('portcullis_policy_changes_total', { action: 'vm.add' })).toBe(1);
    expect(await value('portcullis_vm_quarantine_changes_total', { change: 'quarantined' })).toBe(1);
    expect(await value('portcullis_vm_quarantine_changes_total', { change: 'released' })).toBe(2);
  });

  it('counts audit entries (audit) and shows the bundle in force (bundle.status)', async () => {
    bus.emit('audit', {
      id: 1,
      at: '2026-12-02T22:00:00Z',
      actor: 'api',
      action: 'rule.add',
      target: 'vm/kid',
    });
    expect(await value('portcullis_audit_entries_total', { action: 'rule.add' })).toBe(1);
    const bundle = { version: '2026.1', sha256: 'a'.repeat(64), installedAt: '2026-12-02T22:00:00Z' };
    bus.emit('bundle.status', { ...bundle, status: 'active' });
    expect(await value('portcullis_bundle_active_info', { version: '2026.1' })).toBe(1);
    bus.emit('bundle.status', { ...bundle, version: '2026.2', status: 'active' });
    expect(await value('portcullis_bundle_active_info', { version: '2026.1' })).toBe(0);
    expect(await value('portcullis_bundle_active_info', { version: '2026.2' })).toBe(1);
    bus.emit('bundle.status', { ...bundle, version: '2026.2', status: 'rolled-back' });
    const { values } = await registry.getSingleMetric('portcullis_bundle_active_info')!.get();
    expect(values).toEqual([]);
  });

  it('counts alerts by VM and severity; a VM outside the policy is other', async () => {
    const policy = makePolicy();
    bus.emit('policy.applied', { policy, previous: policy, actor: 'api', action: 'vm.add' });
    // every policy VM has its series from the start
    expect(
      (await registry.metrics()).match(/portcullis_alerts_total\{vm="work",severity="[123]"\} 0/g),
    ).toHaveLength(3);
    bus.emit('ips.alert', ALERT);
    bus.emit('ips.alert', { ...ALERT, vm: 'stranger', severity: 1 });
    bus.emit('ips.alert', { ...ALERT, vm: null, severity: 9 });
    expect(await value('portcullis_alerts_total', { vm: 'kid', severity: '2' })).toBe(1);
    expect(await value('portcullis_alerts_total', { vm: 'other', severity: '1' })).toBe(1);
    expect(await value('portcullis_alerts_total', { vm: 'other', severity: 'other' })).toBe(1);
    expect(await registry.metrics()).not.toContain('stranger');
    // a VM that leaves the policy leaves the metrics
    const smaller = { ...policy, vms: policy.vms.filter((v) => v.name !== 'kid') };
    bus.emit('policy.applied', { policy: smaller, previous: policy, actor: 'api', action: 'vm.remove' });
    expect(await registry.metrics()).not.toContain('vm="kid"');
  });

  it('marks the VMs that Suricata being down cuts off (IPS fail-closed)', async () => {
    const policy = makePolicy();
    policy.profiles = [
      {
        name: 'strict',
        internet: 'open',
        reach: [],
        rules: [],
        vpn: false,
        ips: { mode: 'ips', failure: 'fail-closed' },
      },
    ];
    policy.vms[0] = { ...policy.vms[0]!, profile: 'strict' };
    bus.emit('policy.applied', { policy, previous: policy, actor: 'api', action: 'profile.add' });
    expect(await value('portcullis_vm_ips_fail_closed', { vm: 'kid' })).toBe(1);
    // work is quarantined: its profile in force does not queue
    expect(await value('portcullis_vm_ips_fail_closed', { vm: 'work' })).toBe(0);
    expect(await registry.metrics()).toContain('portcullis_vm_ips_fail_closed{vm="work"} 0');
  });

  it("reads the bundle in force and its install time from the store's getter at each scrape", async () => {
    const r = new Registry();
    const store: { active?: { version: string; sha256: string; installedAt: string; status: 'active' } } = {};
    subscribeMetrics(new EventBus(), r, { bundle: () => store.active });
    expect(await r.metrics()).not.toContain('portcullis_bundle_installed_timestamp_seconds{');
    store.active = {
      version: '2026.3',
      sha256: 'b'.repeat(64),
      installedAt: '2026-12-01T00:00:00Z',
      status: 'active',
    };
    const text = await r.metrics();
    expect(text).toContain('portcullis_bundle_installed_timestamp_seconds{version="2026.3"} 1796083200');
    expect(text).toContain('portcullis_bundle_active_info{version="2026.3"} 1');
  });

  it('counts DNS blocks (dns.blocked) by VM and category; names outside the policy are other', async () => {
    const policy = makePolicy();
    bus.emit('policy.applied', { policy, previous: policy, actor: 'api', action: 'vm.add' });
    const at = Date.parse('2026-12-03T04:00:00Z');
    bus.emit('dns.blocked', { vm: 'kid', name: 'bet.example', category: 'gambling', at });
    bus.emit('dns.blocked', { vm: 'kid', name: 'dns.google', category: 'doh', at });
    bus.emit('dns.blocked', { vm: 'unassigned', name: 'x.example', category: 'paused', at });
    bus.emit('dns.blocked', { vm: 'mallory', name: 'x.example', category: 'paused', at });
    expect(await value('portcullis_dns_vm_blocks_total', { vm: 'kid', category: 'gambling' })).toBe(1);
    expect(await value('portcullis_dns_vm_blocks_total', { vm: 'kid', category: 'doh' })).toBe(1);
    expect(await value('portcullis_dns_vm_blocks_total', { vm: 'unassigned', category: 'paused' })).toBe(1);
    expect(await value('portcullis_dns_vm_blocks_total', { vm: 'other', category: 'paused' })).toBe(1);
    expect(await registry.metrics()).not.toContain('mallory');
  });
});
