import { describe, expect, it } from 'vitest';
import type { NftStatement } from '../nft/types.js';
import { MARK } from '../nft/marks.js';
import { CompileCache, compile, type CompileInput } from './compile.js';
import { cloneJson, deepFreeze } from './fingerprint.js';
import { groupByPrefix, normaliseIntervals } from './intervals.js';
import type { Policy } from './model.js';
import { checkPolicy } from './validate.js';

const network = {
  lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
  wan: { iface: 'wan0' },
  mgmt: { iface: 'mgmt0', ports: [8080] },
};

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

const chain = (rs: ReturnType<typeof compile>, name: string): NftStatement[][] =>
  rs.chains.find((c) => c.name === name)!.rules;
const text = (x: unknown): string => JSON.stringify(x);

describe('compile', () => {
  it('is deterministic', () => {
    expect(text(build())).toBe(text(build()));
  });

  it('binds each MAC to its address, lower-cased, and jumps each MAC to its own chain', () => {
    const rs = build();
    expect(rs.sets.find((s) => s.name === 'macip4')!.elements).toEqual([
      { concat: [{ range: [0, 0xffffffff] }, '52:54:00:00:00:0a', '10.20.0.10'] },
      { concat: [{ range: [0, 0xffffffff] }, '52:54:00:00:00:0b', '10.20.0.11'] },
    ]);
    expect(text(rs.sets.find((s) => s.name === 'vm_chains')!.elements)).toContain(
      '"jump":{"target":"vm_kid"}',
    );
  });

  it("binds a VM with a port to its port's mark, and one without to any mark (any port)", () => {
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, port: 'g-kid' };
    const rs = build({ policy: p });
    expect(rs.sets.find((s) => s.name === 'macip4')!.elements).toEqual([
      { concat: [0x10000, '52:54:00:00:00:0a', '10.20.0.10'] },
      { concat: [{ range: [0, 0xffffffff] }, '52:54:00:00:00:0b', '10.20.0.11'] },
    ]);
    const bridge = rs.tables!.find((t) => t.family === 'bridge')!;
    const set = (name: string): unknown => bridge.sets.find((s) => s.name === name)!.elements;
    expect(set('port_marks')).toEqual([['g-kid', 0x10000]]);
    expect(set('ports')).toEqual(['g-kid']);
    expect(set('port_ips')).toEqual([{ concat: ['g-kid', '10.20.0.10'] }, { concat: ['g-kid', '0.0.0.0'] }]);
    expect(set('arp_any_port')).toEqual([
      { concat: ['52:54:00:00:00:0b', '52:54:00:00:00:0b', '10.20.0.11'] },
      { concat: ['52:54:00:00:00:0b', '52:54:00:00:00:0b', '0.0.0.0'] },
    ]);
    const ports = bridge.chains.find((c) => c.name === 'ports')!;
    expect(ports.base).toEqual({ type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' });
    // a VM's IP from its MAC on its own port first (one look-up sets the mark), then
    // tagged frames, ARP of no registered guest last: both counted
    expect(set('port_mac_marks')).toEqual([[{ concat: ['g-kid', '52:54:00:00:00:0a'] }, 0x10000]]);
    expect(text(ports.rules[0])).toBe(
      '[{"match":{"op":"==","left":{"payload":{"protocol":"ether","field":"type"}},"right":{"set":["ip","ip6"]}}},' +
        '{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"map":{"key":{"concat":[{"meta":{"key":"iifname"}},' +
        '{"payload":{"protocol":"ether","field":"saddr"}}]},"data":"@port_mac_marks"}}}},{"accept":null}]',
    );
    expect(text(ports.rules[1])).toContain('"8021q","8021ad"');
    expect(text(ports.rules[1])).toContain('vlan_dropped');
    expect(text(ports.rules.at(-1))).toBe('[{"counter":"arp_dropped"},{"drop":null}]');
    // the inet table counts a registered MAC on another port before dropping it as a spoof
    const anti = text(chain(rs, 'antispoof'));
    expect(anti.indexOf('port_dropped')).toBeGreaterThan(-1);
    expect(anti.indexOf('port_dropped')).toBeLessThan(anti.indexOf('spoof_dropped'));
  });

  it('lets unknown devices ARP only for the unassigned pool and 0.0.0.0', () => {
    const rs = build({ unassigned: { from: '10.20.0.200', to: '10.20.0.249' } });
    const ports = rs.tables![0]!.chains[0]!.rules;
    expect(text(ports.at(-2))).toContain('{"set":["0.0.0.0",{"range":["10.20.0.200","10.20.0.249"]}]}');
    expect(text(build().tables![0]!.chains[0]!.rules.at(-2))).toContain('{"set":["0.0.0.0"]}');
  });

  it('lets a port have a few unknown MACs at a time: one set a port of a VM, one for the other ports', () => {
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, port: 'g-kid' };
    const rs = build({
      policy: p,
      unassigned: { from: '10.20.0.200', to: '10.20.0.249', perPort: 3, holdSeconds: 300 },
    });
    const bridge = rs.tables!.find((t) => t.family === 'bridge')!;
    const unknown = bridge.sets.filter((s) => s.name.startsWith('unknown_'));
    expect(unknown.map((s) => [s.name, s.size, s.dynamic])).toEqual([
      ['unknown_1', 3, true],
      ['unknown_other', 3, true],
    ]);
    expect(bridge.sets.find((s) => s.name === 'port_unknown')!.elements).toEqual([
      ['g-kid', { goto: { target: 'unknown_1' } }],
    ]);
    // a MAC is kept while it sends, and for the hold time after; a new one beyond the size is dropped
    const kid = bridge.chains.find((c) => c.name === 'unknown_1')!;
    expect(text(kid.rules[0])).toContain('"op":"update"');
    expect(text(kid.rules[0])).toContain('"timeout":300');
    expect(text(kid.rules[1])).toBe('[{"counter":"unknown_mac_limited"},{"drop":null}]');
    // registered MACs never count: only frames from MACs no VM has go there
    const ports = text(bridge.chains.find((c) => c.name === 'ports')!.rules);
    expect(ports).toContain('"right":"@macs"}},{"jump":{"target":"unknown"}}');
    expect(text(bridge.chains.find((c) => c.name === 'unknown')!.rules)).toBe(
      '[[{"vmap":{"key":{"meta":{"key":"iifname"}},"data":"@port_unknown"}}],[{"goto":{"target":"unknown_other"}}]]',
    );
    // the defaults: 4 a port, 10 minutes
    const plain = build({ unassigned: { from: '10.20.0.200', to: '10.20.0.249' } }).tables![0]!;
    expect(plain.sets.find((s) => s.name === 'unknown_other')!.size).toBe(4);
    expect(text(plain.chains.find((c) => c.name === 'unknown_other')!.rules[0])).toContain('"timeout":600');
  });

  it("drops DHCP whose client hardware address, and ARP whose sender MAC, is not the frame's source MAC (a text table)", () => {
    const [frames] = build().textTables!;
    expect(frames).toMatchObject({
      family: 'bridge',
      name: 'portcullis_frames',
      counters: ['chaddr_dropped', 'arp_sha_dropped'],
    });
    // after the ports chain; chaddr is 36 bytes into UDP (8 of UDP, 28 of BOOTP), the ARP sender MAC 8 into ARP
    expect(frames!.body).toContain('hook prerouting priority -299');
    // IP but not UDP leaves at the first rule; UDP and ARP go on to their checks
    expect(frames!.body).toContain('policy accept;\n  ether type { ip, ip6 } meta l4proto != udp accept\n');
    expect(frames!.body).toContain('udp dport 67 update @self { @ll,48,48 . @ll,48,48 }');
    expect(frames!.body).toContain(
      'udp dport 67 @ll,48,48 . @th,288,48 != @self counter name chaddr_dropped drop',
    );
    expect(frames!.body).toContain('ether type arp update @self { @ll,48,48 . @ll,48,48 }');
    expect(frames!.body).toContain(
      'ether type arp @ll,48,48 . @nh,64,48 != @self counter name arp_sha_dropped drop',
    );
  });

  it('cuts a UDP DNS flood per guest address in the kernel, before an established flow is let in', () => {
    const input = build()
      .chains.find((c) => c.name === 'input')!
      .rules.map((r) => text(r));
    const flood = input.findIndex((r) => r.includes('dns_flood_dropped'));
    expect(flood).toBe(1);
    expect(input[flood]).toContain('"set":"@dns_flood4"');
    expect(input[flood]).toContain('{"limit":{"rate":600,"per":"second","burst":600,"inv":true}}');
    expect(input[2]).toContain('"established","related"');
    // configurable; 0 turns it off
    const rate = (dnsFloodRate: number): string[] =>
      build({ network: { ...network, dnsFloodRate } })
        .chains.find((c) => c.name === 'input')!
        .rules.map((r) => text(r));
    expect(rate(1000).join()).toContain('"rate":1000');
    expect(rate(0).join()).not.toContain('dns_flood');
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
    expect(text(chain(rs, 'vm_work'))).toContain(
      '[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"wan0"}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"@vpn4"}},{"accept":null}]',
    );
    expect(text(chain(rs, 'vm_kid'))).toContain(
      '"right":"@vpn4"}},{"counter":"vmdrop_policy_kid"},{"drop":null}',
    );
    expect(text(chain(rs, 'vm_kid'))).not.toContain('"right":"@vpn4"}},{"accept":null}');
  });

  it("drops VPN providers' endpoints (a bundle list) for a profile that closes bypasses only", () => {
    const rs = build({ bypass: { vpn: ['198.51.100.77', '2001:db8::77', '203.0.113.128/25'] } });
    expect(rs.sets.find((s) => s.name === 'vpnp4')!.elements).toEqual([
      '198.51.100.77',
      { prefix: { addr: '203.0.113.128', len: 25 } },
    ]);
    expect(rs.sets.find((s) => s.name === 'vpnp6')!.elements).toEqual(['2001:db8::77']);
    // kid closes bypasses: any port to them is dropped and counted as a bypass
    expect(text(chain(rs, 'vm_kid'))).toContain(
      '"right":"@vpnp4"}},{"counter":"vmdrop_bypass_kid"},{"drop":null}',
    );
    expect(text(chain(rs, 'vm_kid'))).toContain('"right":"@vpnp6"}}');
    // work does not: its chain never looks at the set
    expect(text(chain(rs, 'vm_work'))).not.toContain('@vpnp');
    // no list: the sets exist, empty
    expect(build().sets.find((s) => s.name === 'vpnp4')!.elements).toEqual([]);
  });

  it('quarantines a VM: update servers only, nothing else', () => {
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, quarantine: { reason: 'alerts', since: '2026-11-25T00:00:00Z' } };
    const rules = chain(build({ policy: p }), 'vm_kid');
    expect(text(rules)).toContain('@update4');
    expect(text(rules.at(-1))).toBe('[{"counter":"vmdrop_quarantine_kid"},{"drop":null}]');
    expect(text(rules)).not.toContain('established');
  });

  it('lets established flows of verified pairs through after the IPS blocks, not for rate-limited VMs', () => {
    const rules = chain(build(), 'vm_kid').map(text);
    const fast = rules.findIndex((r) => r.includes('"@verified4"'));
    // IPS blocks first: they cut open flows at their next packet
    expect(rules.slice(0, fast).join()).toContain('@ips_vmblock4');
    expect(rules[fast]).toBe(
      '[{"match":{"op":"==","left":{"ct":{"key":"state"}},"right":"established"}},' +
        '{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"saddr"}},' +
        '{"payload":{"protocol":"ip","field":"daddr"}}]},"right":"@verified4"}},{"accept":null}]',
    );
    expect(rules[fast + 1]).toContain('"@verified6"');
    // a pair is remembered for a second when its established flow passed the whole chain
    const remember = rules.filter((r) => r.includes('"op":"update"'));
    expect(remember).toHaveLength(2);
    expect(remember[0]).toContain(
      '"elem":{"elem":{"val":{"concat":[{"payload":{"protocol":"ip","field":"saddr"}}',
    );
    expect(remember[0]).toContain('"timeout":1}},"set":"@verified4"');
    expect(rules.indexOf(remember[0]!)).toBeGreaterThan(rules.findIndex((r) => r.includes('@tor4')));
    const sets = build().sets.filter((x) => x.name.startsWith('verified'));
    expect(sets.map((x) => [x.name, x.type, x.dynamic])).toEqual([
      ['verified4', ['ipv4_addr', 'ipv4_addr'], true],
      ['verified6', ['ipv6_addr', 'ipv6_addr'], true],
    ]);
    // a limit must count every packet
    const p = makePolicy({
      profiles: [
        {
          name: 'slow',
          internet: 'open',
          rules: [],
          reach: [],
          ips: { mode: 'off', failure: 'fail-open' },
          parental: { slowKbytes: 64 },
        },
      ],
    });
    p.vms[0] = { ...p.vms[0]!, profile: 'slow' };
    expect(text(chain(build({ policy: p }), 'vm_kid'))).not.toContain('verified');
    expect(text(chain(build({ policy: p }), 'vm_work'))).toContain('verified');
  });

  it('counts each VM: its traffic out and in, and its drops by reason', () => {
    const rs = build();
    for (const name of ['vm_kid', 'vmin_kid', 'vmdrop_policy_kid', 'vmdrop_ips_kid', 'vmdrop_budget_kid'])
      expect(rs.counters).toContain(name);
    // one rule a family counts the traffic to every VM, by its address: one look-up a packet
    const toGuests = chain(rs, 'to_guests');
    expect(text(toGuests[0])).toMatch(
      /^\[\{"counter":\{"map":\{"key":\{"payload":\{"protocol":"ip","field":"daddr"\}\},"data":\{"set":\[.*\["10\.20\.0\.10","vmin_kid"\]/,
    );
    expect(toGuests.filter((r) => text(r).includes('vmin_kid'))).toHaveLength(1);
    // the default drop at the end of the chain is the policy's
    expect(text(chain(rs, 'vm_kid').at(-1))).toBe('[{"counter":"vmdrop_policy_kid"},{"drop":null}]');
  });

  it('compiles rule kinds: CIDR with ports, expiry by the kernel clock, domain sets, VM targets', () => {
    const p = makePolicy();
    p.vms[0] = {
      ...p.vms[0]!,
      rules: [
        {
          id: 'a',
          action: 'drop',
          to: { cidr: '198.51.100.0/24' },
          proto: 'tcp',
          ports: ['80', '8000-8100'],
        },
        { id: 'b', action: 'accept', to: { cidr: '192.0.2.0/24' }, expires: '2026-11-25T12:10:00Z' },
        { id: 'c', action: 'reject', to: { domain: 'example.test' } },
        { id: 'd', action: 'accept', to: { vm: 'work' }, proto: 'tcp', ports: ['22'] },
        { id: 'gone', action: 'accept', to: { cidr: '192.0.2.0/25' }, expires: '2026-11-25T11:00:00Z' },
      ],
    };
    const rs = build({ policy: p });
    const rules = text(chain(rs, 'vm_kid'));
    expect(rules).toContain('{"set":[80,{"range":[8000,8100]}]}');
    expect(rules).toContain(
      '"right":{"prefix":{"addr":"192.0.2.0","len":24}}}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-25 12:10:00"}},{"accept":null}',
    );
    expect(rs.sets.some((s) => s.name.startsWith('r4_kid_a') || s.name.startsWith('r4_kid_b'))).toBe(false);
    expect(rs.sets.find((s) => s.name === 'r4_kid_c')).toMatchObject({ dynamic: true, flags: ['timeout'] });
    expect(rules).toContain('"reject":{"type":"tcp reset"}');
    expect(rules).toContain('"right":"10.20.0.11"');
    expect(rules).not.toContain('"len":25');
  });

  it('puts schedule windows first and sends allowlist windows to the allowlist chain', () => {
    const windows = new Map([
      [
        'kid',
        [
          { days: [1], from: 75600, to: 86399, mode: 'deny' as const },
          { days: [2], from: 0, to: 3600, mode: 'allowlist-only' as const },
        ],
      ],
    ]);
    const rs = build({ windows });
    const rules = chain(rs, 'vm_kid').map(text);
    const deny = rules.indexOf(
      '[{"match":{"op":"==","left":{"meta":{"key":"day"}},"right":{"set":[1]}}},{"match":{"op":"==","left":{"meta":{"key":"hour"}},"right":{"range":[75600,86399]}}},{"counter":"vmdrop_schedule_kid"},{"drop":null}]',
    );
    expect(deny).toBeGreaterThan(0);
    expect(rules[deny + 1]).toContain('"goto":{"target":"vm_kid_allowlist"}');
    // before the VM's own rules and before established flows are let through: only
    // the fast path comes first, pairs verified within the last second (so a window
    // cuts a flow already open within that second)
    const fast = rules.filter((r, i) => i < deny && r.includes('established'));
    expect(fast).toHaveLength(2);
    for (const r of fast) expect(r).toMatch(/"@verified[46]"/);
    expect(deny).toBeLessThan(rules.findIndex((r) => r.includes('"op":"update"')));
    expect(rs.sets.some((s) => s.name === 'allow4_kid' && s.dynamic)).toBe(true);
  });

  it('queues accepted traffic of ips VMs: nft queue, or a mark for the xtables NFQUEUE target', () => {
    const nft = text(chain(build({ queue: { kind: 'nft', num: 3 } }), 'vm_kid'));
    expect(nft).toContain('{"queue":{"num":3}}');
    // flows Suricata bypassed are accepted before the queue
    expect(nft).toContain(
      `{"match":{"op":"!=","left":{"&":[{"ct":{"key":"mark"}},${MARK.bypass}]},"right":0}},{"accept":null}`,
    );
    const xt = text(chain(build({ queue: { kind: 'xt', num: 3 } }), 'vm_kid'));
    // the queue bit is OR-ed in: the bypass bit restored from the conntrack mark survives
    expect(xt).toContain(`"value":{"|":[{"meta":{"key":"mark"}},${MARK.queueClosed}]}`);
    expect(text(chain(build({ queue: { kind: 'xt', num: 3 } }), 'to_guests'))).toContain(
      '"right":"10.20.0.10"',
    );
    expect(text(chain(build({ queue: { kind: 'nft', num: 3 } }), 'vm_work'))).not.toContain('queue');
  });

  it('sends an allowlist-only VM in ips mode to its allowlist chain, and queues its accept rules', () => {
    const p = makePolicy({
      profiles: [
        {
          name: 'homework',
          internet: 'allowlist-only',
          rules: [{ id: 'ok', action: 'accept', to: { cidr: '192.0.2.0/24' } }],
          reach: [],
          ips: { mode: 'ips', failure: 'fail-closed' },
        },
      ],
    });
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
    expect(p24.elements).toEqual(Uint32Array.of((11 << 24) >>> 0));
    expect(p24.size).toBe(1024);
    expect(b.sets.find((s) => s.name === 'list4_p24')!.elements).toBe(p24.elements);
    expect(text(chain(a, 'deny_list'))).toContain(
      '{"&":[{"payload":{"protocol":"ip","field":"daddr"}},"255.255.255.0"]}',
    );
  });
});

describe('CompileCache', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  /** A sequence of compiles with one cache, each checked against a compile without. */
  function compiler(): (input: Partial<CompileInput> & { policy: Policy }) => ReturnType<typeof compile> {
    const cache = new CompileCache();
    return (input) => {
      const spec = { network, now, ...input };
      const cached = compile({ ...spec, cache });
      expect(text(cached)).toBe(text(compile(spec)));
      return cached;
    };
  }
  const vmChain = (rs: ReturnType<typeof compile>, name: string): unknown =>
    rs.chains.find((c) => c.name === name);
  const withVm = (p: Policy, name: string, change: (vm: Policy['vms'][number]) => void): Policy => {
    const next = cloneJson(p);
    change(next.vms.find((v) => v.name === name)!);
    // what the policy service does: every VM the change left alone is the frozen one of before
    return deepFreeze({
      ...next,
      vms: next.vms.map((v) => (v.name === name ? v : p.vms.find((o) => o.name === v.name)!)),
    });
  };

  it('gives the same output as no cache, reusing the chains of VMs that did not change', () => {
    const run = compiler();
    const p1 = deepFreeze(makePolicy());
    const a = run({ policy: p1 });
    const p2 = withVm(
      p1,
      'kid',
      (vm) => (vm.rules = [{ id: 'x', action: 'drop', to: { cidr: '198.51.100.7' } }]),
    );
    const b = run({ policy: p2 });
    expect(vmChain(b, 'vm_work')).toBe(vmChain(a, 'vm_work'));
    expect(vmChain(b, 'vm_kid')).not.toBe(vmChain(a, 'vm_kid'));
    expect(text(vmChain(b, 'vm_kid'))).toContain('198.51.100.7');
    expect(b.sets.find((s) => s.name === 'macip4')).toBe(a.sets.find((s) => s.name === 'macip4'));
    expect(vmChain(b, 'antispoof')).toBe(vmChain(a, 'antispoof'));
  });

  it('detects a changed VM even when it is the same, mutated object', () => {
    const run = compiler();
    const p = makePolicy();
    const a = run({ policy: p });
    p.vms[0]!.rules = [{ id: 'x', action: 'drop', to: { cidr: '198.51.100.7' } }];
    const b = run({ policy: p });
    expect(vmChain(b, 'vm_kid')).not.toBe(vmChain(a, 'vm_kid'));
    expect(text(vmChain(b, 'vm_kid'))).toContain('198.51.100.7');
  });

  it('recompiles a VM when a VM it may reach changes its address', () => {
    const run = compiler();
    const p1 = deepFreeze(
      makePolicy({
        profiles: [
          {
            name: 'kid',
            internet: 'open',
            rules: [],
            reach: ['work'],
            ips: { mode: 'off', failure: 'fail-open' },
          },
        ],
      }),
    );
    const a = run({ policy: p1 });
    const b = run({ policy: withVm(p1, 'work', (vm) => (vm.ipv4 = '10.20.0.99')) });
    expect(vmChain(b, 'vm_kid')).not.toBe(vmChain(a, 'vm_kid'));
    expect(text(vmChain(b, 'vm_kid'))).toContain('10.20.0.99');
    expect(b.sets.find((s) => s.name === 'macip4')).not.toBe(a.sets.find((s) => s.name === 'macip4'));
  });

  it('recompiles a VM whose rule expired since, and one whose windows or budget changed', () => {
    const run = compiler();
    const p = deepFreeze(
      makePolicy({
        vms: [
          {
            name: 'kid',
            mac: '52:54:00:00:00:0a',
            ipv4: '10.20.0.10',
            profile: 'kid',
            rules: [
              { id: 'soon', action: 'drop', to: { cidr: '192.0.2.9' }, expires: '2026-11-25T12:10:00Z' },
            ],
          },
        ],
      }),
    );
    const a = run({ policy: p });
    expect(text(vmChain(a, 'vm_kid'))).toContain('192.0.2.9');
    const b = run({ policy: p, now: new Date('2026-11-25T12:20:00Z') });
    expect(text(vmChain(b, 'vm_kid'))).not.toContain('192.0.2.9');
    const c = run({
      policy: p,
      now: new Date('2026-11-25T12:20:00Z'),
      windows: new Map([['kid', [{ days: [1], from: 0, to: 3600, mode: 'deny' as const }]]]),
    });
    expect(vmChain(c, 'vm_kid')).not.toBe(vmChain(b, 'vm_kid'));
    const d = run({
      policy: p,
      now: new Date('2026-11-25T12:20:00Z'),
      budgetBlocked: new Map([['kid', new Date('2026-11-26T00:00:00Z')]]),
    });
    expect(vmChain(d, 'vm_kid')).not.toBe(vmChain(c, 'vm_kid'));
  });

  it('starts over for another network, and forgets VMs that are gone', () => {
    const cache = new CompileCache();
    const p = deepFreeze(makePolicy());
    const a = compile({ policy: p, network, now, cache });
    const size = cache.size;
    const b = compile({ policy: p, network: { ...network, wan: { iface: 'wan1' } }, now, cache });
    expect(vmChain(b, 'vm_kid')).not.toBe(vmChain(a, 'vm_kid'));
    expect(text(b)).toContain('wan1');
    compile({ policy: deepFreeze({ ...p, vms: [p.vms[0]!] }), network, now, cache });
    expect(cache.size).toBe(size - 1);
  });

  it('reuses the bundle list sets while the list is the same object, and notices a new one', () => {
    const run = compiler();
    const p = deepFreeze(makePolicy());
    const deny = groupByPrefix(['11.0.0.0/24']);
    const a = run({ policy: p, lists: { deny } });
    const b = run({ policy: p, lists: { deny } });
    expect(b.sets.find((s) => s.name === 'list4_p24')).toBe(a.sets.find((s) => s.name === 'list4_p24'));
    const c = run({ policy: p, lists: { deny: groupByPrefix(['12.0.0.0/24']) } });
    expect(c.sets.find((s) => s.name === 'list4_p24')!.elements).toEqual(Uint32Array.of((12 << 24) >>> 0));
  });
});

describe('address lists', () => {
  it('merges overlapping and adjacent prefixes for interval sets', () => {
    expect(
      normaliseIntervals(['10.0.0.0/25', '10.0.0.128/25', '10.0.0.5', '10.0.1.0/24', '192.0.2.1']).v4,
    ).toEqual([{ prefix: { addr: '10.0.0.0', len: 23 } }, '192.0.2.1']);
    expect(normaliseIntervals(['10.0.0.1', '10.0.0.2']).v4).toEqual([{ range: ['10.0.0.1', '10.0.0.2'] }]);
    expect(normaliseIntervals(['2001:db8::/33', '2001:db8:8000::/33']).v6).toEqual([
      { prefix: { addr: '2001:db8::', len: 32 } },
    ]);
  });

  it('groups by prefix length, clears host bits, dedups, and skips junk', () => {
    const g = groupByPrefix(['10.1.2.3/8', '10.0.0.0/8', '1.2.3.4', 'junk', '300.1.1.1', '2001:db8::/32']);
    expect(g.v4.get(8)).toEqual(Uint32Array.of((10 << 24) >>> 0));
    expect(g.v4.get(32)).toEqual(Uint32Array.of((1 << 24) + (2 << 16) + (3 << 8) + 4));
    expect(g.v6.get(32)).toEqual(['2001:db8::']);
    expect(g.v4.size).toBe(2);
  });
});

describe('checkPolicy', () => {
  it('names the bad field: bad CIDR, unknown VM, duplicate MAC', () => {
    const p = makePolicy();
    p.vms.push({
      name: 'evil',
      mac: '52:54:00:00:00:0a',
      ipv4: '10.20.0.66',
      profile: 'open',
      rules: [
        { action: 'drop', to: { cidr: '10.0.0.300/8' } },
        { action: 'accept', to: { vm: 'ghost' } },
      ],
    });
    const issues = checkPolicy(p);
    expect(issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['/vms/2/mac', '/vms/2/rules/0/to/cidr', '/vms/2/rules/1/to/vm']),
    );
  });

  it('finds the same issues in frozen policies as in mutable ones, every time', () => {
    const bad = (): Policy =>
      makePolicy({
        vms: [
          {
            name: 'kid',
            mac: '01:54:00:00:00:0a',
            ipv4: '10.20.0.300',
            profile: 'kid',
            rules: [{ id: 'a', action: 'drop', to: { cidr: '10.0.0.1/8' }, ports: ['80'] }],
          },
          { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'nope' },
        ],
        vpnEndpoints: ['10.0.0.1/8'],
      });
    const expected = checkPolicy(bad());
    expect(expected.length).toBeGreaterThan(4);
    const frozen = deepFreeze(bad());
    expect(checkPolicy(frozen)).toEqual(expected);
    expect(checkPolicy(frozen)).toEqual(expected);
  });

  it('still checks across parts when the parts themselves were checked before', () => {
    const ok = deepFreeze(makePolicy());
    expect(checkPolicy(ok)).toEqual([]);
    const twin = { name: 'twin', mac: '52:54:00:00:00:0A', ipv4: '10.20.0.10', profile: 'kid' };
    const issues = checkPolicy({ ...ok, vms: [...ok.vms, twin] });
    expect(issues.map((i) => i.path)).toEqual(['/vms/2/mac', '/vms/2/ipv4']);
    const schemaBad = checkPolicy({ ...ok, vms: [...ok.vms, { ...twin, mac: 'zz' }] });
    expect(schemaBad[0]!.path).toBe('/vms/2/mac');
    expect(checkPolicy({ ...ok, surprise: true }).length).toBeGreaterThan(0);
    expect(checkPolicy({ ...ok, vms: ok.vms.map((v) => ({ ...v, extra: 1 })) }).length).toBeGreaterThan(0);
  });

  it('names a port shared by two VMs at both', () => {
    const p = makePolicy();
    p.vms = p.vms.map((vm) => ({ ...vm, port: 'g-one' }));
    expect(checkPolicy(p)).toEqual([
      {
        path: '/vms/0/port',
        message:
          'port g-one is already VM "work"\'s; a port carries one VM (another device on it gets the unassigned pool)',
      },
      {
        path: '/vms/1/port',
        message:
          'port g-one is already VM "kid"\'s; a port carries one VM (another device on it gets the unassigned pool)',
      },
    ]);
    expect(checkPolicy({ ...p, vms: [{ ...p.vms[0]!, port: 'eth0 x' }] })[0]!.path).toBe('/vms/0/port');
  });

  it('rejects host bits in a prefix with a hint', () => {
    const issues = checkPolicy(makePolicy({ vpnEndpoints: ['10.0.0.1/8'] }));
    expect(issues[0]).toEqual({
      path: '/vpnEndpoints/0',
      message: '"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?',
    });
  });
});
