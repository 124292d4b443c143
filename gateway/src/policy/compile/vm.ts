import {
  allowSet,
  IPS_BLOCK4,
  IPS_BLOCK6,
  IPS_VMBLOCK4,
  IPS_VMBLOCK6,
  serviceSet,
  VERIFIED4,
  VERIFIED6,
  VERIFIED_SECONDS,
  vmChain,
  vmCounter,
  vmDropCounter,
  type VmDropReason,
} from '../../nft/names.js';
import type { ChainSpec, NftStatement, NftValue, SetSpec } from '../../nft/types.js';
import { fingerprint } from '../fingerprint.js';
import type { Profile, Vm } from '../model.js';
import { accepting, markQueue, type VmContext } from './context.js';
import { compileRule } from './rule.js';
import {
  ACCEPT,
  DROP,
  REJECT,
  counter,
  limitOver,
  m,
  meta,
  payload,
  remaining,
  utcTime,
} from './statements.js';

/**
 * One VM's part of the table: its chain (IPS blocks, quarantine, pause and budget,
 * closed bypasses, service schedules and slow-downs, schedule windows, its rules and
 * its profile's, other VMs, VPN, internet), its allowlist chain and its sets.
 */

/** What one VM compiles to. */
export interface VmOutput {
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

export function compileVm(vm: Vm, profile: Profile, ctx: VmContext): ChainSpec[] {
  const { network, sets } = ctx;
  const lan = network.lan.iface;
  const wan = network.wan.iface;
  const chain = vmChain(vm.name);
  const rules: NftStatement[][] = [[counter(vmCounter(vm.name))]];
  const established = m({ ct: { key: 'state' } }, { set: ['established', 'related'] });
  // the fast path's: not related (ICMP errors, expectations), which is no flow of a pair
  const establishedOnly = m({ ct: { key: 'state' } }, 'established');
  // a drop or reject, counted by why (metrics: portcullis_vm_drops_total)
  const dropped = (reason: VmDropReason, verdict: NftStatement = DROP): NftStatement[] => [
    counter(vmDropCounter(vm.name, reason)),
    verdict,
  ];

  // reactive IPS blocks, whatever the profile
  rules.push([m(payload('ip', 'daddr'), `@${IPS_BLOCK4}`), ...dropped('ips')]);
  rules.push([m(payload('ip6', 'daddr'), `@${IPS_BLOCK6}`), ...dropped('ips')]);
  // this VM's own (anti-spoofing holds its source address to it)
  rules.push([
    m({ concat: [payload('ip', 'saddr'), payload('ip', 'daddr')] }, `@${IPS_VMBLOCK4}`),
    ...dropped('ips'),
  ]);
  rules.push([
    m({ concat: [payload('ip6', 'saddr'), payload('ip6', 'daddr')] }, `@${IPS_VMBLOCK6}`),
    ...dropped('ips'),
  ]);

  if (profile.isolated) {
    // quarantine: DNS (input chain) and update servers only; nothing else, established or not
    rules.push([m(meta('oifname'), wan), m(payload('ip', 'daddr'), '@update4'), ACCEPT]);
    rules.push([m(meta('oifname'), wan), m(payload('ip6', 'daddr'), '@update6'), ACCEPT]);
    rules.push(dropped('quarantine'));
    return [{ name: chain, rules }];
  }

  // The established-flow fast path. An established flow of a pair (this VM . remote)
  // that passed the whole chain within the last VERIFIED_SECONDS goes straight on
  // (through Suricata all the same): the rules below cost a packet some 20 rule
  // evaluations and a dozen set look-ups, and a flow rarely needs them again. Safe
  // because what can cut an open flow still does: IPS blocks are looked at above for
  // every packet; any change of the table (a policy, a list, a quarantine, a pause)
  // empties the pairs in the same transaction (applier); what the kernel clock starts
  // (a schedule window) cuts open flows within VERIFIED_SECONDS, as does a change for a
  // packet judged by the old table on another CPU while it commits (its pair may go in
  // just after the flush: it lives VERIFIED_SECONDS at most). A VM whose traffic is
  // rate-limited (slow-downs) does without: a limit must count every packet. A full
  // set (64k pairs a second) only costs the fast path: the update fails, the plain
  // established accept after it takes the packet.
  const parental = profile.parental ?? {};
  const fastPath = parental.slowKbytes === undefined && (parental.slowServices ?? []).length === 0;
  const families = [
    ['ip', 'ipv4', VERIFIED4],
    ['ip6', 'ipv6', VERIFIED6],
  ] as const;
  const pair = (family: 'ip' | 'ip6'): NftValue => ({
    concat: [payload(family, 'saddr'), payload(family, 'daddr')],
  });
  if (fastPath)
    for (const [family, , set] of families)
      rules.push(...accepting([establishedOnly, m(pair(family), `@${set}`)], profile, ctx));

  // paused, or the daily budget spent: nothing at all (kernel clock ends both)
  if (vm.pause) {
    rules.push(
      vm.pause.until
        ? [m(meta('time'), utcTime(vm.pause.until), '<'), ...dropped('pause')]
        : dropped('pause'),
    );
  }
  if (ctx.budgetUntil)
    rules.push([m(meta('time'), utcTime(ctx.budgetUntil.toISOString()), '<'), ...dropped('budget')]);

  if (parental.closeBypass) {
    // DNS over TLS and over QUIC
    rules.push([
      m(meta('l4proto'), { set: ['tcp', 'udp'] }),
      m(payload('th', 'dport'), 853),
      ...dropped('bypass', REJECT),
    ]);
    // QUIC and HTTP/3: browsers fall back to TCP, where DNS filtering and SNI apply
    rules.push([m(meta('l4proto'), 'udp'), m(payload('udp', 'dport'), 443), ...dropped('bypass', REJECT)]);
    rules.push([m(payload('ip', 'daddr'), '@doh4'), ...dropped('bypass', REJECT)]);
    rules.push([m(payload('ip6', 'daddr'), '@doh6'), ...dropped('bypass', REJECT)]);
    rules.push([m(payload('ip', 'daddr'), '@tor4'), ...dropped('bypass')]);
    rules.push([m(payload('ip6', 'daddr'), '@tor6'), ...dropped('bypass')]);
    // VPN providers' servers on any port (many listen on 443 too)
    rules.push([m(payload('ip', 'daddr'), '@vpnp4'), ...dropped('bypass')]);
    rules.push([m(payload('ip6', 'daddr'), '@vpnp6'), ...dropped('bypass')]);
    // VPNs on their default ports: WireGuard, OpenVPN, IPsec/IKE; and ESP/AH
    rules.push([
      m(meta('l4proto'), 'udp'),
      m(payload('udp', 'dport'), { set: [500, 1194, 1701, 4500, 51820] }),
      ...dropped('bypass'),
    ]);
    rules.push([
      m(meta('l4proto'), 'tcp'),
      m(payload('tcp', 'dport'), { set: [1194, 1723] }),
      ...dropped('bypass'),
    ]);
    rules.push([m(meta('l4proto'), { set: ['esp', 'ah'] }), ...dropped('bypass')]);
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
            ...dropped('schedule', REJECT),
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
    if (w.mode === 'deny') rules.push([...when, ...dropped('schedule')]);
    else {
      needsAllowlist = true;
      rules.push([...when, { goto: { target: allowlistChain } }]);
    }
  }

  // the VM's own rules, then its profile's; first match decides
  const ordered = [...(vm.rules ?? []), ...profile.rules];
  ordered.forEach((rule, index) => {
    const compiled = compileRule(vm, rule, index, ctx);
    if (compiled) rules.push(...compiled.map((r) => countDrops(r, vmDropCounter(vm.name, 'policy'))));
  });

  // established flows too go through Suricata: it needs every packet of a flow it inspects
  if (fastPath)
    for (const [family, nfproto, set] of families) {
      const remember: NftStatement = {
        set: {
          op: 'update',
          elem: { elem: { val: pair(family), timeout: VERIFIED_SECONDS } },
          set: `@${set}`,
        },
      };
      rules.push(...accepting([establishedOnly, m(meta('nfproto'), nfproto), remember], profile, ctx));
    }
  rules.push(...accepting([established], profile, ctx));

  // other VMs: only those this profile may reach
  for (const target of profile.reach) {
    const t = ctx.byName.get(target);
    if (!t || t.name === vm.name) continue;
    rules.push([m(meta('oifname'), lan), m(payload('ip', 'daddr'), t.ipv4), ACCEPT]);
  }
  rules.push([m(meta('oifname'), lan), counter('guest_to_guest_dropped'), ...dropped('policy')]);

  // VPN endpoints: only for profiles that may use them
  if (profile.vpn)
    rules.push(...accepting([m(meta('oifname'), wan), m(payload('ip', 'daddr'), '@vpn4')], profile, ctx));
  else rules.push([m(payload('ip', 'daddr'), '@vpn4'), ...dropped('policy')]);
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
      dropped('policy'),
    ];
    chains.push({ name: allowlistChain, rules: allowRules });
  }
  if (profile.internet === 'open') rules.push(...accepting([m(meta('oifname'), wan)], profile, ctx));
  else if (profile.internet === 'allowlist-only') rules.push([{ goto: { target: allowlistChain } }]);
  rules.push(dropped('policy'));
  // the other direction of the VM's flows goes to Suricata too: it needs both to inspect
  if (ctx.queue && profile.ips.mode === 'ips') {
    const replies: NftStatement[] = [established, m(payload('ip', 'daddr'), vm.ipv4)];
    if (ctx.queue.kind === 'xt') ctx.toGuests.push([...replies, markQueue(profile)]);
    else ctx.toGuests.push(...accepting(replies, profile, ctx));
  }
  return [{ name: chain, rules }, ...chains];
}

/** A rule that ends in a drop or reject gets `counter name` before its verdict; others stay as they are. */
function countDrops(rule: NftStatement[], name: string): NftStatement[] {
  const last = rule.at(-1);
  if (last === undefined || !('drop' in last || 'reject' in last)) return rule;
  return [...rule.slice(0, -1), counter(name), last];
}
