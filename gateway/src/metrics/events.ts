import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventBus } from '../events.js';
import { effectiveProfiles } from '../policy/builtins.js';
import { profileInForce } from '../policy/in-force.js';
import type { Policy } from '../policy/model.js';
import type { ChildState } from '../process/supervisor.js';
import type { Bundle } from '../store/types.js';
import type { BundleResult } from '../bundles/service.js';

/**
 * Prometheus metrics as a subscriber of the event bus: what the parts publish is
 * counted here, on the injected registry, instead of by each part.
 *
 * - `portcullis_ips_actions_total{kind}`: alerts recorded (`record`) and actions carried out
 * - `portcullis_ips_action_failures_total{kind}`: actions that failed
 * - `portcullis_child_up{child}`: 1 while a supervised child (`suricata`, `dhcp`) is running
 * - `portcullis_child_failures_total{child}`: its failed runs (crashes, failed starts)
 * - `portcullis_policy_changes_total{action}`: policies put in force, by mutation
 * - `portcullis_vm_quarantine_changes_total{change}`: `quarantined`, `released`
 * - `portcullis_audit_entries_total{action}`: audit log entries, by action
 * - `portcullis_bundle_active_info{version}`: 1 for the rule bundle in force
 * - `portcullis_bundle_installed_timestamp_seconds{version}`: when it was installed (its age:
 *   `time() - …`), read from `options.bundle` at each scrape
 * - `portcullis_alerts_total{vm,severity}`: IPS alerts by VM (a VM of the policy, else
 *   `other`) and severity (1-4, else `other`); every policy VM has its 1-3 series from
 *   the start, at 0
 * - `portcullis_dns_vm_blocks_total{vm,category}`: DNS blocks (`dns.blocked`) by VM
 *   (or `unassigned`, `other`) and category (the lists loaded, and 8 reasons)
 * - `portcullis_vm_ips_fail_closed{vm}`: 1 for a VM whose profile in force sends its
 *   traffic through Suricata fail-closed (cut off while Suricata is down), else 0
 * - `portcullis_bundle_updates_total{result}`: bundle updates and rollbacks, by result
 * - `portcullis_bundle_failures_total{reason}`: refused or rolled back updates, by error code
 * - `portcullis_bundle_last_result{result}`: 1 for the result of the last update
 * - `portcullis_bundle_update_bytes{phase}`: bytes downloaded or unpacked by the update running
 *   (the bundle's version and age are the bundle service's own gauges)
 *
 * `vm` labels take the policy's VM names only: per VM 3-4 alert series and one gauge.
 * Returns the unsubscribe function (call it at stop); the metrics stay registered.
 */
export function subscribeMetrics(
  events: EventBus,
  registry: Registry,
  options: {
    /** The bundle in force now (the store's); read at each scrape. */
    readonly bundle?: () => Bundle | undefined;
  } = {},
): () => void {
  const registers = [registry];
  const actions = new Counter({
    name: 'portcullis_ips_actions_total',
    help: 'Actions taken on IPS alerts, by kind (record: the alert was logged)',
    labelNames: ['kind'],
    registers,
  });
  const failures = new Counter({
    name: 'portcullis_ips_action_failures_total',
    help: 'Actions on IPS alerts that failed, by kind',
    labelNames: ['kind'],
    registers,
  });
  const up = new Gauge({
    name: 'portcullis_child_up',
    help: 'Whether a supervised child process is running (1) or not (0)',
    labelNames: ['child'],
    registers,
  });
  const childFailures = new Counter({
    name: 'portcullis_child_failures_total',
    help: 'Failed runs of a supervised child process (crashes, failed starts)',
    labelNames: ['child'],
    registers,
  });
  const policyChanges = new Counter({
    name: 'portcullis_policy_changes_total',
    help: 'Policies put in force, by the mutation that produced them',
    labelNames: ['action'],
    registers,
  });
  const quarantine = new Counter({
    name: 'portcullis_vm_quarantine_changes_total',
    help: 'VMs put into (quarantined) or let out of (released) quarantine',
    labelNames: ['change'],
    registers,
  });
  const audit = new Counter({
    name: 'portcullis_audit_entries_total',
    help: 'Audit log entries written, by action',
    labelNames: ['action'],
    registers,
  });
  const bundle: Gauge<'version'> = new Gauge({
    name: 'portcullis_bundle_active_info',
    help: 'The rule bundle in force (1, by version)',
    labelNames: ['version'],
    registers,
    collect: () => {
      // the store's word at each scrape, when there is a store (else the events')
      if (options.bundle === undefined) return;
      const active = options.bundle();
      bundle.reset();
      if (active !== undefined) bundle.set({ version: active.version }, 1);
    },
  });

  const bundleInstalled: Gauge<'version'> = new Gauge({
    name: 'portcullis_bundle_installed_timestamp_seconds',
    help: 'When the rule bundle in force was installed, in seconds since the epoch, by version (absent: no bundle)',
    labelNames: ['version'],
    registers,
    collect: () => {
      const active = options.bundle?.();
      bundleInstalled.reset();
      if (active === undefined) return;
      bundleInstalled.set({ version: active.version }, Date.parse(active.installedAt) / 1000);
    },
  });
  const alerts = new Counter({
    name: 'portcullis_alerts_total',
    help: 'IPS alerts, by VM (other: no VM of the policy) and severity (1 = highest)',
    labelNames: ['vm', 'severity'],
    registers,
  });
  const failClosed = new Gauge({
    name: 'portcullis_vm_ips_fail_closed',
    help: 'Whether the VM sends its traffic through Suricata fail-closed (1: cut off while Suricata is down)',
    labelNames: ['vm'],
    registers,
  });
  const dnsBlocks = new Counter({
    name: 'portcullis_dns_vm_blocks_total',
    help: 'DNS queries from each VM answered blocked, by category (the category or service list, else the reason: custom, allowlist, doh, canary, private-relay, ddr, paused)',
    labelNames: ['vm', 'category'],
    registers,
  });
  let vms = new Set<string>();
  const onPolicy = (policy: Policy): void => {
    const next = new Set(policy.vms.map((v) => v.name));
    for (const gone of vms) {
      if (next.has(gone)) continue;
      failClosed.remove({ vm: gone });
      for (const severity of SEVERITIES) alerts.remove({ vm: gone, severity });
    }
    const profiles = effectiveProfiles(policy.profiles);
    for (const vm of policy.vms) {
      const ips = profileInForce(vm, profiles).ips;
      failClosed.set({ vm: vm.name }, ips.mode === 'ips' && ips.failure === 'fail-closed' ? 1 : 0);
      for (const severity of ['1', '2', '3']) alerts.inc({ vm: vm.name, severity }, 0);
    }
    vms = next;
  };
  const bundleResults = new Counter({
    name: 'portcullis_bundle_updates_total',
    help: 'Bundle updates and rollbacks, by result',
    labelNames: ['result'],
    registers,
  });
  const bundleFailures = new Counter({
    name: 'portcullis_bundle_failures_total',
    help: 'Refused or rolled back bundle updates, by reason (the error code)',
    labelNames: ['reason'],
    registers,
  });
  const bundleLast = new Gauge({
    name: 'portcullis_bundle_last_result',
    help: 'The result of the last bundle update (1, by result)',
    labelNames: ['result'],
    registers,
  });
  const bundleBytes = new Gauge({
    name: 'portcullis_bundle_update_bytes',
    help: 'Bytes downloaded (download) or unpacked (unpack) by the bundle update running',
    labelNames: ['phase'],
    registers,
  });

  const child =
    (name: string) =>
    (state: ChildState): void => {
      up.set({ child: name }, state.status === 'running' ? 1 : 0);
      // the series exists from the first status on: its first failure is an increase
      childFailures.inc({ child: name }, 0);
      if (state.status === 'backoff' || state.status === 'failed') childFailures.inc({ child: name });
    };

  const owner = { subscriber: 'metrics' };
  events.on(owner, 'ips.alert', ({ vm, severity }) => {
    actions.inc({ kind: 'record' });
    alerts.inc({
      vm: vm !== null && vms.has(vm) ? vm : 'other',
      severity: SEVERITIES.includes(String(severity)) ? String(severity) : 'other',
    });
  });
  events.on(owner, 'dns.blocked', ({ vm, category }) =>
    dnsBlocks.inc({ vm: vms.has(vm) || vm === 'unassigned' ? vm : 'other', category }),
  );
  events.on(owner, 'ips.action', ({ decision, ok }) =>
    (ok ? actions : failures).inc({ kind: decision.kind }),
  );
  events.on(owner, 'suricata.status', child('suricata'));
  events.on(owner, 'dhcp.status', child('dhcp'));
  events.on(owner, 'policy.applied', ({ action, policy }) => {
    policyChanges.inc({ action });
    onPolicy(policy);
  });
  events.on(owner, 'vm.quarantined', () => quarantine.inc({ change: 'quarantined' }));
  events.on(owner, 'vm.released', () => quarantine.inc({ change: 'released' }));
  events.on(owner, 'audit', ({ action }) => audit.inc({ action }));
  events.on(owner, 'bundle.status', ({ version, status }) => {
    if (status === 'active') {
      bundle.reset();
      bundle.set({ version }, 1);
    } else {
      bundle.remove({ version });
    }
  });
  events.on(owner, 'bundle.result', ({ result, code }: BundleResult) => {
    bundleResults.inc({ result });
    if (code) bundleFailures.inc({ reason: code });
    bundleLast.reset();
    bundleLast.set({ result }, 1);
  });
  events.on(owner, 'bundle.progress', ({ phase, bytes }) => {
    if (phase === 'download' || phase === 'unpack') bundleBytes.set({ phase }, bytes ?? 0);
    if (phase === 'idle') bundleBytes.reset();
  });
  return () => events.off(owner);
}

/** Suricata's severities (classification priorities); anything else is `other`. */
const SEVERITIES: readonly string[] = ['1', '2', '3', '4', 'other'];
