import { describe, expect, it } from 'vitest';
import { BudgetBook, localDay, nextLocalMidnight, type BudgetRule } from './budget.js';

const rule: BudgetRule = {
  key: 'alice',
  dailyMinutes: 2,
  idleBytesPerMinute: 20_000,
  timezone: 'Europe/Berlin',
};
const at = (iso: string): Date => new Date(iso);

describe('BudgetBook', () => {
  it('counts active minutes only, not idle background traffic', () => {
    const b = new BudgetBook();
    b.sample('kid', 0, at('2026-01-10T10:00:00Z'), rule);
    b.sample('kid', 5_000, at('2026-01-10T10:01:00Z'), rule); // idle
    b.sample('kid', 1_000_000, at('2026-01-10T10:02:00Z'), rule); // active
    expect(b.usage(rule, at('2026-01-10T10:02:00Z')).usedSeconds).toBe(60);
  });

  it('shares one budget among the VMs of one owner and blocks until local midnight when spent', () => {
    const b = new BudgetBook();
    for (const vm of ['kid-browse', 'kid-games']) b.sample(vm, 0, at('2026-01-10T10:00:00Z'), rule);
    b.sample('kid-browse', 1e6, at('2026-01-10T10:01:00Z'), rule);
    b.sample('kid-games', 0, at('2026-01-10T10:01:00Z'), rule); // idle
    expect(b.usage(rule, at('2026-01-10T10:01:00Z')).blockedUntil).toBeUndefined();
    b.sample('kid-browse', 1e6, at('2026-01-10T10:02:00Z'), rule); // idle
    b.sample('kid-games', 1e6, at('2026-01-10T10:02:00Z'), rule);
    // Berlin is UTC+1 in January: local midnight is 23:00 UTC
    expect(b.usage(rule, at('2026-01-10T10:02:00Z'))).toMatchObject({
      usedSeconds: 120,
      blockedUntil: '2026-01-10T23:00:00.000Z',
    });
  });

  it('counts a minute once when two VMs of the owner are busy in it', () => {
    const b = new BudgetBook();
    for (const vm of ['kid-browse', 'kid-games']) b.sample(vm, 0, at('2026-01-10T10:00:00Z'), rule);
    b.sample('kid-browse', 1e6, at('2026-01-10T10:01:00Z'), rule);
    b.sample('kid-games', 1e6, at('2026-01-10T10:01:00Z'), rule);
    expect(b.usage(rule, at('2026-01-10T10:01:00Z'))).toMatchObject({ usedSeconds: 60 });
    // overlapping intervals sampled at other instants count their union
    b.sample('kid-games', 2e6, at('2026-01-10T10:01:30Z'), rule);
    b.sample('kid-browse', 2e6, at('2026-01-10T10:02:00Z'), rule);
    expect(b.usage(rule, at('2026-01-10T10:02:00Z'))).toMatchObject({ usedSeconds: 120 });
    // VMs of another budget are counted on their own
    const other: BudgetRule = { ...rule, key: 'bob' };
    b.sample('bob-vm', 0, at('2026-01-10T10:00:00Z'), other);
    b.sample('bob-vm', 1e6, at('2026-01-10T10:02:00Z'), other);
    expect(b.usage(other, at('2026-01-10T10:02:00Z'))).toMatchObject({ usedSeconds: 120 });
  });

  it('lets a parent grant extra minutes, for today only', () => {
    const b = new BudgetBook();
    b.sample('kid', 0, at('2026-01-10T10:00:00Z'), rule);
    b.sample('kid', 1e7, at('2026-01-10T10:02:00Z'), rule);
    expect(b.usage(rule, at('2026-01-10T10:02:00Z')).blockedUntil).toBeDefined();
    b.grant(rule, 5, at('2026-01-10T10:02:00Z'));
    expect(b.usage(rule, at('2026-01-10T10:02:00Z')).blockedUntil).toBeUndefined();
    expect(b.usage(rule, at('2026-01-11T10:00:00Z'))).toMatchObject({ usedSeconds: 0, extraMinutes: 0 });
  });

  it('restarts its baseline when a counter goes backwards', () => {
    const b = new BudgetBook();
    b.sample('kid', 5e6, at('2026-01-10T10:00:00Z'), rule);
    b.sample('kid', 100, at('2026-01-10T10:01:00Z'), rule);
    expect(b.usage(rule, at('2026-01-10T10:01:00Z')).usedSeconds).toBe(0);
  });

  it('survives a restart through its state', () => {
    const b = new BudgetBook();
    b.grant(rule, 3, at('2026-01-10T10:00:00Z'));
    expect(new BudgetBook(b.toJSON()).usage(rule, at('2026-01-10T11:00:00Z')).extraMinutes).toBe(3);
  });
});

describe('local days', () => {
  it('finds the next local midnight across DST', () => {
    expect(localDay(at('2026-03-28T23:30:00Z'), 'Europe/Berlin')).toBe('2026-03-29');
    expect(nextLocalMidnight(at('2026-03-29T12:00:00Z'), 'Europe/Berlin').toISOString()).toBe(
      '2026-03-29T22:00:00.000Z',
    );
  });
});
