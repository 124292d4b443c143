import { describe, expect, it } from 'vitest';
import { Store } from './store.js';

const LIMITS = { idleMs: 30 * 60_000, absoluteMs: 12 * 3_600_000 };

function open() {
  let now = Date.parse('2026-03-01T12:00:00Z');
  const store = Store.open({ path: ':memory:', now: () => now });
  return { store, tick: (ms: number) => (now += ms) };
}

describe('users, sessions and tokens in the store', () => {
  it('adds users (audited), refuses bad ones by field', () => {
    const { store } = open();
    const mum = store.auth.addUser(
      { name: 'mum', role: 'parent', people: ['sam'], passwordHash: 'h' },
      'cli:root',
    );
    expect(mum).toMatchObject({ name: 'mum', role: 'parent', people: ['sam'] });
    expect(store.auth.passwordHash('mum')).toBe('h');
    expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      actor: 'cli:root',
      action: 'user.add',
      target: 'user/mum',
    });
    expect(JSON.stringify(store.audit.list({ limit: 1 }).items[0])).not.toContain('"h"');
    expect(() => store.auth.addUser({ name: 'mum', role: 'viewer', passwordHash: 'h' }, 'x')).toThrow(
      /exists already/,
    );
    expect(() => store.auth.addUser({ name: 'dad', role: 'parent', passwordHash: 'h' }, 'x')).toThrow(
      /--people/,
    );
    expect(() => store.auth.addUser({ name: 'dad', role: 'root', passwordHash: 'h' }, 'x')).toThrow(
      /admin, parent or viewer/,
    );
    expect(() => store.auth.addUser({ name: 'Dad!', role: 'viewer', passwordHash: 'h' }, 'x')).toThrow(
      /not a user name/,
    );
    expect(store.auth.users().map((u) => u.name)).toEqual(['mum']);
  });

  it('keeps sessions server-side, with idle and absolute expiry', () => {
    const { store, tick } = open();
    store.auth.addUser({ name: 'mum', role: 'parent', people: ['sam'], passwordHash: 'h' }, 'x');
    const s = store.auth.createSession('mum', LIMITS);
    expect(store.auth.session(s, LIMITS)?.name).toBe('mum');
    expect(store.auth.session(`${s}x`, LIMITS)).toBeUndefined();
    // used every 20 minutes: alive past the idle limit, until the absolute one
    for (let i = 0; i < 35; i++) {
      tick(20 * 60_000);
      expect(store.auth.session(s, LIMITS)?.name, `after ${(i + 1) * 20} min`).toBe('mum');
    }
    tick(20 * 60_000); // 12 h since login
    expect(store.auth.session(s, LIMITS)).toBeUndefined();
    const idle = store.auth.createSession('mum', LIMITS);
    tick(31 * 60_000);
    expect(store.auth.session(idle, LIMITS)).toBeUndefined();
  });

  it('logs a user out everywhere, and on a password change or removal', () => {
    const { store } = open();
    store.auth.addUser({ name: 'mum', role: 'parent', people: ['sam'], passwordHash: 'h' }, 'x');
    const a = store.auth.createSession('mum', LIMITS);
    const b = store.auth.createSession('mum', LIMITS);
    expect(store.auth.endSessions('mum')).toBe(2);
    expect(store.auth.session(a, LIMITS)).toBeUndefined();
    expect(store.auth.session(b, LIMITS)).toBeUndefined();
    const c = store.auth.createSession('mum', LIMITS);
    store.auth.setPassword('mum', 'h2', 'x');
    expect(store.auth.session(c, LIMITS)).toBeUndefined();
    const d = store.auth.createSession('mum', LIMITS);
    store.auth.removeUser('mum', 'x');
    expect(store.auth.session(d, LIMITS)).toBeUndefined();
    expect(() => store.auth.removeUser('mum', 'x')).toThrow(/no user/);
  });

  it('stores tokens hashed; they work until revoked or expired', () => {
    const { store, tick } = open();
    const { token, record } = store.auth.createToken({ name: 'prometheus', role: 'viewer' }, 'cli:root');
    expect(token).toMatch(/^pcl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(store.auth.tokens())).not.toContain(token.slice(17));
    expect(store.auth.verifyToken(token)).toMatchObject({ name: 'prometheus', role: 'viewer' });
    expect(store.auth.verifyToken(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBeUndefined();
    expect(() => store.auth.createToken({ name: 'prometheus', role: 'viewer' }, 'x')).toThrow(
      /revoke it first/,
    );
    store.auth.revokeToken(record.id, 'cli:root');
    expect(store.auth.verifyToken(token)).toBeUndefined();
    expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({ action: 'token.revoke' });

    const soon = new Date(Date.parse('2026-03-01T13:00:00Z')).toISOString();
    const short = store.auth.createToken({ name: 'script', role: 'admin', expiresAt: soon }, 'x');
    expect(store.auth.verifyToken(short.token)?.name).toBe('script');
    tick(3_600_000);
    expect(store.auth.verifyToken(short.token)).toBeUndefined();
    expect(() =>
      store.auth.createToken({ name: 'old', role: 'admin', expiresAt: '2020-01-01T00:00:00Z' }, 'x'),
    ).toThrow(/future/);
  });
});
