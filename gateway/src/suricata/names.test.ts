import { describe, expect, it } from 'vitest';
import type { Policy, Profile } from '../policy/model.js';
import {
  BLOCK_PAGE_METADATA,
  blockedNames,
  EMPTY_NAME_LISTS,
  normalizeName,
  parseListNames,
  POLICY_SID_BASE,
  renderSuricataPolicy,
  type NameLists,
} from './names.js';

const lists: NameLists = {
  categories: new Map([
    ['adult', ['adult.example', 'www.more-adult.example', 'a.b.c.deep.example']],
    ['gambling', ['bet.example']],
  ]),
  services: new Map([['tiktok', ['tiktok.example']]]),
  doh: ['dns.google', 'cloudflare-dns.com'],
  dohAddresses: ['8.8.8.8', '1.1.1.1', '2001:4860:4860::8888', '9.9.9.0/24'],
};

const vm = (name: string, ipv4: string, profile: string, extra: object = {}): Policy['vms'][number] => ({
  name,
  mac: `52:54:00:00:00:${ipv4.split('.').at(-1)!.padStart(2, '0')}`,
  ipv4,
  profile,
  ...extra,
});

const policy = (vms: Policy['vms'], profiles: Profile[] = []): Policy => ({
  vms,
  profiles,
  schedules: [],
  vpnEndpoints: [],
  updateServers: [],
  ipv6: false,
});

const at = new Date('2026-12-03T12:00:00Z');
const render = (p: Policy, l: NameLists = lists) => renderSuricataPolicy(p, l, { dir: '/data/policy', at });
const ruleLines = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('list files as names', () => {
  it('reads bare domains, hosts lines and ||name^ rules; skips comments, addresses and junk', () => {
    const text = [
      '# a comment',
      'Example.COM',
      '*.wild.example',
      '.dot.example.',
      '0.0.0.0 hosts-a.example hosts-b.example # trailing',
      '127.0.0.1 localhost',
      '||adblock.example^',
      '||with-options.example^$third-party',
      '! adblock comment',
      '[Adblock Plus 2.0]',
      '10.0.0.1',
      'not a domain!',
      'bücher.example',
    ].join('\n');
    expect(parseListNames(text)).toEqual([
      'example.com',
      'wild.example',
      'dot.example',
      'hosts-a.example',
      'hosts-b.example',
      'adblock.example',
      'xn--bcher-kva.example',
    ]);
  });

  it('takes plain lower-case names as they are, and gives every other line the full check', () => {
    const lines = [
      'plain.example',
      'under_score.example',
      'localhost',
      'ends.in.digits.123',
      `${'a'.repeat(64)}.example`,
      'x.'.repeat(127) + 'example',
      '-dash.example',
      'Mixed.Example',
    ];
    // the same result as the slow path gives line by line (a line with a trailing space never takes the fast one)
    const slow = lines.flatMap((l) => parseListNames(`${l} `));
    expect(parseListNames(lines.join('\n'))).toEqual(slow);
    expect(slow).toEqual(['plain.example', 'under_score.example', 'mixed.example']);
  });

  it('normalizes like the DNS filter and refuses what is no domain name', () => {
    expect(normalizeName('WWW.Example.com.')).toBe('www.example.com');
    expect(normalizeName('1.2.3.4')).toBeUndefined();
    expect(normalizeName('a..b')).toBeUndefined();
    expect(normalizeName('-bad.example')).toBeUndefined();
    expect(normalizeName('x'.repeat(64) + '.example')).toBeUndefined();
  });
});

describe("a profile's blocked names", () => {
  it('are its categories, services and dns.deny together, sorted and de-duplicated; unknown lists add nothing', () => {
    const profile: Profile = {
      name: 'p',
      internet: 'open',
      rules: [],
      reach: [],
      ips: { mode: 'ips', failure: 'fail-closed' },
      dns: { categories: ['adult', 'nope'], services: ['tiktok'], deny: ['Custom.example', 'bet.example'] },
    };
    expect(blockedNames(profile, lists)).toEqual([
      'a.b.c.deep.example',
      'adult.example',
      'bet.example',
      'custom.example',
      'tiktok.example',
      'www.more-adult.example',
    ]);
  });
});

describe('the Suricata material of a policy', () => {
  const kidLike = (name: string, extra: Partial<Profile> = {}): Profile => ({
    name,
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'ips', failure: 'fail-closed' },
    dns: { categories: ['adult'] },
    ...extra,
  });

  it('scopes the rules to the addresses of the inline VMs of the profile, one dataset per profile', () => {
    const m = render(
      policy([
        vm('kid', '10.20.0.10', 'kid'),
        vm('kid2', '10.20.0.13', 'kid'),
        vm('work', '10.20.0.11', 'work'),
      ]),
    );
    const rules = ruleLines(m.rules);
    const sni = rules.filter((r) => r.includes('blocked name (TLS SNI)'));
    // the built-in kid profile's lists have 2, 3 and 5 labels here: one rule per label count
    expect(sni).toHaveLength(3);
    for (const r of sni) {
      expect(r).toMatch(/^rejectboth tls \[10\.20\.0\.10,10\.20\.0\.13\] any -> any any /);
      expect(r).toContain('tls.sni; to_lowercase; pcrexform:');
      expect(r).toContain('dataset:isset,pc-names-kid-');
    }
    expect(m.rules).not.toContain('10.20.0.11'); // work is not inline
    // the built-in kid profile blocks adult and gambling (dating and malware: not in these lists)
    const names = m.datasets.find((d) => d.name.startsWith('pc-names-kid-'))!;
    expect(names.type).toBe('string');
    expect(names.file).toBe(`/data/policy/${names.name}.lst`);
    expect(
      names.content
        .trim()
        .split('\n')
        .map((l) => Buffer.from(l, 'base64').toString()),
    ).toEqual(['a.b.c.deep.example', 'adult.example', 'bet.example', 'www.more-adult.example']);
    // plain HTTP: the server is reset, the guest gets the block page from the service
    const host = rules.filter((r) => r.includes('blocked name (HTTP Host)'));
    expect(host).toHaveLength(3);
    for (const r of host) {
      expect(r).toMatch(/^rejectdst http /);
      expect(r).toContain(`metadata:portcullis ${BLOCK_PAGE_METADATA};`);
    }
    const connect = rules.filter((r) => r.includes('blocked name (HTTP CONNECT)'));
    expect(connect.length).toBeGreaterThan(0);
    for (const r of connect) {
      expect(r).toMatch(/^rejectboth http /);
      expect(r).not.toContain('metadata:');
    }
    expect(m.ruleCount).toBe(rules.length);
    expect(rules[0]).toContain(`sid:${POLICY_SID_BASE};`);
  });

  it('takes the last k labels of the buffer, with or without a port, for each label count', () => {
    const m = render(policy([vm('kid', '10.20.0.10', 'kid')]));
    const patterns = [...m.rules.matchAll(/blocked name \(TLS SNI\)[^\n]*pcrexform:"([^"]+)"/g)].map(
      (x) => x[1]!,
    );
    const last = (pattern: string, s: string): string | undefined =>
      new RegExp(pattern.replace(/\\\\/g, '\\')).exec(s)?.[1];
    const [two, three] = patterns;
    expect(last(two!, 'www.adult.example')).toBe('adult.example');
    expect(last(two!, 'adult.example:443')).toBe('adult.example');
    expect(last(three!, 'x.www.more-adult.example')).toBe('www.more-adult.example');
    expect(last(three!, 'adult.example')).toBeUndefined();
    // Suricata's pcrexform leaves an unmatched buffer as it was; the pcre after it then
    // wants exactly k labels, so each rule looks up its own suffix or nothing
    const guards = [...m.rules.matchAll(/blocked name \(TLS SNI\)[^\n]*pcre:"\/([^"]+)\/"/g)].map(
      (x) => new RegExp(x[1]!.replace(/\\\\/g, '\\')),
    );
    expect(guards).toHaveLength(3);
    const looksUp = (i: number, host: string): string | undefined => {
      const buffer = last(patterns[i]!, host) ?? host;
      return guards[i]!.test(buffer) ? buffer : undefined;
    };
    for (const host of ['adult.example', 'www.adult.example:8080', 'a.b.c.deep.example', 'x']) {
      const labels = host.replace(/:[0-9]+$/, '').split('.');
      [2, 3, 5].forEach((k, i) => {
        const want = labels.length >= k ? labels.slice(-k).join('.') : undefined;
        expect(looksUp(i, host), `${host} k=${k}`).toBe(want);
      });
    }
  });

  it('VMs of a profile without IPS mode ips, and quarantined VMs, get nothing', () => {
    const quarantined = vm('kid', '10.20.0.10', 'kid', {
      quarantine: { reason: 'x', since: at.toISOString() },
    });
    const m = render(
      policy(
        [quarantined, vm('t', '10.20.0.14', 'teen')],
        [kidLike('teen', { ips: { mode: 'ids', failure: 'fail-open' } })],
      ),
    );
    expect(ruleLines(m.rules)).toEqual([]);
    expect(m.datasets).toEqual([]);
  });

  it('allowed names (dns.allow, approved requests that have not expired) pass for that VM only, before any reject', () => {
    const approved = vm('kid', '10.20.0.10', 'kid', {
      rules: [
        { action: 'accept', to: { domain: 'adult.example' }, expires: '2026-12-03T13:00:00Z' },
        { action: 'accept', to: { domain: 'old.example' }, expires: '2026-12-03T11:00:00Z' },
      ],
    });
    const m = render(
      policy(
        [approved, vm('kid2', '10.20.0.13', 'kid')],
        [kidLike('kid', { dns: { categories: ['adult'], allow: ['Ok.example'] } })],
      ),
    );
    const pass = ruleLines(m.rules).filter((r) => r.startsWith('pass '));
    expect(pass.filter((r) => r.includes('10.20.0.10'))).toHaveLength(4); // adult.example, ok.example × TLS, HTTP
    expect(pass.filter((r) => r.includes('10.20.0.13'))).toHaveLength(2); // ok.example only
    expect(pass.some((r) => r.includes('content:".adult.example"; endswith;'))).toBe(true);
    expect(m.rules).not.toContain('old.example');
  });

  it('closeBypass adds the wrong-port and tunnel rules; blockDoh the DoH names and IPv4 addresses', () => {
    const m = render(policy([vm('kid', '10.20.0.10', 'kid')]));
    const msgs = ruleLines(m.rules).map((r) => /msg:"PORTCULLIS ([^"]+)"/.exec(r)![1]!);
    for (const technique of [
      'DNS on a port other than 53',
      'DNS over TCP on a port other than 53',
      'not TLS on port 443',
      'not HTTP on port 80',
      'SSH (a tunnel)',
      'WireGuard handshake',
      'OpenVPN handshake (UDP)',
      'OpenVPN handshake (TCP)',
      'DoH resolver by name (TLS SNI)',
      'DoH resolver by address',
    ])
      expect(
        msgs.some((x) => x.startsWith(`bypass: ${technique}`) || x.startsWith(technique)),
        technique,
      ).toBe(true);
    const addresses = m.datasets.find((d) => d.type === 'ipv4')!;
    expect(addresses.content).toBe('1.1.1.1\n8.8.8.8\n');
    // a profile without closeBypass or blockDoh gets only the names
    const plain = render(policy([vm('t', '10.20.0.14', 'teen')], [kidLike('teen')]));
    expect(plain.rules).not.toContain('bypass:');
    expect(plain.rules).not.toContain('DoH');
  });

  it('is deterministic; a changed list is a new dataset name (Suricata keeps a loaded set by name)', () => {
    const p = policy([vm('kid', '10.20.0.10', 'kid')]);
    expect(render(p)).toEqual(render(p));
    const more: NameLists = {
      ...lists,
      categories: new Map([...lists.categories, ['adult', ['adult.example', 'new.example']]]),
    };
    const a = render(p).datasets.find((d) => d.name.startsWith('pc-names-kid-'))!.name;
    const b = render(p, more).datasets.find((d) => d.name.startsWith('pc-names-kid-'))!.name;
    expect(a).not.toBe(b);
  });

  it('without lists, only the bypass rules remain', () => {
    const m = render(policy([vm('kid', '10.20.0.10', 'kid')]), EMPTY_NAME_LISTS);
    expect(m.datasets).toEqual([]);
    expect(m.rules).toContain('bypass: WireGuard handshake');
    expect(m.rules).not.toContain('blocked name');
  });
});
