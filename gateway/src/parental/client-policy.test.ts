import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../policy/builtins.js';
import { makePolicy } from '../store/test-fixtures.js';
import { clientPolicies, explain } from './client-policy.js';

// a Saturday: the fixture's bedtime schedule (mon, tue) is not on
const SATURDAY = new Date('2026-01-10T12:00:00Z');
const NONE = new Map<string, Date>();

describe('clientPolicies', () => {
  it('gives each VM its profile DNS settings under its addresses, with accepted domains allowed', () => {
    const views = clientPolicies(makePolicy(), SATURDAY, NONE);
    const kid = views.get('10.20.0.11');
    expect(views.get('fd00::11')).toBe(kid);
    expect(kid?.vm.name).toBe('kid');
    expect(kid?.policy).toMatchObject({ client: 'kid', paused: false });
    expect(kid?.policy.allow).toContain('example.org');
    expect(kid?.blocked).toBeUndefined();
    // work is quarantined: the quarantine profile's settings, not office's
    expect(views.get('10.20.0.12')?.policy.categories).toBeUndefined();
  });

  it('lets a quarantined VM resolve only what the quarantine profile allows, not its own accepted domains', () => {
    const base = makePolicy();
    const policy = {
      ...base,
      vms: base.vms.map((vm) =>
        vm.name === 'kid' ? { ...vm, quarantine: { since: '2026-01-01T00:00:00Z', reason: 'test' } } : vm,
      ),
      profiles: [
        ...base.profiles,
        { ...BUILTIN_PROFILES.find((p) => p.name === 'quarantine')!, allowDomains: ['deb.debian.org'] },
      ],
    };
    const kid = clientPolicies(policy, SATURDAY, NONE).get('10.20.0.11')!;
    expect(kid.policy.allowlistOnly).toBe(true);
    expect(kid.policy.allow).toEqual(['deb.debian.org']);
    // control: not quarantined, its accepted domain resolves and nothing narrows it to a list
    const free = clientPolicies(base, SATURDAY, NONE).get('10.20.0.11')!;
    expect(free.policy.allowlistOnly).toBe(false);
    expect(free.policy.allow).toContain('example.org');
  });

  it('says why a VM is blocked as a whole: pause, spent budget, deny schedule', () => {
    const paused = makePolicy();
    paused.vms[0] = {
      ...paused.vms[0]!,
      pause: { since: '2026-01-10T11:00:00Z', until: '2026-01-10T13:30:00Z' },
    };
    expect(clientPolicies(paused, SATURDAY, NONE).get('10.20.0.11')).toMatchObject({
      policy: { paused: true },
      blocked: 'a parent paused the internet until 13:30.',
    });
    // a pause that has ended blocks nothing
    expect(
      clientPolicies(paused, new Date('2026-01-10T14:00:00Z'), NONE).get('10.20.0.11')?.blocked,
    ).toBeUndefined();

    const spent = new Map([['kid', new Date('2026-01-10T23:00:00Z')]]);
    expect(clientPolicies(makePolicy(), SATURDAY, spent).get('10.20.0.11')).toMatchObject({
      policy: { paused: true },
      blocked: "today's internet time is used up; it comes back at 23:00.",
    });

    const bedtime = makePolicy();
    bedtime.schedules[0] = {
      ...bedtime.schedules[0]!,
      windows: [{ days: ['sat'], start: '12:00', end: '14:00' }],
    };
    expect(clientPolicies(bedtime, SATURDAY, NONE).get('10.20.0.11')).toMatchObject({
      policy: { paused: true },
      blocked: 'the "bedtime" schedule has the internet off right now.',
    });
  });
});

describe('clientPolicies and what is in force', () => {
  it('names the first cause when several hold, and carries the state it came from', () => {
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, pause: { since: '2026-01-10T11:00:00Z' } };
    p.schedules[0] = { ...p.schedules[0]!, windows: [{ days: ['sat'], start: '12:00', end: '14:00' }] };
    const spent = new Map([['kid', new Date('2026-01-10T23:00:00Z')]]);
    const kid = clientPolicies(p, SATURDAY, spent).get('10.20.0.11');
    expect(kid?.blocked).toBe('a parent paused the internet.');
    expect(kid?.state).toMatchObject({ internet: 'deny', denySchedules: ['bedtime'] });
    expect(kid?.state.budgetSpentUntil).toEqual(new Date('2026-01-10T23:00:00Z'));
    // resumed: the spent budget is next, then the schedule
    delete p.vms[0]!.pause;
    expect(clientPolicies(p, SATURDAY, spent).get('10.20.0.11')?.blocked).toBe(
      "today's internet time is used up; it comes back at 23:00.",
    );
    expect(clientPolicies(p, SATURDAY, NONE).get('10.20.0.11')?.blocked).toBe(
      'the "bedtime" schedule has the internet off right now.',
    );
  });

  it('adds the services of active per-service schedules and narrows to the allowlist in an allowlist-only window', () => {
    const p = makePolicy();
    p.schedules = [
      {
        name: 'evenings',
        vms: ['kid'],
        timezone: 'UTC',
        windows: [{ days: ['sat'], start: '11:00', end: '13:00' }],
        services: ['youtube'],
        mode: 'deny',
      },
      {
        name: 'homework',
        vms: ['kid'],
        timezone: 'UTC',
        windows: [{ days: ['sat'], start: '11:00', end: '13:00' }],
        mode: 'allowlist-only',
      },
    ];
    const kid = clientPolicies(p, SATURDAY, NONE).get('10.20.0.11');
    expect(kid?.policy).toMatchObject({ services: ['youtube'], allowlistOnly: true, paused: false });
    expect(kid?.blocked).toBeUndefined();
    const later = clientPolicies(p, new Date('2026-01-10T13:00:00Z'), NONE).get('10.20.0.11');
    expect(later?.policy).toMatchObject({ services: [], allowlistOnly: false });
  });
});

describe('explain', () => {
  it('puts the reason a VM is blocked on the block page, and the list for a blocked name', () => {
    const paused = { action: 'block', reason: { kind: 'paused' } } as const;
    expect(explain(paused, "today's internet time is used up; it comes back at 23:00.")).toBe(
      "today's internet time is used up; it comes back at 23:00.",
    );
    expect(explain(paused)).toBe('the internet is paused right now.');
    expect(explain({ action: 'block', reason: { kind: 'category', list: 'games' } })).toBe(
      'it is in the "games" category, which is blocked.',
    );
  });
});
