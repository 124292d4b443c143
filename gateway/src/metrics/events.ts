import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventBus } from '../events.js';
import type { ChildState } from '../process/supervisor.js';

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
 *
 * Returns the unsubscribe function (call it at stop); the metrics stay registered.
 */
export function subscribeMetrics(events: EventBus, registry: Registry): () => void {
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
  const bundle = new Gauge({
    name: 'portcullis_bundle_active_info',
    help: 'The rule bundle in force (1, by version)',
    labelNames: ['version'],
    registers,
  });

  const child =
    (name: string) =>
    (state: ChildState): void => {
      up.set({ child: name }, state.status === 'running' ? 1 : 0);
      if (state.status === 'backoff' || state.status === 'failed') childFailures.inc({ child: name });
    };

  const owner = { subscriber: 'metrics' };
  events.on(owner, 'ips.alert', () => actions.inc({ kind: 'record' }));
  events.on(owner, 'ips.action', ({ decision, ok }) =>
    (ok ? actions : failures).inc({ kind: decision.kind }),
  );
  events.on(owner, 'suricata.status', child('suricata'));
  events.on(owner, 'dhcp.status', child('dhcp'));
  events.on(owner, 'policy.applied', ({ action }) => policyChanges.inc({ action }));
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
  return () => events.off(owner);
}
