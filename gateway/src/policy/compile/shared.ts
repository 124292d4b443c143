import { MARK, NFQ_REPEAT_MARK } from '../../nft/marks.js';
import { IPS_BLOCK4, IPS_BLOCK6, IPS_VMBLOCK4, IPS_VMBLOCK6, VERIFIED4, VERIFIED6 } from '../../nft/names.js';
import type { ChainSpec, NftStatement, NftValue, SetSpec } from '../../nft/types.js';
import { PRIO } from '../../nft/types.js';
import type { CompileInput } from '../compile.js';
import { DNS_FLOOD_RATE } from '../network.js';
import { groupByPrefix, maskV4, maskV6, normaliseIntervals } from '../intervals.js';
import { ACCEPT, DROP, counter, m, meta, payload } from './statements.js';

/**
 * The part of the table that is the same for every VM: the address lists (VPN, DoH,
 * Tor, update servers), the deny lists, the IPS block sets and the base chains
 * (anti-spoofing, DNS redirect, input, forward, masquerade).
 */

/** What `compile` makes besides the identity sets and the VMs' parts. */
export interface SharedOutput {
  readonly counters: readonly string[];
  readonly sets: readonly SetSpec[];
  /** Chains before `to_guests`, and after. */
  readonly before: readonly ChainSpec[];
  readonly after: readonly ChainSpec[];
}

/** The address lists, the deny lists and the base chains. */
export function compileShared(spec: CompileInput): SharedOutput {
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
  // consumer VPN providers' servers (bundle list), unlike `vpn`: the corporate VPN a profile may reach
  list('vpnp', spec.bypass?.vpn, 'VPN provider endpoints');
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
  sets.push({
    name: IPS_VMBLOCK4,
    type: ['ipv4_addr', 'ipv4_addr'],
    flags: ['timeout'],
    elements: [],
    dynamic: true,
    comment: 'remote hosts blocked for one VM by its IPS alerts (VM . remote)',
  });
  sets.push({
    name: IPS_VMBLOCK6,
    type: ['ipv6_addr', 'ipv6_addr'],
    flags: ['timeout'],
    elements: [],
    dynamic: true,
    comment: 'remote hosts blocked for one VM by its IPS alerts (VM . remote)',
  });
  for (const [name, type] of [
    [VERIFIED4, 'ipv4_addr'],
    [VERIFIED6, 'ipv6_addr'],
  ] as const)
    sets.push({
      name,
      type: [type, type],
      flags: ['timeout'],
      elements: [],
      dynamic: true,
      comment: 'VM . remote: established flows that passed the whole chain in the last second',
    });

  // --- prerouting, raw: anti-spoofing before anything else --------------------------
  const antispoof: NftStatement[][] = [[m(meta('iifname'), lan, '!='), ACCEPT]];
  // the mark is the guest's port (set by the guest bridge's table, 0 on a port with no
  // VM): a registered MAC and address count only on their VM's port
  const portMac: NftValue = { concat: [meta('mark'), payload('ether', 'saddr')] };
  if (policy.ipv6) {
    antispoof.push([
      m(meta('nfproto'), 'ipv6'),
      m({ concat: [meta('mark'), payload('ether', 'saddr'), payload('ip6', 'saddr')] }, '@macip6'),
      ACCEPT,
    ]);
    // link-local (neighbour discovery) from a registered MAC on its port
    antispoof.push([
      m(portMac, '@portmacs'),
      m(payload('ip6', 'saddr'), { prefix: { addr: 'fe80::', len: 10 } }),
      ACCEPT,
    ]);
  }
  antispoof.push([m(meta('nfproto'), 'ipv6'), counter('ipv6_dropped'), DROP]);
  antispoof.push([
    m({ concat: [meta('mark'), payload('ether', 'saddr'), payload('ip', 'saddr')] }, '@macip4'),
    ACCEPT,
  ]);
  // DHCP before the guest has its lease: from 0.0.0.0, a registered MAC on its port only
  antispoof.push([
    m(portMac, '@portmacs'),
    m(payload('ip', 'saddr'), '0.0.0.0'),
    m(payload('udp', 'sport'), 68),
    m(payload('udp', 'dport'), 67),
    ACCEPT,
  ]);
  // a registered MAC on another port than its VM's: counted, then dropped as a spoof
  antispoof.push([
    m(payload('ether', 'saddr'), '@macs'),
    m(portMac, '@portmacs', '!='),
    counter('port_dropped'),
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
  const input: NftStatement[][] = [[m(meta('iif'), 'lo'), ACCEPT]];
  // a UDP DNS flood from one guest is cut here, before the DNS filter reads a datagram
  // of it (and before an established flow is let through): a bucket per source address
  // (anti-spoofing has checked it), kept a minute after its last packet
  const floodRate = network.dnsFloodRate ?? DNS_FLOOD_RATE;
  if (floodRate > 0) {
    const families: Array<['ip' | 'ip6', string]> = [['ip', 'ipv4_addr']];
    if (policy.ipv6) families.push(['ip6', 'ipv6_addr']);
    for (const [family, type] of families) {
      const name = `dns_flood${family === 'ip' ? 4 : 6}`;
      sets.push({
        name,
        type,
        flags: ['timeout'],
        elements: [],
        dynamic: true,
        size: 65536,
        comment: 'UDP DNS rate per guest address',
      });
      input.push([
        m(meta('iifname'), lan),
        m(payload('udp', 'dport'), 53),
        {
          set: {
            op: 'update',
            elem: { elem: { val: payload(family, 'saddr'), timeout: 60 } },
            set: `@${name}`,
            stmt: [{ limit: { rate: floodRate, per: 'second', burst: floodRate, inv: true } }],
          },
        },
        counter('dns_flood_dropped'),
        DROP,
      ]);
    }
    counters.push('dns_flood_dropped');
  }
  input.push(
    [m({ ct: { key: 'state' } }, { set: ['established', 'related'] }), ACCEPT],
    [m({ ct: { key: 'state' } }, 'invalid'), DROP],
    [m(meta('iifname'), lan), m(payload('udp', 'dport'), 67), ACCEPT],
    [
      m(meta('iifname'), lan),
      m(meta('l4proto'), { set: ['tcp', 'udp'] }),
      m(payload('th', 'dport'), 53),
      ACCEPT,
    ],
  );
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
