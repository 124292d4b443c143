import { beforeAll, describe, expect, it } from 'vitest';
import { DomainIndex } from './domain-index.js';
import { listFromText } from './lists.js';
import { NameMatcher } from './matcher.js';
import type { ClientPolicy } from './model.js';
import { SafeSearch } from './safesearch.js';

const makePolicy = (overrides: Partial<ClientPolicy> = {}): ClientPolicy => ({
  client: 'kid-vm',
  ...overrides,
});

let matcher: NameMatcher;

beforeAll(async () => {
  const index = await DomainIndex.build([
    await listFromText('games', 'category', 'roblox.com\nminecraft.net\ngames.example\n'),
    await listFromText('social', 'category', 'instagram.com\nexample.social\n'),
    await listFromText('roblox', 'service', 'roblox.com\nrbxcdn.com\n'),
    await listFromText('youtube', 'service', 'youtube.com\ngooglevideo.com\nytimg.com\n'),
    await listFromText('doh', 'doh', 'dns.google\ncloudflare-dns.com\n'),
  ]);
  matcher = new NameMatcher(index, new SafeSearch());
});

describe('NameMatcher', () => {
  it('allows what nothing lists, with no reason', () => {
    expect(matcher.verdict('example.com', makePolicy({ categories: ['games'] }))).toEqual({
      action: 'allow',
    });
  });

  it('blocks a listed domain and all its subdomains, but not look-alikes', () => {
    const p = makePolicy({ categories: ['games'] });
    expect(matcher.verdict('minecraft.net', p)).toEqual({
      action: 'block',
      reason: { kind: 'category', list: 'games', entry: 'minecraft.net' },
    });
    expect(matcher.verdict('a.b.session.minecraft.net', p).reason?.entry).toBe('minecraft.net');
    expect(matcher.verdict('notminecraft.net', p).action).toBe('allow');
    expect(matcher.verdict('minecraft.net.evil.example', p).action).toBe('allow');
    expect(matcher.verdict('net', p).action).toBe('allow');
  });

  it('blocks only the lists the client has selected', () => {
    expect(matcher.verdict('instagram.com', makePolicy({ categories: ['games'] })).action).toBe('allow');
    expect(matcher.verdict('instagram.com', makePolicy({ categories: ['social'] })).action).toBe('block');
  });

  it('reports a service before a category for a name on both', () => {
    const v = matcher.verdict('www.roblox.com', makePolicy({ categories: ['games'], services: ['roblox'] }));
    expect(v.reason).toEqual({ kind: 'service', list: 'roblox', entry: 'roblox.com' });
  });

  it('blocks a service by any of its domains', () => {
    const p = makePolicy({ services: ['youtube'] });
    expect(matcher.verdict('rr3---sn-4g5e6nzz.googlevideo.com', p).reason).toEqual({
      kind: 'service',
      list: 'youtube',
      entry: 'googlevideo.com',
    });
    expect(matcher.verdict('i.ytimg.com', p).action).toBe('block');
  });

  it('lets a custom allow entry win over lists', () => {
    const p = makePolicy({ categories: ['games'], allow: ['minecraft.net'] });
    expect(matcher.verdict('www.minecraft.net', p)).toEqual({
      action: 'allow',
      reason: { kind: 'custom', list: 'allow', entry: 'minecraft.net' },
    });
    expect(matcher.verdict('roblox.com', p).action).toBe('block');
  });

  it('blocks custom deny entries; the more specific of allow and deny wins, allow on a tie', () => {
    const p = makePolicy({
      allow: ['school.example', 'both.example'],
      deny: ['games.school.example', 'both.example', 'chat.example'],
    });
    expect(matcher.verdict('www.school.example', p).action).toBe('allow');
    expect(matcher.verdict('x.games.school.example', p)).toEqual({
      action: 'block',
      reason: { kind: 'custom', list: 'deny', entry: 'games.school.example' },
    });
    expect(matcher.verdict('both.example', p).action).toBe('allow');
    expect(matcher.verdict('chat.example', p).reason?.kind).toBe('custom');
  });

  it('normalises custom entries: case, wildcard and trailing dot', () => {
    const p = makePolicy({ deny: ['*.Chat.Example.'] });
    expect(matcher.verdict('a.chat.example', p).action).toBe('block');
  });

  it('resolves only allowed names in allowlist-only mode', () => {
    const p = makePolicy({ allowlistOnly: true, allow: ['school.example'] });
    expect(matcher.verdict('lessons.school.example', p).action).toBe('allow');
    expect(matcher.verdict('example.com', p)).toEqual({ action: 'block', reason: { kind: 'allowlist' } });
  });

  it('blocks everything for a paused client', () => {
    const p = makePolicy({ paused: true, allow: ['school.example'] });
    expect(matcher.verdict('school.example', p)).toEqual({ action: 'block', reason: { kind: 'paused' } });
  });

  it('answers DoH endpoint names NXDOMAIN only for clients with blockDoh', () => {
    expect(matcher.verdict('dns.google', makePolicy({ blockDoh: true }))).toEqual({
      action: 'nxdomain',
      reason: { kind: 'doh', list: 'doh', entry: 'dns.google' },
    });
    expect(matcher.verdict('mozilla.cloudflare-dns.com', makePolicy({ blockDoh: true })).action).toBe(
      'nxdomain',
    );
    expect(matcher.verdict('dns.google', makePolicy()).action).toBe('allow');
  });

  describe('bypass closing, for every client', () => {
    const everyone = [
      makePolicy(),
      makePolicy({ paused: true }),
      makePolicy({ allow: ['net', 'com', 'arpa'] }),
    ];

    it.each(everyone)('answers the Firefox canary NXDOMAIN (%#)', (p) => {
      expect(matcher.verdict('use-application-dns.net', p)).toEqual({
        action: 'nxdomain',
        reason: { kind: 'canary', entry: 'use-application-dns.net' },
      });
    });

    it.each(['mask.icloud.com', 'mask-h2.icloud.com', 'mask-canary.icloud.com'])(
      'answers Private Relay %s NXDOMAIN',
      (n) => {
        for (const p of everyone)
          expect(matcher.verdict(n, p)).toEqual({
            action: 'nxdomain',
            reason: { kind: 'private-relay', entry: n },
          });
      },
    );

    it('answers DDR discovery NODATA', () => {
      for (const p of everyone) expect(matcher.verdict('_dns.resolver.arpa', p).action).toBe('nodata');
    });

    it('leaves other iCloud names alone', () => {
      expect(matcher.verdict('www.icloud.com', makePolicy()).action).toBe('allow');
    });
  });

  describe('SafeSearch', () => {
    it('rewrites search names when on, and only then', () => {
      expect(matcher.verdict('www.google.com', makePolicy({ safeSearch: true }))).toEqual({
        action: 'rewrite',
        target: 'forcesafesearch.google.com',
        reason: { kind: 'safesearch', entry: 'www.google.com' },
      });
      expect(matcher.verdict('www.google.com', makePolicy()).action).toBe('allow');
    });

    it('picks the YouTube level from the policy', () => {
      expect(matcher.verdict('www.youtube.com', makePolicy({ safeSearch: true })).target).toBe(
        'restrict.youtube.com',
      );
      expect(
        matcher.verdict('m.youtube.com', makePolicy({ safeSearch: true, youtube: 'moderate' })).target,
      ).toBe('restrictmoderate.youtube.com');
    });

    it('blocks a blocked service before rewriting it', () => {
      expect(
        matcher.verdict('www.youtube.com', makePolicy({ safeSearch: true, services: ['youtube'] })).action,
      ).toBe('block');
    });

    it('still rewrites a name the client allows by hand', () => {
      expect(
        matcher.verdict('www.bing.com', makePolicy({ safeSearch: true, allow: ['bing.com'] })).target,
      ).toBe('strict.bing.com');
    });
  });

  it('names the lists a policy asks for that are not loaded', () => {
    expect(matcher.missingLists(makePolicy({ categories: ['games', 'nope'], services: ['tiktok'] }))).toEqual(
      ['service:tiktok', 'category:nope'],
    );
  });
});
