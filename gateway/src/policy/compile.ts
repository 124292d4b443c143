import { VM_DROP_REASONS, vmChain, vmCounter, vmCounterIn, vmDropCounter } from '../nft/names.js';
import type { ChainSpec, NftStatement, NftValue, QueueSettings, Ruleset, SetSpec } from '../nft/types.js';
import { effectiveProfiles } from './builtins.js';
import { compilePorts, frameChecksTable, portIds, vmMark, type UnassignedPool } from './compile/ports.js';
import { compileShared } from './compile/shared.js';
import { payload } from './compile/statements.js';
import { compileVm, vmKey, type VmOutput } from './compile/vm.js';
import { fingerprint } from './fingerprint.js';
import { profileInForce } from './in-force.js';
import type { groupByPrefix } from './intervals.js';
import type { Policy, Vm } from './model.js';
import { normaliseMac } from './net.js';
import type { GatewayNetwork } from './network.js';
import type { ServiceWindows } from './schedule.js';

/**
 * Policy → nftables, pure. The result is a model of the one table the service owns
 * (`inet portcullis`); the applier turns it into a single atomic transaction, or
 * into incremental updates against the model applied before.
 *
 * This module takes the input, keeps the cache and assembles the table; the parts are
 * in compile/: `shared.ts` (base chains, address and deny lists: the same for every
 * VM), `vm.ts` (one VM's chains and sets), `rule.ts` (one policy rule), `context.ts`
 * (what a VM is compiled with, and the accept path through Suricata) and
 * `statements.ts` (nft JSON in short). The whole output for each built-in profile is
 * pinned by golden files (compile.golden.test.ts).
 */

/** A weekly time window in UTC as the kernel matches it: nft day (0 = Sunday) and seconds of day. */
export interface KernelWindow {
  readonly days: number[];
  /** Seconds since UTC midnight, inclusive. */
  readonly from: number;
  /** Seconds since UTC midnight, inclusive (≤ 86399). */
  readonly to: number;
  readonly mode: 'deny' | 'allowlist-only';
}

/** Everything a ruleset is compiled from. */
export interface CompileInput {
  readonly policy: Policy;
  readonly network: GatewayNetwork;
  /** Now, for rule expiry. */
  readonly now: Date;
  /** Kernel windows of each VM's schedules, by VM name (see schedule.ts). */
  readonly windows?: ReadonlyMap<string, readonly KernelWindow[]>;
  /** Present when Suricata runs inline; absent: no traffic is queued. */
  readonly queue?: QueueSettings;
  /**
   * Large address lists from rule bundles (100,000s of entries), kept out of the
   * policy so that policy changes never copy or re-check them, and grouped once
   * (`groupByPrefix`) when loaded. Pass the same object while the list is unchanged:
   * its sets are then reused as they are.
   */
  readonly lists?: { readonly deny?: PrefixGroups };
  /** Addresses of the ways around the filter: known DoH endpoints, Tor relays, VPN providers' endpoints (bundle lists). */
  readonly bypass?: {
    readonly doh?: readonly string[];
    readonly tor?: readonly string[];
    readonly vpn?: readonly string[];
  };
  /** Per-service windows of each VM's schedules, by VM name (see schedule.ts). */
  readonly serviceWindows?: ReadonlyMap<string, readonly ServiceWindows[]>;
  /**
   * Addresses DHCP hands to unknown MACs: they may reach DHCP, DNS and the block page
   * only; and how many unknown MACs a port may use at a time.
   */
  readonly unassigned?: UnassignedPool;
  /** VMs whose daily time budget is spent, blocked until the instant given (the daily reset). */
  readonly budgetBlocked?: ReadonlyMap<string, Date>;
  /**
   * Parts of the previous compile to reuse where their inputs are unchanged. The
   * result is the same with or without; with, unchanged VMs' chains and sets come back
   * as the very objects of the last compile, which the applier's diff skips at once.
   * Such parts are shared between rulesets: treat compiled rulesets as read-only.
   */
  readonly cache?: CompileCache;
}

/** The guest bridge's checks of MACs inside frames (DHCP, ARP): the same for every policy. */
const FRAME_CHECKS = frameChecksTable();

/**
 * Memo of `compile` across calls (NftSync keeps one): each VM's chains, sets and
 * to-guests rules, keyed by everything they are compiled from (`vmKey`); the identity
 * sets, keyed by the VMs' names and addresses; the address lists, deny lists and base
 * chains, keyed by the settings, lists and options they come from. Keys hold
 * fingerprints (computed once per frozen VM or profile), so a changed VM is recompiled
 * whether it is a new object or the old one changed in place. A different network
 * starts over. Holds the entries of the last compile only.
 */
export class CompileCache {
  readonly #entries = new Map<string, { readonly key: readonly unknown[]; readonly value: unknown }>();
  #used = new Set<string>();
  #network: GatewayNetwork | undefined;

  /** Begin a compile for `network`; a different network drops everything. */
  begin(network: GatewayNetwork): void {
    if (network !== this.#network) this.#entries.clear();
    this.#network = network;
    this.#used = new Set();
  }

  /**
   * The value of `slot` made from `key`: last compile's when every part of the key is
   * the same (`===`: strings by value, objects by identity), else `make()`.
   */
  reuse<T>(slot: string, key: readonly unknown[], make: () => T): T {
    this.#used.add(slot);
    const entry = this.#entries.get(slot);
    if (entry !== undefined && sameKey(entry.key, key)) return entry.value as T;
    const value = make();
    this.#entries.set(slot, { key, value });
    return value;
  }

  /** End a compile: forget the slots it did not use (VMs that are gone). */
  end(): void {
    for (const slot of this.#entries.keys()) if (!this.#used.has(slot)) this.#entries.delete(slot);
  }

  /** How many slots are held (for tests). */
  get size(): number {
    return this.#entries.size;
  }
}

function sameKey(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An address list grouped by prefix length (`groupByPrefix`): what the compiler needs of a big list. */
export type PrefixGroups = ReturnType<typeof groupByPrefix>;

/** Compile the whole policy. Pure and deterministic: the same input gives the same output. */
export function compile(spec: CompileInput): Ruleset {
  const { policy, network, now, cache } = spec;
  cache?.begin(network);
  const reuse = <T>(slot: string, key: () => readonly unknown[], make: () => T): T =>
    cache ? cache.reuse(slot, key(), make) : make();
  const profiles = effectiveProfiles(policy.profiles);
  const counters = [
    'port_dropped',
    'spoof_dropped',
    'unknown_mac_dropped',
    'ipv6_dropped',
    'guest_input_dropped',
    'forward_dropped',
    'guest_to_guest_dropped',
  ];
  const sets: SetSpec[] = [];
  const chains: ChainSpec[] = [];
  const vms = [...policy.vms].sort((a, b) => a.name.localeCompare(b.name));

  // --- identity sets -------------------------------------------------------------
  // a VM is its port (the mark the guest bridge's table sets, compile/ports.ts), its MAC
  // and its address together; a VM without a port matches any mark (interval sets)
  const identityKey = (): string[] => [
    vms.map((vm) => `${vm.name} ${vm.port ?? ''} ${vm.mac} ${vm.ipv4} ${vm.ipv6 ?? ''}`).join('\n'),
    fingerprint(spec.unassigned),
  ];
  const ids = portIds(vms);
  // a hash look-up a packet when every VM has its port; the range of a VM without one
  // (any mark) needs an interval set, a slower look-up for every packet of every guest
  const identityFlags: string[] = vms.every((vm) => vm.port !== undefined) ? [] : ['interval'];
  const identity = reuse('identity', identityKey, () => ({
    ports: compilePorts(vms, spec.unassigned),
    sets: [
      {
        name: 'macip4',
        type: ['mark', 'ether_addr', 'ipv4_addr'],
        flags: identityFlags,
        elements: vms.map((vm) => ({ concat: [vmMark(vm, ids), normaliseMac(vm.mac), vm.ipv4] })),
        comment: 'registered port mark . MAC . IPv4',
      },
      {
        name: 'macip6',
        type: ['mark', 'ether_addr', 'ipv6_addr'],
        flags: identityFlags,
        elements: vms
          .filter((vm) => vm.ipv6)
          .map((vm) => ({ concat: [vmMark(vm, ids), normaliseMac(vm.mac), vm.ipv6!] })),
        comment: 'registered port mark . MAC . IPv6',
      },
      {
        name: 'portmacs',
        type: ['mark', 'ether_addr'],
        flags: identityFlags,
        elements: vms.map((vm) => ({ concat: [vmMark(vm, ids), normaliseMac(vm.mac)] })),
        comment: 'registered port mark . MAC',
      },
      {
        name: 'macs',
        type: 'ether_addr',
        flags: [],
        elements: vms.map((vm) => normaliseMac(vm.mac)),
        comment: 'registered MACs',
      },
      {
        name: 'vm_chains',
        type: 'ether_addr',
        map: 'verdict',
        flags: [],
        elements: vms.map(
          (vm) => [normaliseMac(vm.mac), { jump: { target: vmChain(vm.name) } }] as unknown as NftValue,
        ),
        comment: 'guest MAC → its chain',
      },
    ] as SetSpec[],
  }));
  sets.push(...identity.sets);

  // --- address lists, deny lists, the base chains: the same for every VM -----------------
  const sharedKey = (): unknown[] => [
    policy.ipv6,
    fingerprint(policy.vpnEndpoints),
    fingerprint(policy.updateServers),
    fingerprint(policy.deny),
    spec.lists?.deny,
    fingerprint(spec.bypass?.doh),
    fingerprint(spec.bypass?.tor),
    fingerprint(spec.bypass?.vpn),
    fingerprint(spec.unassigned),
    fingerprint(spec.queue),
  ];
  const shared = reuse('shared', sharedKey, () => compileShared(spec));
  counters.push(...shared.counters);
  sets.push(...shared.sets);
  // traffic to the guests: counted by VM (metrics: bytes and packets in) with one map
  // look-up a packet, whatever the number of VMs; then the slow-downs of the download
  // direction (the VMs add theirs)
  const toGuests: NftStatement[][] = guestCounters(vms);
  chains.push(...shared.before, { name: 'to_guests', rules: toGuests }, ...shared.after);

  // --- per-VM chains -------------------------------------------------------------------
  const byName = new Map(vms.map((vm) => [vm.name, vm]));
  for (const vm of vms) {
    // the profile in force (in-force.ts): quarantine's while quarantined. Pauses, the
    // budget and schedule windows are not evaluated at `now` here: they compile to rules
    // the kernel clock ends or opens, so they hold while the service is down
    const profile = profileInForce(vm, profiles);
    counters.push(
      vmCounter(vm.name),
      vmCounterIn(vm.name),
      ...VM_DROP_REASONS.map((reason) => vmDropCounter(vm.name, reason)),
    );
    const windows = spec.windows?.get(vm.name) ?? [];
    const serviceWindows = spec.serviceWindows?.get(vm.name) ?? [];
    const budgetUntil = spec.budgetBlocked?.get(vm.name);
    const key = (): string[] =>
      vmKey(vm, profile, { byName, now, windows, serviceWindows, budgetUntil, queue: spec.queue });
    const out = reuse(`vm ${vm.name}`, key, (): VmOutput => {
      const vmSets: SetSpec[] = [];
      const vmToGuests: NftStatement[][] = [];
      const vmChains = compileVm(vm, profile, {
        profile,
        network,
        now,
        byName,
        sets: vmSets,
        toGuests: vmToGuests,
        windows,
        serviceWindows,
        budgetUntil,
        queue: spec.queue,
      });
      return { chains: vmChains, sets: vmSets, toGuests: vmToGuests };
    });
    sets.push(...out.sets);
    toGuests.push(...out.toGuests);
    chains.push(...out.chains);
  }
  cache?.end();

  return { counters, sets, chains, tables: [identity.ports], textTables: [FRAME_CHECKS] };
}

/**
 * `counter name ip daddr map { <address> : "vmin_<vm>", … }` (and the same for IPv6):
 * each packet to a guest adds to its VM's counter through one look-up, where a rule per
 * VM cost every packet a comparison per VM. Pure.
 */
function guestCounters(vms: readonly Vm[]): NftStatement[][] {
  const byAddress = (family: 'ip' | 'ip6', address: (vm: Vm) => string | undefined): NftStatement[][] => {
    const pairs = vms.flatMap((vm) => {
      const a = address(vm);
      return a === undefined ? [] : [[a, vmCounterIn(vm.name)] as unknown as NftValue];
    });
    return pairs.length === 0
      ? []
      : [[{ counter: { map: { key: payload(family, 'daddr'), data: { set: pairs } } } }]];
  };
  return [...byAddress('ip', (vm) => vm.ipv4), ...byAddress('ip6', (vm) => vm.ipv6)];
}
