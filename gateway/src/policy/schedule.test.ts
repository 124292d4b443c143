import { describe, expect, it } from 'vitest';
import type { Schedule } from './model.js';
import { kernelWindows, nextOffsetChange, scheduleActive, utcOffsetMinutes } from './schedule.js';

function makeSchedule(overrides: Partial<Schedule> = {}): Schedule {
  return {
    name: 'bedtime',
    vms: ['kid'],
    timezone: 'UTC',
    windows: [{ days: ['mon'], start: '21:00', end: '07:00' }],
    mode: 'deny',
    ...overrides,
  };
}

describe('schedule math', () => {
  it('reads a zone offset, with DST', () => {
    expect(utcOffsetMinutes('Europe/Berlin', new Date('2026-01-15T12:00:00Z'))).toBe(60);
    expect(utcOffsetMinutes('Europe/Berlin', new Date('2026-07-15T12:00:00Z'))).toBe(120);
    expect(utcOffsetMinutes('America/New_York', new Date('2026-01-15T12:00:00Z'))).toBe(-300);
  });

  it('finds the next DST change to the minute', () => {
    // EU: last Sunday of March 2026 is the 29th, 01:00 UTC
    expect(nextOffsetChange('Europe/Berlin', new Date('2026-03-01T00:00:00Z'))?.toISOString()).toBe(
      '2026-03-29T01:00:00.000Z',
    );
    expect(nextOffsetChange('UTC', new Date('2026-03-01T00:00:00Z'))).toBeUndefined();
  });

  it('splits a window that crosses midnight into two kernel days', () => {
    const { windows } = kernelWindows(makeSchedule(), new Date('2026-01-15T12:00:00Z'));
    expect(windows).toEqual([
      { days: [2], from: 0, to: 7 * 3600 - 1, mode: 'deny' },
      { days: [1], from: 21 * 3600, to: 86399, mode: 'deny' },
    ]);
  });

  it('shifts local windows to UTC, across the week boundary', () => {
    // Monday 00:30-01:30 in Berlin (UTC+1) is Sunday 23:30 - Monday 00:30 UTC
    const s = makeSchedule({
      timezone: 'Europe/Berlin',
      windows: [{ days: ['mon'], start: '00:30', end: '01:30' }],
    });
    const { windows, validUntil } = kernelWindows(s, new Date('2026-01-15T12:00:00Z'));
    expect(windows).toEqual([
      { days: [1], from: 0, to: 30 * 60 - 1, mode: 'deny' },
      { days: [0], from: 23 * 3600 + 30 * 60, to: 86399, mode: 'deny' },
    ]);
    expect(validUntil?.toISOString()).toBe('2026-03-29T01:00:00.000Z');
  });

  it('merges the same hours on several days', () => {
    const s = makeSchedule({
      windows: [{ days: ['mon', 'tue', 'wed'], start: '08:00', end: '15:00' }],
      mode: 'allowlist-only',
    });
    expect(kernelWindows(s, new Date('2026-01-15T12:00:00Z')).windows).toEqual([
      { days: [1, 2, 3], from: 8 * 3600, to: 15 * 3600 - 1, mode: 'allowlist-only' },
    ]);
  });

  it('tells whether a schedule is in force', () => {
    const s = makeSchedule({ timezone: 'Europe/Berlin' });
    // Monday 2026-01-12 21:30 Berlin = 20:30 UTC
    expect(scheduleActive(s, new Date('2026-01-12T20:30:00Z'))).toBe(true);
    // Tuesday 06:59 Berlin: still the Monday night window
    expect(scheduleActive(s, new Date('2026-01-13T05:59:00Z'))).toBe(true);
    expect(scheduleActive(s, new Date('2026-01-13T06:00:00Z'))).toBe(false);
    expect(scheduleActive(s, new Date('2026-01-12T19:59:00Z'))).toBe(false);
    // Sunday night window wrapping into Monday
    const sun = makeSchedule({ windows: [{ days: ['sun'], start: '22:00', end: '02:00' }] });
    expect(scheduleActive(sun, new Date('2026-01-12T01:00:00Z'))).toBe(true);
    expect(scheduleActive({ ...sun, enabled: false }, new Date('2026-01-12T01:00:00Z'))).toBe(false);
  });
});
