import { ruleSet } from '../../nft/names.js';
import type { NftStatement, NftValue } from '../../nft/types.js';
import type { Rule, Vm } from '../model.js';
import { parseCidr } from '../net.js';
import { accepting, type VmContext } from './context.js';
import { DROP, cidrValue, m, meta, payload, remaining, utcTime } from './statements.js';

/** One policy rule of a VM or its profile → nft rules. */

/** drop and reject; accept goes through accepting(). */
function verdict(rule: Rule): NftStatement[][] {
  if (rule.action === 'drop') return [[DROP]];
  return [[m(meta('l4proto'), 'tcp'), { reject: { type: 'tcp reset' } }], [{ reject: null }]];
}

/** One policy rule → nft rules (reject needs two). Undefined when expired. */
export function compileRule(vm: Vm, rule: Rule, index: number, ctx: VmContext): NftStatement[][] | undefined {
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
      // a name opens the internet only: never the LAN, another VM or the appliance, even if
      // an address inside got learned (the DNS filter also drops such answers: rebinding)
      const wan = rule.action === 'accept' ? [m(meta('oifname'), ctx.network.wan.iface)] : [];
      targets.push([...wan, m(payload(family === 4 ? 'ip' : 'ip6', 'daddr'), `@${name}`)]);
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
