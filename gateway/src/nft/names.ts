import { createHash } from 'node:crypto';
import type { Rule } from '../policy/model.js';

/**
 * The names of what Portcullis owns in nftables: its table, and the sets, chains and
 * counters the compiler makes and the runtime (DNS learner, IPS, budgets) fills or
 * reads. One place, so that writer and reader cannot disagree.
 */

/** The one table the service owns (`inet portcullis`). */
export const TABLE = 'portcullis';

/** nft identifiers: VM names may hold dashes, nft names are safest with underscores. */
export function nftName(s: string): string {
  return s.replace(/-/g, '_');
}

/** The chain of a VM's traffic (its allowlist chain adds `_allowlist`). */
export function vmChain(vm: string): string {
  return `vm_${nftName(vm)}`;
}

/** The named counter of a VM's forwarded traffic (budgets read its bytes). */
export function vmCounter(vm: string): string {
  return `vm_${nftName(vm)}`;
}

/** The named counter of the traffic to a VM (the `to_guests` chain, by its addresses). */
export function vmCounterIn(vm: string): string {
  return `vmin_${nftName(vm)}`;
}

/**
 * Why the kernel drops (or rejects) a VM's packet, each a named counter per VM
 * (`vmDropCounter`): `policy` (its rules and profile, other VMs, the default drop),
 * `schedule` (weekly windows, per-service schedules), `pause`, `budget` (daily time
 * spent), `ips` (remote hosts the IPS blocked), `bypass` (closed ways around the DNS
 * filter: DoT, QUIC, DoH, Tor, VPN ports), `quarantine`.
 */
export const VM_DROP_REASONS = [
  'policy',
  'schedule',
  'pause',
  'budget',
  'ips',
  'bypass',
  'quarantine',
] as const;
export type VmDropReason = (typeof VM_DROP_REASONS)[number];

/** The named counter of a VM's packets dropped for `reason`. */
export function vmDropCounter(vm: string, reason: VmDropReason): string {
  return `vmdrop_${reason}_${nftName(vm)}`;
}

/** Per-VM set of addresses learned from allowed DNS answers (allowlist-only mode). */
export function allowSet(vm: string, family: 4 | 6): string {
  return `allow${family}_${nftName(vm)}`;
}

/** The name of a rule's address set. */
export function ruleSet(vm: string, rule: Rule, index: number, family: 4 | 6): string {
  const id =
    rule.id ??
    createHash('sha256')
      .update(`${vm}/${index}/${JSON.stringify(rule)}`)
      .digest('hex')
      .slice(0, 10);
  return `r${family}_${nftName(vm)}_${nftName(id)}`;
}

/** Per-VM set of the addresses a service's names resolved to (filled by the DNS learner). */
export function serviceSet(vm: string, service: string, family: 4 | 6): string {
  return `svc${family}_${nftName(vm)}_${nftName(service)}`;
}

/** The dynamic sets the runtime fills: IPS blocks of a remote host for every VM (alerts marked global). */
export const IPS_BLOCK4 = 'ips_block4';
export const IPS_BLOCK6 = 'ips_block6';
/** IPS blocks for one VM: `VM address . remote address`. */
export const IPS_VMBLOCK4 = 'ips_vmblock4';
export const IPS_VMBLOCK6 = 'ips_vmblock6';

/**
 * The established-flow fast path: `VM address . remote address` pairs whose
 * established flow passed the VM's whole chain within the last
 * {@link VERIFIED_SECONDS} (the packet path adds them). Emptied by every change
 * of the table, so a new rule or list holds for flows already open at once.
 */
export const VERIFIED4 = 'verified4';
export const VERIFIED6 = 'verified6';
/** How long a pair stays verified: an established flow passes its VM's whole chain at least this often. */
export const VERIFIED_SECONDS = 1;
