import { describe, expect, it } from 'vitest';
import { BUILTIN_ALERT_ACTIONS, DEFAULT_ALERT_ACTIONS } from '../actions/model.js';
import { isPortcullisError } from '../errors.js';
import { emptyPolicy, type Policy, type Profile, type Schedule, type Vm } from './model.js';
import { policyInForce, vmInForce, type RuntimeState, type VmInForce } from './in-force.js';

// Saturday 2026-01-10, 12:00 UTC (13:00 in Berlin)
const NOON = new Date('2026-01-10T12:00:00Z');
const BEFORE_NOON = '2026-01-10T11:00:00Z';
const AFTER_NOON = '2026-01-10T13:30:00Z';

const kid: Vm = { name: 'kid', mac: '52:54:00:00:00:01', ipv4: '10.20.0.11', profile: 'kid' };

/** A schedule of `kid` that is on at NOON unless `off` (then it is on on Sundays only). */
function schedule(
  name: string,
  mode: Schedule['mode'],
  extra: Partial<Schedule> = {},
  off = false,
): Schedule {
  return {
    name,
    vms: ['kid'],
    timezone: 'UTC',
    windows: [{ days: [off ? 'sun' : 'sat'], start: '11:00', end: '13:00' }],
    mode,
    ...extra,
  };
}

function policy(vm: Partial<Vm> = {}, schedules: Schedule[] = [], profiles: Profile[] = []): Policy {
  return { ...emptyPolicy(), vms: [{ ...kid, ...vm }], schedules, profiles };
}

const spent = (until: string): RuntimeState => ({ budgetBlocked: new Map([['kid', new Date(until)]]) });

/** The parts of the answer the table below compares, in a line. */
function summary(s: VmInForce): string {
  const cut = s.cutOff
    ? `${s.cutOff.kind}${'until' in s.cutOff && s.cutOff.until ? `<${s.cutOff.until.toISOString().slice(11, 16)}` : ''}${'schedule' in s.cutOff ? `:${s.cutOff.schedule}` : ''}`
    : '-';
  return [
    `profile=${s.profile.name}`,
    `internet=${s.internet}`,
    `cut=${cut}`,
    `deny=[${s.denySchedules.join(',')}]`,
    `allowlist=[${s.allowlistSchedules.join(',')}]`,
    `services=[${s.blockedServices.join(',')}]`,
    `ips=${s.ips.mode}/${s.ips.failure}`,
  ].join(' ');
}

describe('vmInForce: what holds for a VM at an instant', () => {
  const cases: Array<[what: string, p: Policy, runtime: RuntimeState, expected: string]> = [
    [
      'nothing set: the profile as it is',
      policy(),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a pause until a time still to come cuts the VM off',
      policy({ pause: { since: BEFORE_NOON, until: AFTER_NOON } }),
      {},
      'profile=kid internet=deny cut=pause<13:30 deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a pause without end cuts the VM off',
      policy({ pause: { since: BEFORE_NOON } }),
      {},
      'profile=kid internet=deny cut=pause deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a pause that has ended holds no more',
      policy({ pause: { since: '2026-01-10T10:00:00Z', until: BEFORE_NOON } }),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a pause ending at this very instant has ended',
      policy({ pause: { since: BEFORE_NOON, until: NOON.toISOString() } }),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'an active deny schedule cuts the VM off',
      policy({}, [schedule('bedtime', 'deny')]),
      {},
      'profile=kid internet=deny cut=schedule:bedtime deny=[bedtime] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a deny schedule outside its windows does nothing',
      policy({}, [schedule('bedtime', 'deny', {}, true)]),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a disabled schedule does nothing, in its window too',
      policy({}, [schedule('bedtime', 'deny', { enabled: false })]),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'paused and scheduled: the pause is the first cause; the schedule is listed',
      policy({ pause: { since: BEFORE_NOON, until: AFTER_NOON } }, [schedule('bedtime', 'deny')]),
      {},
      'profile=kid internet=deny cut=pause<13:30 deny=[bedtime] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a spent budget cuts the VM off until the reset',
      policy(),
      spent('2026-01-10T23:00:00Z'),
      'profile=kid internet=deny cut=budget<23:00 deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'a budget whose reset has passed holds no more',
      policy(),
      spent(BEFORE_NOON),
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'budget spent in a deny window: the budget is the first cause',
      policy({}, [schedule('bedtime', 'deny')]),
      spent('2026-01-10T23:00:00Z'),
      'profile=kid internet=deny cut=budget<23:00 deny=[bedtime] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'paused with the budget spent: the pause is the first cause',
      policy({ pause: { since: BEFORE_NOON } }),
      spent('2026-01-10T23:00:00Z'),
      'profile=kid internet=deny cut=pause deny=[] allowlist=[] services=[] ips=ips/fail-closed',
    ],
    [
      'an allowlist-only schedule narrows an open profile',
      policy({}, [schedule('homework', 'allowlist-only')]),
      {},
      'profile=kid internet=allowlist-only cut=- deny=[] allowlist=[homework] services=[] ips=ips/fail-closed',
    ],
    [
      'deny and allowlist-only schedules at once: deny wins',
      policy({}, [schedule('homework', 'allowlist-only'), schedule('bedtime', 'deny')]),
      {},
      'profile=kid internet=deny cut=schedule:bedtime deny=[bedtime] allowlist=[homework] services=[] ips=ips/fail-closed',
    ],
    [
      'an allowlist-only schedule leaves a deny profile off',
      policy({ profile: 'quarantine' }, [schedule('homework', 'allowlist-only')]),
      {},
      'profile=quarantine internet=deny cut=- deny=[] allowlist=[homework] services=[] ips=off/fail-open',
    ],
    [
      'per-service schedules block their services only, each once',
      policy({}, [
        schedule('evenings', 'deny', { services: ['youtube', 'tiktok'] }),
        schedule('more', 'allowlist-only', { services: ['youtube', 'roblox'] }),
        schedule('later', 'deny', { services: ['fortnite'] }, true),
      ]),
      {},
      'profile=kid internet=open cut=- deny=[] allowlist=[] services=[youtube,tiktok,roblox] ips=ips/fail-closed',
    ],
    [
      'quarantine overrides everything: pause, budget, schedules',
      policy(
        {
          quarantine: { reason: 'ET MALWARE beacon', since: BEFORE_NOON },
          pause: { since: BEFORE_NOON },
        },
        [schedule('homework', 'allowlist-only'), schedule('bedtime', 'deny')],
      ),
      spent('2026-01-10T23:00:00Z'),
      // the cut-off cause stays what it was: the DNS filter keeps answering the block page
      'profile=quarantine internet=deny cut=pause deny=[bedtime] allowlist=[homework] services=[] ips=off/fail-open',
    ],
    [
      'quarantine alone: the quarantine profile, internet off, nothing cut off',
      policy({ quarantine: { reason: 'ET MALWARE beacon', since: BEFORE_NOON } }),
      {},
      'profile=quarantine internet=deny cut=- deny=[] allowlist=[] services=[] ips=off/fail-open',
    ],
    [
      'quarantine is off even when a custom quarantine profile says open',
      policy(
        { quarantine: { reason: 'ET MALWARE beacon', since: BEFORE_NOON } },
        [],
        [customKid('quarantine')],
      ),
      {},
      'profile=quarantine internet=deny cut=- deny=[] allowlist=[] services=[] ips=ids/fail-open',
    ],
    [
      "a profile whose DNS is paused: names blocked, the kernel's access as the profile says",
      policy({ profile: 'quiet' }, [], [{ ...customKid('quiet'), dns: { paused: true } }]),
      {},
      'profile=quiet internet=open cut=profile deny=[] allowlist=[] services=[] ips=ids/fail-open',
    ],
    [
      'a pause comes before the profile paused DNS',
      policy(
        { profile: 'quiet', pause: { since: BEFORE_NOON } },
        [],
        [{ ...customKid('quiet'), dns: { paused: true } }],
      ),
      {},
      'profile=quiet internet=deny cut=pause deny=[] allowlist=[] services=[] ips=ids/fail-open',
    ],
  ];

  it.each(cases)('%s', (_what, p, runtime, expected) => {
    expect(summary(vmInForce(p, p.vms[0]!, NOON, runtime))).toBe(expected);
  });

  it('evaluates windows in the schedule time zone', () => {
    // 13:00 in Berlin at NOON UTC
    const berlin = schedule('bedtime', 'deny', {
      timezone: 'Europe/Berlin',
      windows: [{ days: ['sat'], start: '12:30', end: '13:30' }],
    });
    expect(vmInForce(policy({}, [berlin]), kid, NOON).denySchedules).toEqual(['bedtime']);
    expect(vmInForce(policy({}, [{ ...berlin, timezone: 'UTC' }]), kid, NOON).denySchedules).toEqual([]);
  });

  it('lists every schedule of the VM with whether it is on, and none of other VMs', () => {
    const p = policy({}, [
      schedule('bedtime', 'deny', {}, true),
      schedule('evenings', 'deny', { services: ['youtube'] }),
      schedule('other', 'deny', { vms: ['work'] }),
    ]);
    expect(vmInForce(p, kid, NOON).schedules).toEqual([
      { name: 'bedtime', mode: 'deny', services: [], active: false },
      { name: 'evenings', mode: 'deny', services: ['youtube'], active: true },
    ]);
  });

  it('gives the pause, budget and quarantine in force with their details', () => {
    const pause = { since: BEFORE_NOON, until: AFTER_NOON, reason: 'dinner' };
    const paused = policy({ pause });
    const s = vmInForce(paused, paused.vms[0]!, NOON, spent('2026-01-10T23:00:00Z'));
    expect(s.pause).toEqual(pause);
    expect(s.cutOff).toEqual({ kind: 'pause', until: new Date(AFTER_NOON), reason: 'dinner' });
    expect(s.budgetSpentUntil).toEqual(new Date('2026-01-10T23:00:00Z'));
    expect(s.quarantine).toBeUndefined();
    const quarantine = { reason: 'ET MALWARE beacon', since: BEFORE_NOON };
    const quarantined = policy({ quarantine });
    expect(vmInForce(quarantined, quarantined.vms[0]!, NOON).quarantine).toEqual(quarantine);
    // another VM's spent budget is not this one's
    const other: RuntimeState = { budgetBlocked: new Map([['work', new Date('2026-01-10T23:00:00Z')]]) };
    expect(vmInForce(policy(), kid, NOON, other).budgetSpentUntil).toBeUndefined();
  });

  it("takes IPS settings and alert actions from the profile in force: its own, else the built-in's, else the defaults", () => {
    const alerts = { block: { maxSeverity: 3, duration: 60 } };
    const own = policy({ profile: 'strict' }, [], [{ ...customKid('strict'), alerts }]);
    expect(vmInForce(own, own.vms[0]!, NOON)).toMatchObject({
      ips: { mode: 'ids', failure: 'fail-open' },
      alerts,
    });
    expect(vmInForce(policy(), kid, NOON).alerts).toEqual(BUILTIN_ALERT_ACTIONS['kid']);
    // a custom profile of a built-in's name without alerts: the built-in's
    const over = policy({}, [], [{ ...customKid('kid'), ips: { mode: 'off', failure: 'fail-open' } }]);
    expect(vmInForce(over, kid, NOON)).toMatchObject({
      ips: { mode: 'off' },
      alerts: BUILTIN_ALERT_ACTIONS['kid'],
    });
    const plain = policy({ profile: 'plain' }, [], [customKid('plain')]);
    expect(vmInForce(plain, plain.vms[0]!, NOON).alerts).toEqual(DEFAULT_ALERT_ACTIONS);
    // quarantined: the quarantine profile's, not the VM's own
    const q = policy(
      { profile: 'strict', quarantine: { reason: 'x', since: BEFORE_NOON } },
      [],
      own.profiles,
    );
    expect(vmInForce(q, q.vms[0]!, NOON).alerts).toEqual(BUILTIN_ALERT_ACTIONS['quarantine']);
  });

  it('names the VM and the missing profile when the profile does not exist', () => {
    let err: unknown;
    try {
      vmInForce(policy({ profile: 'ghost' }), { ...kid, profile: 'ghost' }, NOON);
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err) && err.code).toBe('INTERNAL');
    expect((err as Error).message).toBe('VM "kid" has profile "ghost", which does not exist');
  });
});

describe('policyInForce', () => {
  it('answers for every VM as vmInForce does, by name in policy order', () => {
    const p: Policy = {
      ...policy({ pause: { since: BEFORE_NOON } }, [
        schedule('bedtime', 'deny', { vms: ['kid', 'work'] }),
        schedule('homework', 'allowlist-only', { vms: ['work'] }),
        schedule('evenings', 'deny', { vms: ['browse'], services: ['youtube'] }),
      ]),
    };
    p.vms.push(
      { name: 'work', mac: '52:54:00:00:00:02', ipv4: '10.20.0.12', profile: 'work' },
      { name: 'browse', mac: '52:54:00:00:00:03', ipv4: '10.20.0.13', profile: 'open' },
    );
    const runtime = spent('2026-01-10T23:00:00Z');
    const all = policyInForce(p, NOON, runtime);
    expect([...all.keys()]).toEqual(['kid', 'work', 'browse']);
    for (const vm of p.vms) expect(all.get(vm.name)).toEqual(vmInForce(p, vm, NOON, runtime));
    expect(all.get('work')?.schedules.map((s) => s.name)).toEqual(['bedtime', 'homework']);
    expect(all.get('browse')?.blockedServices).toEqual(['youtube']);
  });
});

function customKid(name: string): Profile {
  return {
    name,
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'ids', failure: 'fail-open' },
  };
}
