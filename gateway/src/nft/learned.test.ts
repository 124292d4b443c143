import { describe, expect, it } from 'vitest';
import { compile } from '../policy/compile.js';
import { allowSet, ruleSet, serviceSet } from './names.js';
import { windowsByVm } from '../policy/schedule.js';
import type { Policy, Vm } from '../policy/model.js';
import { NftApplier } from './applier.js';
import type { NftBackend } from './backend.js';
import pino from 'pino';
import { AddressLearner, learnedElements, type LearnedAnswer } from './learned.js';
import type { NftCommand } from './types.js';

const network = {
  lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
  wan: { iface: 'wan0' },
  mgmt: { iface: 'mgmt0', ports: [8080] },
};
const now = Date.parse('2026-11-25T12:00:00Z');

const kid: Vm = {
  name: 'kid',
  mac: '52:54:00:00:00:0a',
  ipv4: '10.20.0.10',
  profile: 'homework',
  rules: [
    { id: 'wiki', action: 'accept', to: { domain: '*.wikipedia.org' } },
    { id: 'game', action: 'drop', to: { domain: 'games.test' }, expires: '2026-11-25T12:01:00Z' },
    { id: 'old', action: 'drop', to: { domain: 'old.test' }, expires: '2026-11-25T11:00:00Z' },
  ],
};

/** An allowlist-only profile that slows YouTube; a schedule that blocks TikTok at times. */
function makePolicy(): Policy {
  return {
    vms: [kid, { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'work' }],
    profiles: [
      {
        name: 'homework',
        internet: 'allowlist-only',
        rules: [],
        reach: [],
        ips: { mode: 'off', failure: 'fail-open' },
        parental: { slowServices: [{ service: 'youtube', kbytes: 64 }] },
      },
    ],
    schedules: [
      {
        name: 'no-tiktok',
        vms: ['kid'],
        timezone: 'UTC',
        windows: [{ days: ['sat'], start: '00:00', end: '23:59' }],
        services: ['tiktok'],
        mode: 'deny',
      },
    ],
    vpnEndpoints: [],
    updateServers: [],
    ipv6: true,
  } as Policy;
}

/** The sets the compiler makes for this policy: learning writes only into those. */
const policy = makePolicy();
const compiled = () => {
  const { byVm, services } = windowsByVm(policy.schedules, new Date(now));
  return compile({ policy, network, now: new Date(now), windows: byVm, serviceWindows: services });
};
const sets = new Set(compiled().sets.map((s) => s.name));
/** The DNS filter's service lists, reduced to a suffix table. */
const SERVICES: Record<string, string> = { 'youtube.com': 'youtube', 'tiktok.com': 'tiktok' };
const inService = (name: string, svc: string): boolean =>
  Object.entries(SERVICES).some(([d, s]) => s === svc && (name === d || name.endsWith(`.${d}`)));
const ctx = { policy, sets, inService, now };

const answer = (name: string, ttl = 300, v6: string[] = []): LearnedAnswer => ({
  vm: kid,
  name,
  addresses: { v4: ['192.0.2.7'], v6 },
  ttl,
});

describe('learnedElements', () => {
  it('puts every allowed answer of an allowlist-only VM into its allowlist set, per family', () => {
    expect(learnedElements(answer('example.net', 300, ['2001:db8::7']), ctx)).toEqual([
      { set: allowSet('kid', 4), values: ['192.0.2.7'], timeout: 300 },
      { set: allowSet('kid', 6), values: ['2001:db8::7'], timeout: 300 },
    ]);
  });

  it('uses the TTL as timeout, but at least 30 s', () => {
    expect(learnedElements(answer('example.net', 5), ctx)[0]!.timeout).toBe(30);
  });

  it("adds a name of a slowed or scheduled service to that service's set", () => {
    expect(learnedElements(answer('www.YouTube.com.'), ctx).map((e) => e.set)).toEqual([
      allowSet('kid', 4),
      serviceSet('kid', 'youtube', 4),
    ]);
    expect(learnedElements(answer('tiktok.com'), ctx).map((e) => e.set)).toContain(
      serviceSet('kid', 'tiktok', 4),
    );
  });

  it('adds names under a domain rule to the rule set, for the rule and its subdomains', () => {
    const wiki = ruleSet('kid', kid.rules![0]!, 0, 4);
    expect(sets.has(wiki)).toBe(true);
    expect(learnedElements(answer('de.wikipedia.org'), ctx).map((e) => e.set)).toContain(wiki);
    expect(learnedElements(answer('wikipedia.org'), ctx).map((e) => e.set)).toContain(wiki);
    expect(learnedElements(answer('notwikipedia.org'), ctx).map((e) => e.set)).not.toContain(wiki);
  });

  it("caps the timeout at the rule's expiry and skips a rule that has expired", () => {
    const game = learnedElements(answer('games.test'), ctx).find(
      (e) => e.set === ruleSet('kid', kid.rules![1]!, 1, 4),
    );
    expect(game?.timeout).toBe(60);
    const old = ruleSet('kid', kid.rules![2]!, 2, 4);
    expect(learnedElements(answer('old.test'), ctx).map((e) => e.set)).not.toContain(old);
  });

  it('skips sets the applied ruleset does not have', () => {
    const noSets = { ...ctx, sets: new Set<string>() };
    expect(learnedElements(answer('de.wikipedia.org'), noSets)).toEqual([]);
  });

  it('adds nothing for an answer without addresses', () => {
    expect(learnedElements({ ...answer('example.net'), addresses: { v4: [], v6: [] } }, ctx)).toEqual([]);
  });
});

describe('AddressLearner', () => {
  /** Records transactions. */
  const backend = (): NftBackend & { batches: NftCommand[][] } => {
    const batches: NftCommand[][] = [];
    return {
      kind: 'nft-cli',
      batches,
      run: async (cmds) => {
        batches.push([...cmds]);
        return '';
      },
      runText: async () => '',
      close: () => undefined,
    };
  };
  const resolved = (name: string, v4 = ['192.0.2.7']) => ({
    client: 'kid',
    name,
    addresses: { v4, v6: [] },
    ttl: 300,
  });
  const learner = (applier: NftApplier, current: () => Policy, asked: string[] = []) =>
    new AddressLearner({
      applier,
      policy: current,
      vm: (client) => current().vms.find((v) => v.name === client),
      inService: (_vm, name, svc) => {
        asked.push(name);
        return inService(name, svc);
      },
      now: () => now,
      log: pino({ level: 'silent' }),
    });

  it('does nothing before a ruleset is applied', async () => {
    const b = backend();
    await learner(new NftApplier(b), () => policy).learnNow(resolved('example.net'));
    expect(b.batches).toEqual([]);
  });

  it('adds the elements to the sets of the applied ruleset, one transaction a set', async () => {
    const b = backend();
    const applier = new NftApplier(b, { now: () => now });
    await applier.apply(compiled());
    b.batches.length = 0;
    await learner(applier, () => policy).learnNow(resolved('www.youtube.com'));
    expect(b.batches).toHaveLength(2);
    expect(applier.dynamicElements(serviceSet('kid', 'youtube', 4)).map((e) => e.val)).toEqual(['192.0.2.7']);
    expect(applier.dynamicElements(allowSet('kid', 4)).map((e) => e.val)).toEqual(['192.0.2.7']);
  });

  it('works out the targets of a name once, and again after the policy changes', async () => {
    const b = backend();
    const applier = new NftApplier(b, { now: () => now });
    await applier.apply(compiled());
    let current = policy;
    const asked: string[] = [];
    const l = learner(applier, () => current, asked);
    await l.learnNow(resolved('www.youtube.com', ['192.0.2.7']));
    await l.learnNow(resolved('www.youtube.com', ['192.0.2.8']));
    expect(asked).toEqual(['www.youtube.com', 'www.youtube.com']); // two services asked about, once
    expect(applier.dynamicElements(serviceSet('kid', 'youtube', 4)).map((e) => e.val)).toEqual([
      '192.0.2.7',
      '192.0.2.8',
    ]);
    current = { ...policy };
    await l.learnNow(resolved('www.youtube.com', ['192.0.2.9']));
    expect(asked).toHaveLength(4);
  });

  it('sends no transaction for an answer whose addresses are already there', async () => {
    const b = backend();
    const applier = new NftApplier(b, { now: () => now });
    await applier.apply(compiled());
    const l = learner(applier, () => policy);
    await l.learnNow(resolved('example.net'));
    b.batches.length = 0;
    await l.learnNow(resolved('example.net'));
    expect(b.batches).toEqual([]);
  });
});
