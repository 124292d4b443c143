import { describe, expect, it } from 'vitest';
import type { NftStatement } from '../nft/types.js';
import { compile, MARK, type CompileInput } from './compile.js';
import { groupByPrefix, normaliseIntervals } from './intervals.js';
import type { Policy } from './model.js';
import { checkPolicy } from './validate.js';

const network = { lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 }, wan: { iface: 'wan0' }, mgmt: { iface: 'mgmt0', ports: [8080] } };

function makePolicy(overrides: Partial<Policy> = {}): Policy {
  return {
    vms: [
      { name: 'kid', mac: '52:54:00:00:00:0A', ipv4: '10.20.0.10', profile: 'kid' },
      { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'work' },
    ],
    profiles: [],
    schedules: [],
    vpnEndpoints: ['203.0.113.200'],
    updateServers: ['203.0.113.50'],
    ipv6: false,
    ...overrides,
  };
}

function build(overrides: Partial<CompileInput> = {}): ReturnType<typeof compile> {
  return compile({ policy: makePolicy(), network, now: new Date('2026-11-25T12:00:00Z'), ...overrides });
}

const chain = (rs: ReturnType<typeof compile>, name: string): NftStatement[][] => rs.chains.find((c) => c.name === name)!.rules;
const text = (x: unknown): string => JSON.stringify(x);

describe('compile', () => {
  it('is deterministic', () => {
    expect(text(build())).toBe(text(build()));
  });

  it('binds each MAC to its address, lower-cased, and jumps each MAC to its own chain', () => {
    const rs = build();
    expect(rs.sets.find((s) => s.name === 'macip4')!.elements).toEqual([
      { concat: ['52:54:00:00:00:0a', '10.20.0.10'] },
      { concat: ['52:54:00:00:00:0b', '10.20.0.11'] },
    ]);
    expect(text(rs.sets.find((s) => s.name === 'vm_chains')!.elements)).toContain('"jump":{"target":"vm_kid"}');
  });

  it('checks anti-spoofing at priority raw, before anything else, and drops unknown MACs', () => {
    const anti = build().chains.find((c) => c.name === 'antispoof')!;
    expect(anti.base).toEqual({ type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' });
    const last = text(anti.rules.at(-1));
    expect(last).toContain('unknown_mac_dropped');
    expect(last).toContain('"drop"');
  });

  it('drops guest IPv6 unless enabled', () => {
    expect(text(chain(build(), 'antispoof'))).not.toContain('@macip6');
    const on = build({ policy: makePolicy({ ipv6: true }) });
    expect(text(chain(on, 'antispoof'))).toContain('@macip6');
  });

  it('lets only work reach the VPN endpoints', () => {
    const rs = build();
    expect(text(chain(rs, 'vm_work'))).toContain('[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"wan0"}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"@vpn4"}},{"accept":null}]');
    expect(text(chain(rs, 'vm_kid'))).toContain('"right":"@vpn4"}},{"drop":null}');
    expect(text(chain(rs, 'vm_kid'))).not.toContain('"right":"@vpn4"}},{"accept":null}');
  });

  it('quarantines a VM: update servers only, nothing else', () => {
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, quarantine: { reason: 'alerts', since: '2026-11-25T00:00:00Z' } };
    const rules = chain(build({ policy: p }), 'vm_kid');
    expect(text(rules)).toContain('@update4');
    expect(text(rules.at(-1))).toBe('[{"drop":null}]');
    expect(text(rules)).not.toContain('established');
  });

  it('compiles rule kinds: CIDR with ports, expiry by the kernel clock, domain sets, VM targets', () => {
    const p = makePolicy();
    p.vms[0] = {
      ...p.vms[0]!,
      rules: [
        { id: 'a', action: 'drop', to: { cidr: '198.51.100.0/24' }, proto: 'tcp', ports: ['80', '8000-8100'] },
        { id: 'b', action: 'accept', to: { cidr: '192.0.2.0/24' }, expires: '2026-11-25T12:10:00Z' },
        { id: 'c', action: 'reject', to: { domain: 'example.test' } },
        { id: 'd', action: 'accept', to: { vm: 'work' }, proto: 'tcp', ports: ['22'] },
        { id: 'gone', action: 'accept', to: { cidr: '192.0.2.0/25' }, expires: '2026-11-25T11:00:00Z' },
      ],
    };
    const rs = build({ policy: p });
    const rules = text(chain(rs, 'vm_kid'));
    expect(rules).toContain('{"set":[80,{"range":[8000,8100]}]}');
    expect(rules).toContain('"right":{"prefix":{"addr":"192.0.2.0","len":24}}}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-25 12:10:00"}},{"accept":null}');
    expect(rs.sets.some((s) => s.name.startsWith('r4_kid_a') || s.name.startsWith('r4_kid_b'))).toBe(false);
    expect(rs.sets.find((s) => s.name === 'r4_kid_c')).toMatchObject({ dynamic: true, flags: ['timeout'] });
    expect(rules).toContain('"reject":{"type":"tcp reset"}');
    expect(rules).toContain('"right":"10.20.0.11"');
    expect(rules).not.toContain('"len":25');
  });

  it('puts schedule windows first and sends allowlist windows to the allowlist chain', () => {
    const windows = new Map([['kid', [{ days: [1], from: 75600, to: 86399, mode: 'deny' as const }, { days: [2], from: 0, to: 3600, mode: 'allowlist-only' as const }]]]);
    const rs = build({ windows });
    const rules = chain(rs, 'vm_kid').map(text);
    const deny = rules.indexOf('[{"match":{"op":"==","left":{"meta":{"key":"day"}},"right":{"set":[1]}}},{"match":{"op":"==","left":{"meta":{"key":"hour"}},"right":{"range":[75600,86399]}}},{"drop":null}]');
    expect(deny).toBeGreaterThan(0);
    expect(rules[deny + 1]).toContain('"goto":{"target":"vm_kid_allowlist"}');
    // before the VM's own rules and before established flows are let through
    expect(deny).toBeLessThan(rules.findIndex((r) => r.includes('established')));
    expect(rs.sets.some((s) => s.name === 'allow4_kid' && s.dynamic)).toBe(true);
  });

  it('queues accepted traffic of ips VMs: nft queue, or a mark for the xtables NFQUEUE target', () => {
    const nft = text(chain(build({ queue: { kind: 'nft', num: 3 } }), 'vm_kid'));
    expect(nft).toContain('{"queue":{"num":3}}');
    // flows Suricata bypassed are accepted before the queue
    expect(nft).toContain(`{"match":{"op":"!=","left":{"&":[{"ct":{"key":"mark"}},${MARK.bypass}]},"right":0}},{"accept":null}`);
    const xt = text(chain(build({ queue: { kind: 'xt', num: 3 } }), 'vm_kid'));
    // the queue bit is OR-ed in: the bypass bit restored from the conntrack mark survives
    expect(xt).toContain(`"value":{"|":[{"meta":{"key":"mark"}},${MARK.queueClosed}]}`);
    expect(text(chain(build({ queue: { kind: 'xt', num: 3 } }), 'to_guests'))).toContain('"right":"10.20.0.10"');
    expect(text(chain(build({ queue: { kind: 'nft', num: 3 } }), 'vm_work'))).not.toContain('queue');
  });

  it('sends an allowlist-only VM in ips mode to its allowlist chain, and queues its accept rules', () => {
    const p = makePolicy({ profiles: [{ name: 'homework', internet: 'allowlist-only', rules: [{ id: 'ok', action: 'accept', to: { cidr: '192.0.2.0/24' } }], reach: [], ips: { mode: 'ips', failure: 'fail-closed' } }] });
    p.vms[0] = { ...p.vms[0]!, profile: 'homework' };
    const rules = chain(build({ policy: p, queue: { kind: 'xt', num: 0 } }), 'vm_kid').map(text);
    expect(rules.at(-2)).toBe('[{"goto":{"target":"vm_kid_allowlist"}}]');
    expect(rules.find((r) => r.includes('192.0.2.0'))).toContain('"mangle"');
  });

  it('groups bundle deny lists by prefix length into sized hash sets, reusing them while the list is the same', () => {
    const deny = groupByPrefix(['11.0.0.1', '11.0.0.0/24', '11.0.0.7/24', '12.0.0.0/20']);
    const a = build({ lists: { deny } });
    const b = build({ lists: { deny } });
    const p24 = a.sets.find((s) => s.name === 'list4_p24')!;
    expect(p24.elements).toEqual([(11 << 24) >>> 0]);
    expect(p24.size).toBe(1024);
    expect(b.sets.find((s) => s.name === 'list4_p24')!.elements).toBe(p24.elements);
    expect(text(chain(a, 'deny_list'))).toContain('{"&":[{"payload":{"protocol":"ip","field":"daddr"}},"255.255.255.0"]}');
  });
});

describe('address lists', () => {
  it('merges overlapping and adjacent prefixes for interval sets', () => {
    expect(normaliseIntervals(['10.0.0.0/25', '10.0.0.128/25', '10.0.0.5', '10.0.1.0/24', '192.0.2.1']).v4).toEqual([{ prefix: { addr: '10.0.0.0', len: 23 } }, '192.0.2.1']);
    expect(normaliseIntervals(['10.0.0.1', '10.0.0.2']).v4).toEqual([{ range: ['10.0.0.1', '10.0.0.2'] }]);
    expect(normaliseIntervals(['2001:db8::/33', '2001:db8:8000::/33']).v6).toEqual([{ prefix: { addr: '2001:db8::', len: 32 } }]);
  });

  it('groups by prefix length, clears host bits, dedups, and skips junk', () => {
    const g = groupByPrefix(['10.1.2.3/8', '10.0.0.0/8', '1.2.3.4', 'junk', '300.1.1.1', '2001:db8::/32']);
    expect(g.v4.get(8)).toEqual([(10 << 24) >>> 0]);
    expect(g.v4.get(32)).toEqual([(1 << 24) + (2 << 16) + (3 << 8) + 4]);
    expect(g.v6.get(32)).toEqual(['2001:db8::']);
    expect(g.v4.size).toBe(2);
  });
});

describe('checkPolicy', () => {
  it('names the bad field: bad CIDR, unknown VM, duplicate MAC', () => {
    const p = makePolicy();
    p.vms.push({ name: 'evil', mac: '52:54:00:00:00:0a', ipv4: '10.20.0.66', profile: 'open', rules: [{ action: 'drop', to: { cidr: '10.0.0.300/8' } }, { action: 'accept', to: { vm: 'ghost' } }] });
    const issues = checkPolicy(p);
    expect(issues.map((i) => i.path)).toEqual(expect.arrayContaining(['/vms/2/mac', '/vms/2/rules/0/to/cidr', '/vms/2/rules/1/to/vm']));
  });

  it('rejects host bits in a prefix with a hint', () => {
    const issues = checkPolicy(makePolicy({ vpnEndpoints: ['10.0.0.1/8'] }));
    expect(issues[0]).toEqual({ path: '/vpnEndpoints/0', message: '"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?' });
  });
});
