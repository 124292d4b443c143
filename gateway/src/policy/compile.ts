import { MARK, NFQ_REPEAT_MARK } from '../nft/marks.js';
import { allowSet, IPS_BLOCK4, IPS_BLOCK6, ruleSet, serviceSet, vmChain, vmCounter } from '../nft/names.js';
import type { ChainSpec, NftStatement, NftValue, QueueSettings, Ruleset, SetSpec } from '../nft/types.js';
import { PRIO } from '../nft/types.js';
import { effectiveProfiles } from './builtins.js';
import { fingerprint } from './fingerprint.js';
import type { Policy, Profile, Rule, Vm } from './model.js';
import type { GatewayNetwork } from './network.js';
import { groupByPrefix, maskV4, maskV6, normaliseIntervals } from './intervals.js';
import type { ServiceWindows } from './schedule.js';
import { normaliseMac, parseCidr } from './net.js';

/**
 * Policy → nftables, pure. The result is a model of the one table the service owns
 * (`inet portcullis`); the applier turns it into a single atomic transaction, or
 * into incremental updates against the model applied before.
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
  /** Addresses of the ways around the filter: known DoH endpoints, Tor relays (bundle lists). */
  readonly bypass?: { readonly doh?: readonly string[]; readonly tor?: readonly string[] };
  /** Per-service windows of each VM's schedules, by VM name (see schedule.ts). */
  readonly serviceWindows?: ReadonlyMap<string, readonly ServiceWindows[]>;
  /** Addresses DHCP hands to unknown MACs: they may reach DHCP, DNS and the block page only. */
  readonly unassigned?: { readonly from: string; readonly to: string };
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

const m = (left: NftValue, right: NftValue, op: '==' | '!=' | '<' = '=='): NftStatement => ({
  match: { op, left, right },
});
const meta = (key: string): NftValue => ({ meta: { key } });
const payload = (protocol: string, field: string): NftValue => ({ payload: { protocol, field } });
const counter = (name?: string): NftStatement => ({ counter: name ?? null });
const ACCEPT: NftStatement = { accept: null };
const DROP: NftStatement = { drop: null };

/** Compile the whole policy. Pure and deterministic: the same input gives the same output. */
export function compile(spec: CompileInput): Ruleset {
  const { policy, network, now, cache } = spec;
  cache?.begin(network);
  const reuse = <T>(slot: string, key: () => readonly unknown[], make: () => T): T =>
    cache ? cache.reuse(slot, key(), make) : make();
  const profiles = effectiveProfiles(policy.profiles);
  const counters = [
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
  const identityKey = (): string[] => [
    vms.map((vm) => `${vm.name} ${vm.mac} ${vm.ipv4} ${vm.ipv6 ?? ''}`).join('\n'),
  ];
  sets.push(
    ...reuse('identity', identityKey, (): SetSpec[] => [
      {
        name: 'macip4',
        type: ['ether_addr', 'ipv4_addr'],
        flags: [],
        elements: vms.map((vm) => ({ concat: [normaliseMac(vm.mac), vm.ipv4] })),
        comment: 'registered MAC . IPv4 pairs',
      },
      {
        name: 'macip6',
        type: ['ether_addr', 'ipv6_addr'],
        flags: [],
        elements: vms.filter((vm) => vm.ipv6).map((vm) => ({ concat: [normaliseMac(vm.mac), vm.ipv6!] })),
        comment: 'registered MAC . IPv6 pairs',
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
    ]),
  );

  // --- address lists, deny lists, the base chains: the same for every VM -----------------
  const sharedKey = (): unknown[] => [
    policy.ipv6,
    fingerprint(policy.vpnEndpoints),
    fingerprint(policy.updateServers),
    fingerprint(policy.deny),
    spec.lists?.deny,
    fingerprint(spec.bypass?.doh),
    fingerprint(spec.bypass?.tor),
    fingerprint(spec.unassigned),
    fingerprint(spec.queue),
  ];
  const shared = reuse('shared', sharedKey, () => compileShared(spec));
  counters.push(...shared.counters);
  sets.push(...shared.sets);
  // traffic to the guests: slow-downs of the download direction (the VMs add theirs)
  const toGuests: NftStatement[][] = [];
  chains.push(...shared.before, { name: 'to_guests', rules: toGuests }, ...shared.after);

  // --- per-VM chains -------------------------------------------------------------------
  const byName = new Map(vms.map((vm) => [vm.name, vm]));
  for (const vm of vms) {
    const profile = vm.quarantine ? profiles.get('quarantine')! : profiles.get(vm.profile)!;
    counters.push(vmCounter(vm.name));
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

  return { counters, sets, chains };
}

/** What `compile` makes besides the identity sets and the VMs' parts. */
interface SharedOutput {
  readonly counters: readonly string[];
  readonly sets: readonly SetSpec[];
  /** Chains before `to_guests`, and after. */
  readonly before: readonly ChainSpec[];
  readonly after: readonly ChainSpec[];
}

/** The address lists, the deny lists and the base chains. */
function compileShared(spec: CompileInput): SharedOutput {
  const { policy, network } = spec;
  const lan = network.lan.iface;
  const wan = network.wan.iface;
  const mgmt = network.mgmt.iface;
  const counters: string[] = [];
  const sets: SetSpec[] = [];
  const chains: ChainSpec[] = [];

  // --- address lists ---------------------------------------------------------------
  const list = (name: string, cidrs: readonly string[] | undefined, comment: string): void => {
    // validate.ts has rejected bad entries already; overlaps merge here
    const { v4, v6 } = normaliseIntervals(cidrs ?? []);
    sets.push({ name: `${name}4`, type: 'ipv4_addr', flags: ['interval'], elements: v4, comment });
    sets.push({ name: `${name}6`, type: 'ipv6_addr', flags: ['interval'], elements: v6, comment });
  };
  list('vpn', policy.vpnEndpoints, 'corporate VPN endpoints');
  list('doh', spec.bypass?.doh, 'known DNS-over-HTTPS endpoints');
  list('tor', spec.bypass?.tor, 'Tor relays');
  list('update', policy.updateServers, 'update servers (reachable in quarantine)');
  // the deny lists (the policy's own and the bundles'): one hash set per prefix
  // length, matched as `ip daddr & mask`, all checked in one chain
  const denyRules: NftStatement[][] = [];
  const lists: Array<[string, ReturnType<typeof groupByPrefix>, string]> = [
    ['deny', groupByPrefix(policy.deny ?? []), 'policy deny list'],
  ];
  if (spec.lists?.deny) lists.push(['list', spec.lists.deny, 'bundle deny list']);
  for (const [prefix, groups, what] of lists) {
    for (const [family, byLen] of [
      [4, groups.v4],
      [6, groups.v6],
    ] as const) {
      for (const [len, addrs] of byLen) {
        const name = `${prefix}${family}_p${len}`;
        // a size hint makes the kernel use a fixed-size hash; rounded up so that small
        // list updates fit without re-creating the set
        const size =
          prefix === 'list' ? 2 ** Math.ceil(Math.log2(Math.max(1024, addrs.length * 1.25))) : undefined;
        sets.push({
          name,
          type: family === 4 ? 'ipv4_addr' : 'ipv6_addr',
          flags: [],
          elements: addrs,
          comment: `${what}, /${len}`,
          ...(size ? { size } : {}),
        });
        const daddr = payload(family === 4 ? 'ip' : 'ip6', 'daddr');
        const full = family === 4 ? 32 : 128;
        const left: NftValue =
          len === full ? daddr : { '&': [daddr, family === 4 ? maskV4(len) : maskV6(len)] };
        denyRules.push([m(left, `@${name}`), counter('deny_list_dropped'), DROP]);
      }
    }
  }
  counters.push('deny_list_dropped');
  chains.push({ name: 'deny_list', rules: denyRules });
  sets.push({
    name: IPS_BLOCK4,
    type: 'ipv4_addr',
    flags: ['timeout'],
    elements: [],
    dynamic: true,
    comment: 'remote hosts blocked by IPS alerts',
  });
  sets.push({
    name: IPS_BLOCK6,
    type: 'ipv6_addr',
    flags: ['timeout'],
    elements: [],
    dynamic: true,
    comment: 'remote hosts blocked by IPS alerts',
  });

  // --- prerouting, raw: anti-spoofing before anything else --------------------------
  const antispoof: NftStatement[][] = [[m(meta('iifname'), lan, '!='), ACCEPT]];
  if (policy.ipv6) {
    antispoof.push([
      m(meta('nfproto'), 'ipv6'),
      m({ concat: [payload('ether', 'saddr'), payload('ip6', 'saddr')] }, '@macip6'),
      ACCEPT,
    ]);
    // link-local (neighbour discovery) from a registered MAC
    antispoof.push([
      m(payload('ether', 'saddr'), '@macs'),
      m(payload('ip6', 'saddr'), { prefix: { addr: 'fe80::', len: 10 } }),
      ACCEPT,
    ]);
  }
  antispoof.push([m(meta('nfproto'), 'ipv6'), counter('ipv6_dropped'), DROP]);
  antispoof.push([m({ concat: [payload('ether', 'saddr'), payload('ip', 'saddr')] }, '@macip4'), ACCEPT]);
  // DHCP before the guest has its lease: from 0.0.0.0, a registered MAC only
  antispoof.push([
    m(payload('ether', 'saddr'), '@macs'),
    m(payload('ip', 'saddr'), '0.0.0.0'),
    m(payload('udp', 'sport'), 68),
    m(payload('udp', 'dport'), 67),
    ACCEPT,
  ]);
  antispoof.push([m(payload('ether', 'saddr'), '@macs'), counter('spoof_dropped'), DROP]);
  if (spec.unassigned) {
    // unknown devices (new or randomised MACs) from the unassigned pool: DHCP, DNS and
    // the block page on the appliance; the forward chain has no chain for them
    antispoof.push([
      m(payload('ip', 'saddr'), { range: [spec.unassigned.from, spec.unassigned.to] }),
      counter('unassigned_seen'),
      ACCEPT,
    ]);
    antispoof.push([m(payload('ip', 'saddr'), '0.0.0.0'), m(payload('udp', 'dport'), 67), ACCEPT]);
    counters.push('unassigned_seen');
  }
  antispoof.push([counter('unknown_mac_dropped'), DROP]);
  chains.push({
    name: 'antispoof',
    base: { type: 'filter', hook: 'prerouting', prio: PRIO.raw, policy: 'accept' },
    rules: antispoof,
  });

  // --- prerouting, dstnat: every guest DNS query goes to the appliance ---------------
  chains.push({
    name: 'dns_redirect',
    base: { type: 'nat', hook: 'prerouting', prio: PRIO.dstnat, policy: 'accept' },
    rules: [
      [
        m(meta('iifname'), lan),
        m(meta('l4proto'), { set: ['tcp', 'udp'] }),
        m(payload('th', 'dport'), 53),
        { redirect: { port: 53 } },
      ],
    ],
  });

  // --- input: guests reach only DHCP, DNS (and the block page) ------------------------
  const input: NftStatement[][] = [
    [m(meta('iif'), 'lo'), ACCEPT],
    [m({ ct: { key: 'state' } }, { set: ['established', 'related'] }), ACCEPT],
    [m({ ct: { key: 'state' } }, 'invalid'), DROP],
    [m(meta('iifname'), lan), m(payload('udp', 'dport'), 67), ACCEPT],
    [
      m(meta('iifname'), lan),
      m(meta('l4proto'), { set: ['tcp', 'udp'] }),
      m(payload('th', 'dport'), 53),
      ACCEPT,
    ],
  ];
  const blockPort = network.blockPagePort ?? 80;
  if (blockPort > 0) input.push([m(meta('iifname'), lan), m(payload('tcp', 'dport'), blockPort), ACCEPT]);
  // HTTPS to a blocked name lands here: refuse it at once instead of letting it time out
  input.push([m(meta('iifname'), lan), m(payload('tcp', 'dport'), 443), { reject: { type: 'tcp reset' } }]);
  input.push([
    m(meta('iifname'), lan),
    m(meta('l4proto'), 'icmp'),
    m(payload('icmp', 'type'), 'echo-request'),
    ACCEPT,
  ]);
  if (policy.ipv6) {
    input.push([m(meta('iifname'), lan), m(meta('l4proto'), 'ipv6-icmp'), ACCEPT]);
  }
  input.push([m(meta('iifname'), lan), counter('guest_input_dropped'), DROP]);
  input.push([m(meta('iifname'), mgmt), m(payload('tcp', 'dport'), { set: network.mgmt.ports }), ACCEPT]);
  input.push([m(meta('iifname'), mgmt), m(meta('l4proto'), { set: ['icmp', 'ipv6-icmp'] }), ACCEPT]);
  chains.push({
    name: 'input',
    base: { type: 'filter', hook: 'input', prio: PRIO.filter, policy: 'drop' },
    rules: input,
  });

  // --- forward: each guest to its own chain --------------------------------------------
  const forward: NftStatement[][] = [];
  if (spec.queue) {
    // Suricata's repeat verdict sends a packet through this hook again, marked: it was
    // judged already. With the nft queue, save Suricata's bypass bit to the conntrack
    // mark here (xtables: the compat chain saves it).
    const repeated = m({ '&': [meta('mark'), NFQ_REPEAT_MARK] }, 0, '!=');
    if (spec.queue.kind === 'nft') {
      forward.push([
        m({ '&': [meta('mark'), NFQ_REPEAT_MARK | MARK.bypass] }, NFQ_REPEAT_MARK | MARK.bypass),
        { mangle: { key: { ct: { key: 'mark' } }, value: { '|': [{ ct: { key: 'mark' } }, MARK.bypass] } } },
      ]);
    }
    forward.push([repeated, ACCEPT]);
  }
  forward.push(
    [m({ ct: { key: 'state' } }, 'invalid'), DROP],
    [m(meta('iifname'), lan), { vmap: { key: payload('ether', 'saddr'), data: '@vm_chains' } }],
    [m(meta('oifname'), lan), { jump: { target: 'to_guests' } }],
    [
      m(meta('iifname'), wan),
      m(meta('oifname'), lan),
      m({ ct: { key: 'state' } }, { set: ['established', 'related'] }),
      ACCEPT,
    ],
    [counter('forward_dropped'), DROP],
  );
  chains.push({
    name: 'forward',
    base: { type: 'filter', hook: 'forward', prio: PRIO.filter - 10, policy: 'drop' },
    rules: forward,
  });

  const before = chains.splice(0);

  // --- postrouting: masquerade to the uplink ------------------------------------------
  chains.push({
    name: 'nat_out',
    base: { type: 'nat', hook: 'postrouting', prio: PRIO.srcnat, policy: 'accept' },
    rules: [[m(meta('oifname'), wan), { masquerade: null }]],
  });

  return { counters, sets, before, after: chains };
}

/** What one VM compiles to. */
interface VmOutput {
  readonly chains: readonly ChainSpec[];
  readonly sets: readonly SetSpec[];
  readonly toGuests: readonly NftStatement[][];
}

/**
 * Everything a VM's output is compiled from: the VM and its profile in force (their
 * fingerprints), and as text the addresses of the VMs it refers to, which of its rules
 * have expired at `now`, its windows, budget and the queue settings. Equal keys
 * compile to equal output.
 */
export function vmKey(
  vm: Vm,
  profile: Profile,
  ctx: Pick<VmContext, 'byName' | 'now' | 'windows' | 'serviceWindows' | 'budgetUntil' | 'queue'>,
): string[] {
  let deps = '';
  for (const name of profile.reach) deps += `reach ${name} ${ctx.byName.get(name)?.ipv4 ?? ''}\n`;
  for (const rules of [vm.rules ?? [], profile.rules]) {
    for (const r of rules) {
      if ('vm' in r.to) deps += `to ${r.to.vm} ${ctx.byName.get(r.to.vm)?.ipv4 ?? ''}\n`;
      if (r.expires !== undefined) deps += `expired ${remaining(r.expires, ctx.now)! <= 0}\n`;
    }
  }
  const plain =
    ctx.windows.length === 0 &&
    ctx.serviceWindows.length === 0 &&
    ctx.budgetUntil === undefined &&
    ctx.queue === undefined;
  if (!plain)
    deps += JSON.stringify([
      ctx.windows,
      ctx.serviceWindows,
      ctx.budgetUntil?.getTime() ?? null,
      ctx.queue ?? null,
    ]);
  return [fingerprint(vm), fingerprint(profile), deps];
}

interface VmContext {
  readonly network: GatewayNetwork;
  readonly now: Date;
  readonly byName: ReadonlyMap<string, Vm>;
  readonly sets: SetSpec[];
  readonly windows: readonly KernelWindow[];
  readonly serviceWindows: readonly ServiceWindows[];
  readonly budgetUntil: Date | undefined;
  readonly toGuests: NftStatement[][];
  readonly queue: QueueSettings | undefined;
  /** The profile in force for the VM (quarantine's while quarantined). */
  readonly profile: Profile;
}

const limitOver = (kbytes: number): NftStatement => ({
  limit: {
    rate: kbytes,
    per: 'second',
    rate_unit: 'kbytes',
    burst: Math.max(kbytes, 64),
    burst_unit: 'kbytes',
    inv: true,
  },
});
const REJECT: NftStatement = { reject: null };

function compileVm(vm: Vm, profile: Profile, ctx: VmContext): ChainSpec[] {
  const { network, sets } = ctx;
  const lan = network.lan.iface;
  const wan = network.wan.iface;
  const chain = vmChain(vm.name);
  const rules: NftStatement[][] = [[counter(vmCounter(vm.name))]];
  const established = m({ ct: { key: 'state' } }, { set: ['established', 'related'] });

  // reactive IPS blocks, whatever the profile
  rules.push([m(payload('ip', 'daddr'), `@${IPS_BLOCK4}`), DROP]);
  rules.push([m(payload('ip6', 'daddr'), `@${IPS_BLOCK6}`), DROP]);

  if (profile.isolated) {
    // quarantine: DNS (input chain) and update servers only; nothing else, established or not
    rules.push([m(meta('oifname'), wan), m(payload('ip', 'daddr'), '@update4'), ACCEPT]);
    rules.push([m(meta('oifname'), wan), m(payload('ip6', 'daddr'), '@update6'), ACCEPT]);
    rules.push([DROP]);
    return [{ name: chain, rules }];
  }

  // paused, or the daily budget spent: nothing at all (kernel clock ends both)
  if (vm.pause) {
    rules.push(vm.pause.until ? [m(meta('time'), utcTime(vm.pause.until), '<'), DROP] : [DROP]);
  }
  if (ctx.budgetUntil) rules.push([m(meta('time'), utcTime(ctx.budgetUntil.toISOString()), '<'), DROP]);

  const parental = profile.parental ?? {};
  if (parental.closeBypass) {
    // DNS over TLS and over QUIC
    rules.push([m(meta('l4proto'), { set: ['tcp', 'udp'] }), m(payload('th', 'dport'), 853), REJECT]);
    // QUIC and HTTP/3: browsers fall back to TCP, where DNS filtering and SNI apply
    rules.push([m(meta('l4proto'), 'udp'), m(payload('udp', 'dport'), 443), REJECT]);
    rules.push([m(payload('ip', 'daddr'), '@doh4'), REJECT]);
    rules.push([m(payload('ip6', 'daddr'), '@doh6'), REJECT]);
    rules.push([m(payload('ip', 'daddr'), '@tor4'), DROP]);
    rules.push([m(payload('ip6', 'daddr'), '@tor6'), DROP]);
    // VPNs on their default ports: WireGuard, OpenVPN, IPsec/IKE; and ESP/AH
    rules.push([
      m(meta('l4proto'), 'udp'),
      m(payload('udp', 'dport'), { set: [500, 1194, 1701, 4500, 51820] }),
      DROP,
    ]);
    rules.push([m(meta('l4proto'), 'tcp'), m(payload('tcp', 'dport'), { set: [1194, 1723] }), DROP]);
    rules.push([m(meta('l4proto'), { set: ['esp', 'ah'] }), DROP]);
  }

  // per-service schedules and slow-downs: by the addresses the services' names resolved to
  const services = new Set<string>([
    ...ctx.serviceWindows.flatMap((w) => w.services),
    ...(parental.slowServices ?? []).map((x) => x.service),
  ]);
  for (const svc of [...services].sort()) {
    for (const family of [4, 6] as const) {
      sets.push({
        name: serviceSet(vm.name, svc, family),
        type: family === 4 ? 'ipv4_addr' : 'ipv6_addr',
        flags: ['timeout'],
        elements: [],
        dynamic: true,
        comment: `${vm.name}: ${svc} addresses`,
      });
    }
  }
  for (const sw of ctx.serviceWindows) {
    for (const svc of sw.services) {
      for (const w of sw.windows) {
        for (const family of [4, 6] as const) {
          rules.push([
            m(payload(family === 4 ? 'ip' : 'ip6', 'daddr'), `@${serviceSet(vm.name, svc, family)}`),
            m(meta('day'), { set: w.days }),
            m(meta('hour'), { range: [w.from, w.to] }),
            REJECT,
          ]);
        }
      }
    }
  }
  for (const slow of parental.slowServices ?? []) {
    rules.push([
      m(payload('ip', 'daddr'), `@${serviceSet(vm.name, slow.service, 4)}`),
      limitOver(slow.kbytes),
      DROP,
    ]);
    ctx.toGuests.push([
      m(payload('ip', 'saddr'), `@${serviceSet(vm.name, slow.service, 4)}`),
      m(payload('ip', 'daddr'), vm.ipv4),
      limitOver(slow.kbytes),
      DROP,
    ]);
  }
  if (parental.slowKbytes) {
    rules.push([limitOver(parental.slowKbytes), DROP]);
    ctx.toGuests.push([m(payload('ip', 'daddr'), vm.ipv4), limitOver(parental.slowKbytes), DROP]);
  }

  // schedule windows: enforced by the kernel clock, so they hold when the service is down
  const allowlistChain = `${chain}_allowlist`;
  let needsAllowlist = profile.internet === 'allowlist-only';
  for (const w of ctx.windows) {
    const when: NftStatement[] = [
      m(meta('day'), { set: w.days }),
      m(meta('hour'), { range: [w.from, w.to] }),
    ];
    if (w.mode === 'deny') rules.push([...when, DROP]);
    else {
      needsAllowlist = true;
      rules.push([...when, { goto: { target: allowlistChain } }]);
    }
  }

  // the VM's own rules, then its profile's; first match decides
  const ordered = [...(vm.rules ?? []), ...profile.rules];
  ordered.forEach((rule, index) => {
    const compiled = compileRule(vm, rule, index, ctx);
    if (compiled) rules.push(...compiled);
  });

  // established flows too go through Suricata: it needs every packet of a flow it inspects
  rules.push(...accepting([established], profile, ctx));

  // other VMs: only those this profile may reach
  for (const target of profile.reach) {
    const t = ctx.byName.get(target);
    if (!t || t.name === vm.name) continue;
    rules.push([m(meta('oifname'), lan), m(payload('ip', 'daddr'), t.ipv4), ACCEPT]);
  }
  rules.push([m(meta('oifname'), lan), counter('guest_to_guest_dropped'), DROP]);

  // VPN endpoints: only for profiles that may use them
  if (profile.vpn)
    rules.push(...accepting([m(meta('oifname'), wan), m(payload('ip', 'daddr'), '@vpn4')], profile, ctx));
  else rules.push([m(payload('ip', 'daddr'), '@vpn4'), DROP]);
  rules.push([{ jump: { target: 'deny_list' } }]);

  const chains: ChainSpec[] = [];
  if (needsAllowlist) {
    sets.push({
      name: allowSet(vm.name, 4),
      type: 'ipv4_addr',
      flags: ['timeout'],
      elements: [],
      dynamic: true,
      comment: `${vm.name}: addresses of allowed names`,
    });
    sets.push({
      name: allowSet(vm.name, 6),
      type: 'ipv6_addr',
      flags: ['timeout'],
      elements: [],
      dynamic: true,
      comment: `${vm.name}: addresses of allowed names`,
    });
    const allowRules: NftStatement[][] = [
      ...accepting([established], profile, ctx),
      ...accepting(
        [m(meta('oifname'), wan), m(payload('ip', 'daddr'), `@${allowSet(vm.name, 4)}`)],
        profile,
        ctx,
      ),
      ...accepting(
        [m(meta('oifname'), wan), m(payload('ip6', 'daddr'), `@${allowSet(vm.name, 6)}`)],
        profile,
        ctx,
      ),
      [DROP],
    ];
    chains.push({ name: allowlistChain, rules: allowRules });
  }
  if (profile.internet === 'open') rules.push(...accepting([m(meta('oifname'), wan)], profile, ctx));
  else if (profile.internet === 'allowlist-only') rules.push([{ goto: { target: allowlistChain } }]);
  rules.push([DROP]);
  // the other direction of the VM's flows goes to Suricata too: it needs both to inspect
  if (ctx.queue && profile.ips.mode === 'ips') {
    const replies: NftStatement[] = [established, m(payload('ip', 'daddr'), vm.ipv4)];
    if (ctx.queue.kind === 'xt') ctx.toGuests.push([...replies, markQueue(profile)]);
    else ctx.toGuests.push(...accepting(replies, profile, ctx));
  }
  return [{ name: chain, rules }, ...chains];
}

/** `meta mark set meta mark | queue bit`: keeps the other bits (the bypass bit above all). */
function markQueue(profile: Profile): NftStatement {
  const bit = profile.ips.failure === 'fail-open' ? MARK.queueOpen : MARK.queueClosed;
  return { mangle: { key: meta('mark'), value: { '|': [meta('mark'), bit] } } };
}

/**
 * The rules that accept what `match` matches, through Suricata when the profile's IPS
 * mode is `ips`: with the nft queue statement, flows Suricata bypassed (the bit in the
 * conntrack mark) are accepted first and the rest is queued (fail-open: `bypass` when
 * Suricata is not listening); with xtables, the packet is marked and accepted here and
 * the NFQUEUE target of the compat layer queues it by the mark.
 */
function accepting(match: NftStatement[], profile: Profile, ctx: VmContext): NftStatement[][] {
  if (!ctx.queue || profile.ips.mode !== 'ips') return [[...match, ACCEPT]];
  if (ctx.queue.kind === 'xt') return [[...match, markQueue(profile), ACCEPT]];
  const open = profile.ips.failure === 'fail-open';
  return [
    [...match, m({ '&': [{ ct: { key: 'mark' } }, MARK.bypass] }, 0, '!='), ACCEPT],
    [...match, { queue: { num: ctx.queue.num, ...(open ? { flags: 'bypass' } : {}) } }],
  ];
}

function cidrValue(text: string): NftValue {
  const [addr, len] = text.split('/');
  return len === undefined ? addr! : { prefix: { addr: addr!, len: Number(len) } };
}

/** Seconds from now until `iso`, or undefined for no expiry; ≤ 0 means expired. */
function remaining(iso: string | undefined, now: Date): number | undefined {
  if (iso === undefined) return undefined;
  return Math.floor((Date.parse(iso) - now.getTime()) / 1000);
}

/** drop and reject; accept goes through accepting(). */
function verdict(rule: Rule): NftStatement[][] {
  if (rule.action === 'drop') return [[DROP]];
  return [[m(meta('l4proto'), 'tcp'), { reject: { type: 'tcp reset' } }], [{ reject: null }]];
}

/** One policy rule → nft rules (reject needs two). Undefined when expired. */
function compileRule(vm: Vm, rule: Rule, index: number, ctx: VmContext): NftStatement[][] | undefined {
  const left = remaining(rule.expires, ctx.now);
  if (left !== undefined && left <= 0) return undefined;
  const l4: NftStatement[] = [];
  const proto = rule.proto ?? 'any';
  if (proto === 'tcp' || proto === 'udp') {
    l4.push(m(meta('l4proto'), proto));
    if (rule.ports && rule.ports.length > 0) {
      const ports: NftValue[] = rule.ports.map((p) => {
        const [a, b] = p.split('-').map(Number);
        return b === undefined ? a! : { range: [a!, b] };
      });
      l4.push(m(payload(proto, 'dport'), { set: ports }));
    }
  } else if (proto === 'icmp') {
    l4.push(m(meta('l4proto'), { set: ['icmp', 'ipv6-icmp'] }));
    if (rule.icmpType) l4.push(m(payload('icmp', 'type'), rule.icmpType));
  }
  const expiry: NftStatement[] = [];
  const targets: NftStatement[][] = [];
  const to = rule.to;
  // an accept goes through Suricata like every other accepted packet of an `ips` VM
  const v = rule.action === 'accept' ? accepting([], ctx.profile, ctx) : verdict(rule);
  if ('cidr' in to) {
    // one prefix: matched inline, no set (every named interval set makes each later
    // nft transaction slower: nft fetches their elements into its cache)
    const p = parseCidr(to.cidr);
    if ('error' in p) return undefined;
    targets.push([m(payload(p.family === 4 ? 'ip' : 'ip6', 'daddr'), cidrValue(p.text))]);
    if (left !== undefined) expiry.push(m(meta('time'), utcTime(rule.expires!), '<'));
  } else if ('domain' in to) {
    // Filled from DNS answers with their TTL (capped at the rule's expiry) by the DNS learner.
    for (const family of [4, 6] as const) {
      const name = ruleSet(vm.name, rule, index, family);
      ctx.sets.push({
        name,
        type: family === 4 ? 'ipv4_addr' : 'ipv6_addr',
        flags: ['timeout'],
        elements: [],
        dynamic: true,
        comment: `${vm.name}: ${to.domain}`,
      });
      targets.push([m(payload(family === 4 ? 'ip' : 'ip6', 'daddr'), `@${name}`)]);
    }
  } else if ('vm' in to) {
    const t = ctx.byName.get(to.vm);
    if (!t) return undefined;
    targets.push([m(meta('oifname'), ctx.network.lan.iface), m(payload('ip', 'daddr'), t.ipv4)]);
    if (left !== undefined) expiry.push(m(meta('time'), utcTime(rule.expires!), '<'));
  } else if (to.special === 'dns') {
    targets.push([
      m(meta('l4proto'), { set: ['tcp', 'udp'] }),
      m(payload('th', 'dport'), { set: [53, 853] }),
    ]);
    if (left !== undefined) expiry.push(m(meta('time'), utcTime(rule.expires!), '<'));
  } else {
    targets.push([m(meta('oifname'), ctx.network.wan.iface)]);
    if (left !== undefined) expiry.push(m(meta('time'), utcTime(rule.expires!), '<'));
  }
  const out: NftStatement[][] = [];
  for (const t of targets) for (const verdictRule of v) out.push([...t, ...l4, ...expiry, ...verdictRule]);
  return out;
}

/** nft parses `meta time` strings in the process time zone; the service runs with TZ=UTC. */
function utcTime(iso: string): string {
  return new Date(iso).toISOString().slice(0, 19).replace('T', ' ');
}
