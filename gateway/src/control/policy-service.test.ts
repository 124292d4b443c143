import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PortcullisError } from '../errors.js';
import { EventBus, type PortcullisEvents } from '../events.js';
import { Store, type PolicyStore } from '../store/store.js';
import { makePolicy } from '../store/test-fixtures.js';
import { emptyPolicy, type Policy, type Vm } from '../policy/model.js';
import { policyToYaml } from '../policy/yaml.js';
import { importPolicyYaml, MAX_PAUSE_MINUTES, PolicyService, type Enforcer } from './policy-service.js';

/** An enforcer that records what it was asked to apply and fails on demand. */
class FakeEnforcer implements Enforcer {
  readonly applied: { next: Policy; prev: Policy }[] = [];
  failNext: Error | undefined;
  gate: Promise<void> | undefined;

  async apply(next: Policy, prev: Policy): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    this.applied.push({ next: structuredClone(next), prev: structuredClone(prev) });
  }

  get last(): Policy | undefined {
    return this.applied.at(-1)?.next;
  }
}

function makeVm(overrides: Partial<Vm> = {}): Vm {
  return {
    name: 'browse',
    mac: '52:54:00:00:00:03',
    ipv4: '10.20.0.13',
    profile: 'internet-only',
    ...overrides,
  };
}

async function caught(p: Promise<unknown>): Promise<PortcullisError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PortcullisError) return err;
    throw err;
  }
  throw new Error('expected a PortcullisError');
}

const ctx = { actor: 'test' };

describe('PolicyService', () => {
  let store: Store;
  let enforcer: FakeEnforcer;
  let events: EventBus;
  let seen: { event: keyof PortcullisEvents; payload: unknown }[];
  let clock: Date;
  let ids: number;
  let service: PolicyService;

  function makeService(overrides: { store?: PolicyStore } = {}): PolicyService {
    return new PolicyService({
      store: overrides.store ?? store,
      enforcer,
      events,
      now: () => clock.getTime(),
      newRuleId: () => `gen-${++ids}`,
      sweepIntervalMs: 1000,
    });
  }

  beforeEach(async () => {
    clock = new Date('2026-03-01T12:00:00Z');
    ids = 0;
    store = Store.open({ path: ':memory:', now: () => clock.getTime() });
    store.replacePolicy(makePolicy(), 'seed');
    enforcer = new FakeEnforcer();
    events = new EventBus();
    seen = [];
    for (const event of ['policy.applied', 'vm.quarantined', 'vm.released'] as const) {
      events.on('test', event, (payload) => seen.push({ event, payload }));
    }
    service = makeService();
    await service.start();
  });

  afterEach(async () => {
    await service.stop();
    store.close();
    vi.useRealTimers();
  });

  describe('start', () => {
    it('loads the stored policy and applies it over the empty one', () => {
      expect(service.current()).toEqual(makePolicy());
      expect(enforcer.applied).toEqual([{ next: makePolicy(), prev: emptyPolicy() }]);
      expect(seen.map((e) => e.event)).toEqual(['policy.applied']);
    });

    it('refuses to start on a stored policy that does not validate', async () => {
      const bad = Store.open({ path: ':memory:' });
      bad.replacePolicy(makePolicy({ vpnEndpoints: ['10.0.0.1/8'] }), 'seed');
      const err = await caught(makeService({ store: bad }).start());
      expect(err.code).toBe('POLICY_INVALID');
      expect(err.path).toBe('/vpnEndpoints/0');
      bad.close();
    });

    it('refuses mutations before start', async () => {
      const fresh = makeService();
      expect((await caught(fresh.addVm(makeVm(), ctx))).code).toBe('INTERNAL');
    });
  });

  describe('VMs', () => {
    it('applies, stores and audits a new VM', async () => {
      const vm = await service.addVm(makeVm(), { actor: 'cli:alice', reason: 'new laptop VM' });
      expect(vm).toEqual(makeVm());
      expect(enforcer.last?.vms.map((v) => v.name)).toEqual(['kid', 'work', 'browse']);
      expect(enforcer.applied.at(-1)?.prev).toEqual(makePolicy());
      expect(store.loadPolicy()).toEqual(service.current());
      const [entry] = store.audit.list({ limit: 1 }).items;
      expect(entry).toMatchObject({
        actor: 'cli:alice',
        action: 'vm.add',
        target: 'vm/browse',
        reason: 'new laptop VM',
        after: makeVm(),
      });
      expect(entry?.before).toBeUndefined();
      expect(seen.at(-1)).toMatchObject({
        event: 'policy.applied',
        payload: { actor: 'cli:alice', action: 'vm.add' },
      });
    });

    it('refuses a VM whose name is taken, with CONFLICT', async () => {
      const err = await caught(service.addVm(makeVm({ name: 'kid' }), ctx));
      expect(err.code).toBe('CONFLICT');
      expect(err.path).toBe('/vms/2/name');
      expect(err.context?.subject).toBe('/vms/2');
    });

    it('refuses a duplicate MAC with POLICY_INVALID naming the field', async () => {
      const err = await caught(service.addVm(makeVm({ mac: '52:54:00:00:00:01' }), ctx));
      expect(err.code).toBe('POLICY_INVALID');
      expect(err.path).toBe('/vms/2/mac');
      expect(err.context?.subject).toBe('/vms/2');
      expect(err.message).toMatch(/already used by VM "kid"/);
      expect(enforcer.applied).toHaveLength(1);
    });

    it('refuses a rule with a bad CIDR, naming the field', async () => {
      const err = await caught(
        service.addVm(makeVm({ rules: [{ action: 'drop', to: { cidr: '10.0.0.1/8' } }] }), ctx),
      );
      expect(err.path).toBe('/vms/2/rules/0/to/cidr');
      expect(err.message).toMatch(/host bits set/);
    });

    it('gives rules without an id one', async () => {
      const vm = await service.addVm(
        makeVm({ rules: [{ action: 'drop', to: { cidr: '10.9.0.0/16' } }] }),
        ctx,
      );
      expect(vm.rules).toEqual([{ id: 'gen-1', action: 'drop', to: { cidr: '10.9.0.0/16' } }]);
    });

    it('updates fields and removes optional ones given null', async () => {
      const vm = await service.updateVm('kid', { profile: 'open', notes: null, ipv6: 'fd00::99' }, ctx);
      expect(vm.profile).toBe('open');
      expect(vm.notes).toBeUndefined();
      expect(vm.ipv6).toBe('fd00::99');
      expect(store.policy.vm('kid')).toEqual(vm);
    });

    it('answers an unknown VM with VM_NOT_FOUND', async () => {
      expect((await caught(service.updateVm('nope', { notes: 'x' }, ctx))).code).toBe('VM_NOT_FOUND');
      expect((await caught(service.removeVm('nope', ctx))).code).toBe('VM_NOT_FOUND');
      expect(() => service.getVm('nope')).toThrow(/no VM named "nope"/);
    });

    it('refuses to remove a VM others still refer to', async () => {
      const err = await caught(service.removeVm('kid', ctx));
      expect(err.code).toBe('CONFLICT');
      expect(err.message).toMatch(/\/schedules\/0\/vms\/0/);
    });

    it('removes a VM and its rules', async () => {
      await service.addVm(makeVm({ rules: [{ action: 'drop', to: { cidr: '10.9.0.0/16' } }] }), ctx);
      await service.removeVm('browse', ctx);
      expect(service.listVms().map((v) => v.name)).toEqual(['kid', 'work']);
      expect(store.policy.rules({ vm: 'browse' })).toEqual([]);
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        action: 'vm.remove',
        before: expect.objectContaining({ name: 'browse' }),
      });
    });
  });

  describe('quarantine', () => {
    it('quarantines with reason and time, and releases', async () => {
      const vm = await service.quarantine('kid', 'ET TROJAN beacon', { actor: 'ips' });
      expect(vm.quarantine).toEqual({ reason: 'ET TROJAN beacon', since: '2026-03-01T12:00:00.000Z' });
      expect(enforcer.last?.vms[0]?.quarantine).toBeDefined();
      expect(seen.at(-1)).toEqual({
        event: 'vm.quarantined',
        payload: { vm: 'kid', reason: 'ET TROJAN beacon', since: '2026-03-01T12:00:00.000Z', actor: 'ips' },
      });
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        action: 'vm.quarantine',
        reason: 'ET TROJAN beacon',
      });
      const released = await service.release('kid', ctx);
      expect(released.quarantine).toBeUndefined();
      expect(seen.at(-1)).toEqual({ event: 'vm.released', payload: { vm: 'kid', actor: 'test' } });
    });

    it('leaves a VM already in quarantine as it is, without applying or auditing', async () => {
      const audits = store.audit.count();
      const vm = await service.quarantine('work', 'again', ctx);
      expect(vm.quarantine).toEqual(makePolicy().vms[1]!.quarantine);
      expect(enforcer.applied).toHaveLength(1);
      expect(store.audit.count()).toBe(audits);
      expect(seen.map((e) => e.event)).toEqual(['policy.applied']);
    });
  });

  describe('pause', () => {
    it('pauses for some minutes from now, with the reason, and audits the pause', async () => {
      const vm = await service.pause('kid', { minutes: 30, reason: 'dinner' }, { actor: 'api:mum' });
      const pause = {
        since: '2026-03-01T12:00:00.000Z',
        until: '2026-03-01T12:30:00.000Z',
        reason: 'dinner',
      };
      expect(vm.pause).toEqual(pause);
      expect(enforcer.last?.vms[0]?.pause).toEqual(pause);
      expect(service.getVm('kid').pause).toEqual(pause);
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        actor: 'api:mum',
        action: 'vm.pause',
        target: 'vm/kid',
        reason: 'dinner',
        before: null,
        after: pause,
      });
    });

    it('pauses until resumed when no minutes are given; a new pause replaces the one in force', async () => {
      await service.pause('kid', { minutes: 5 }, ctx);
      clock = new Date('2026-03-01T12:01:00Z');
      const vm = await service.pause('kid', {}, ctx);
      expect(vm.pause).toEqual({ since: '2026-03-01T12:01:00.000Z' });
    });

    it('resumes, and leaves a VM that is not paused as it is, without applying or auditing', async () => {
      await service.pause('kid', { minutes: 5 }, ctx);
      const resumed = await service.resume('kid', ctx);
      expect(resumed.pause).toBeUndefined();
      expect(enforcer.last?.vms[0]?.pause).toBeUndefined();
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        action: 'vm.resume',
        before: { since: '2026-03-01T12:00:00.000Z', until: '2026-03-01T12:05:00.000Z' },
        after: null,
      });
      const applied = enforcer.applied.length;
      const audits = store.audit.count();
      await service.resume('kid', ctx);
      expect(enforcer.applied).toHaveLength(applied);
      expect(store.audit.count()).toBe(audits);
    });

    it('refuses an unknown VM and a length out of range, changing nothing', async () => {
      const ghost = await caught(service.pause('ghost', {}, ctx));
      expect([ghost.code, ghost.path]).toEqual(['VM_NOT_FOUND', '/params/name']);
      expect((await caught(service.resume('ghost', ctx))).code).toBe('VM_NOT_FOUND');
      for (const minutes of [0, -5, 1.5, MAX_PAUSE_MINUTES + 1]) {
        const err = await caught(service.pause('kid', { minutes }, ctx));
        expect([err.code, err.path], String(minutes)).toEqual(['REQUEST_INVALID', '/body/minutes']);
        expect(err.message).toContain('leave minutes out to pause until resumed');
      }
      // the longest pause is allowed
      expect((await service.pause('kid', { minutes: MAX_PAUSE_MINUTES }, ctx)).pause?.until).toBe(
        '2026-03-08T12:00:00.000Z',
      );
      expect(enforcer.applied).toHaveLength(2);
    });
  });

  describe('when applying fails', () => {
    it('stores nothing and keeps the policy in force', async () => {
      const audits = store.audit.count();
      enforcer.failNext = new Error('nft: Could not process rule');
      const err = await caught(service.addVm(makeVm(), ctx));
      expect(err.code).toBe('NFT_APPLY_FAILED');
      expect(err.message).toMatch(/Could not process rule/);
      expect(store.loadPolicy()).toEqual(makePolicy());
      expect(store.audit.count()).toBe(audits);
      expect(service.current()).toEqual(makePolicy());
      expect(seen).toHaveLength(1);
      // and the next change works
      await service.addVm(makeVm(), ctx);
      expect(store.policy.vm('browse')).toEqual(makeVm());
    });

    it('passes a PortcullisError from the enforcer through', async () => {
      enforcer.failNext = new PortcullisError('NFT_UNAVAILABLE', 'libnftables is not loaded');
      expect((await caught(service.addVm(makeVm(), ctx))).code).toBe('NFT_UNAVAILABLE');
    });
  });

  describe('when storing fails', () => {
    it('applies the previous policy again and keeps it in force', async () => {
      const failing: PolicyStore = {
        loadPolicy: () => store.loadPolicy(),
        commitPolicy: () => {
          throw new PortcullisError('STORE_FAILED', 'disk full');
        },
      };
      await service.stop();
      service = makeService({ store: failing });
      await service.start();
      enforcer.applied.length = 0;
      const err = await caught(service.addVm(makeVm(), ctx));
      expect(err.code).toBe('STORE_FAILED');
      expect(enforcer.applied.map((a) => a.next.vms.length)).toEqual([3, 2]);
      expect(enforcer.last).toEqual(makePolicy());
      expect(service.current()).toEqual(makePolicy());
    });
  });

  describe('serialisation', () => {
    it('runs one mutation at a time, each building on the one before', async () => {
      let open!: () => void;
      enforcer.gate = new Promise((resolve) => (open = resolve));
      const first = service.addVm(makeVm(), ctx);
      const second = service.addVm(makeVm({ name: 'b2', mac: '52:54:00:00:00:04', ipv4: '10.20.0.14' }), ctx);
      const third = service.addVm(makeVm({ name: 'b3', mac: '52:54:00:00:00:03', ipv4: '10.20.0.15' }), ctx);
      await new Promise((r) => setTimeout(r, 10));
      expect(enforcer.applied).toHaveLength(1);
      open();
      enforcer.gate = undefined;
      await first;
      await second;
      // the third reuses the first's MAC: only visible if it validated against the first's result
      const err = await caught(third);
      expect(err.code).toBe('POLICY_INVALID');
      expect(err.path).toBe('/vms/4/mac');
      expect(enforcer.applied.slice(1).map((a) => [a.prev.vms.length, a.next.vms.length])).toEqual([
        [2, 3],
        [3, 4],
      ]);
      expect(store.loadPolicy().vms.map((v) => v.name)).toEqual(['kid', 'work', 'browse', 'b2']);
    });
  });

  describe('profiles', () => {
    const custom = {
      name: 'gaming',
      internet: 'open' as const,
      rules: [],
      reach: [],
      ips: { mode: 'ids' as const, failure: 'fail-open' as const },
    };

    it('lists built-ins marked read-only beside custom ones', () => {
      const list = service.listProfiles();
      expect(list.find((p) => p.name === 'kid')?.builtin).toBe(true);
      expect(list.find((p) => p.name === 'office')?.builtin).toBe(false);
    });

    it('adds, updates and removes a custom profile', async () => {
      await service.addProfile(custom, ctx);
      expect(service.getProfile('gaming')).toEqual({ ...custom, builtin: false });
      await service.updateProfile('gaming', { ...custom, internet: 'deny' }, ctx);
      expect(store.policy.profile('gaming')?.internet).toBe('deny');
      await service.removeProfile('gaming', ctx);
      expect((await caught(service.removeProfile('gaming', ctx))).code).toBe('PROFILE_NOT_FOUND');
    });

    it('keeps built-ins read-only', async () => {
      expect((await caught(service.addProfile({ ...custom, name: 'kid' }, ctx))).code).toBe('CONFLICT');
      expect((await caught(service.updateProfile('kid', { ...custom, name: 'kid' }, ctx))).code).toBe(
        'CONFLICT',
      );
      expect((await caught(service.removeProfile('quarantine', ctx))).code).toBe('CONFLICT');
    });

    it('refuses to remove a profile in use, or to rename one', async () => {
      const inUse = await caught(service.removeProfile('office', ctx));
      expect(inUse.code).toBe('CONFLICT');
      expect(inUse.path).toBe('/vms/1/profile');
      const rename = await caught(service.updateProfile('office', { ...custom, name: 'other' }, ctx));
      expect(rename.code).toBe('REQUEST_INVALID');
    });

    it('names the field of a bad profile', async () => {
      const err = await caught(service.addProfile({ ...custom, reach: ['ghost'] }, ctx));
      expect(err.path).toBe('/profiles/1/reach/0');
      expect(err.context?.subject).toBe('/profiles/1');
    });
  });

  describe('rules', () => {
    it('adds a rule with a generated id at the end or at a position', async () => {
      const r = await service.addRule(
        { vm: 'kid' },
        { action: 'drop', to: { cidr: '198.51.100.0/24' } },
        ctx,
      );
      expect(r.id).toBe('gen-1');
      await service.addRule({ vm: 'kid' }, { id: 'first', action: 'accept', to: { special: 'dns' } }, ctx, 0);
      expect(service.listRules({ vm: 'kid' }).map((x) => x.id)).toEqual(['first', 'r1', 'r2', 'gen-1']);
      expect(store.policy.rules({ vm: 'kid' }).map((x) => x.id)).toEqual(['first', 'r1', 'r2', 'gen-1']);
    });

    it('refuses a taken id, a past expiry and a bad target', async () => {
      const taken = await caught(
        service.addRule({ vm: 'kid' }, { id: 'r1', action: 'drop', to: { cidr: '10.1.0.0/16' } }, ctx),
      );
      expect(taken.code).toBe('CONFLICT');
      const past = await caught(
        service.addRule(
          { vm: 'kid' },
          { action: 'drop', to: { cidr: '10.1.0.0/16' }, expires: '2026-02-01T00:00:00Z' },
          ctx,
        ),
      );
      expect(past.code).toBe('POLICY_INVALID');
      expect(past.path).toBe('/vms/0/rules/2/expires');
      expect(past.context?.subject).toBe('/vms/0/rules/2');
      const cidr = await caught(
        service.addRule({ vm: 'kid' }, { action: 'drop', to: { cidr: '300.1.0.0/16' } }, ctx),
      );
      expect(cidr.path).toBe('/vms/0/rules/2/to/cidr');
      expect(cidr.context?.subject).toBe('/vms/0/rules/2');
    });

    it('removes a rule by id', async () => {
      await service.removeRule({ vm: 'kid' }, 'r1', ctx);
      expect(service.listRules({ vm: 'kid' }).map((x) => x.id)).toEqual(['r2']);
      expect((await caught(service.removeRule({ vm: 'kid' }, 'r1', ctx))).code).toBe('RULE_NOT_FOUND');
      expect((await caught(service.removeRule({ vm: 'ghost' }, 'r1', ctx))).code).toBe('VM_NOT_FOUND');
    });

    it('manages the rules of a custom profile, not of a built-in', async () => {
      await service.addRule({ profile: 'office' }, { action: 'drop', to: { domain: 'ads.example' } }, ctx);
      expect(service.listRules({ profile: 'office' }).map((x) => x.id)).toEqual(['p1', 'gen-1']);
      expect(
        (
          await caught(
            service.addRule({ profile: 'kid' }, { action: 'drop', to: { domain: 'x.example' } }, ctx),
          )
        ).code,
      ).toBe('CONFLICT');
    });
  });

  describe('schedules', () => {
    const schedule = {
      name: 'school',
      vms: ['kid'],
      timezone: 'UTC',
      windows: [{ days: ['mon' as const], start: '08:00', end: '13:00' }],
      mode: 'allowlist-only' as const,
    };

    it('adds, replaces and removes schedules', async () => {
      await service.addSchedule(schedule, ctx);
      expect((await caught(service.addSchedule(schedule, ctx))).code).toBe('CONFLICT');
      await service.updateSchedule('school', { ...schedule, enabled: false }, ctx);
      expect(store.policy.schedule('school')?.enabled).toBe(false);
      await service.removeSchedule('school', ctx);
      expect(() => service.getSchedule('school')).toThrow(/no schedule named "school"/);
    });

    it('names the field of a bad schedule', async () => {
      const err = await caught(service.addSchedule({ ...schedule, timezone: 'Mars/Olympus' }, ctx));
      expect(err.path).toBe('/schedules/1/timezone');
    });
  });

  describe('settings', () => {
    it('changes settings and removes the deny list given null', async () => {
      const s = await service.setSettings({ ipv6: false, deny: null, vpnEndpoints: ['198.51.100.8'] }, ctx);
      expect(s).toEqual({ vpnEndpoints: ['198.51.100.8'], updateServers: ['192.0.2.0/24'], ipv6: false });
      expect(store.policy.settings()).toEqual(s);
      const err = await caught(service.setSettings({ updateServers: ['nope'] }, ctx));
      expect(err.path).toBe('/updateServers/0');
    });
  });

  describe('importPolicy', () => {
    it('replaces the whole policy as one audited change', async () => {
      const next = makePolicy({
        vms: [makeVm({ rules: [{ action: 'drop', to: { cidr: '10.9.0.0/16' } }] })],
        profiles: [],
        schedules: [],
      });
      const result = await service.importPolicy(next, ctx);
      expect(result.vms[0]?.rules?.[0]?.id).toBe('gen-1');
      expect(store.loadPolicy()).toEqual(result);
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        action: 'policy.import',
        target: 'policy',
        after: result,
      });
    });

    it('rejects an invalid policy whole, listing every problem', async () => {
      const bad = makePolicy({ vpnEndpoints: ['x'], updateServers: ['10.0.0.1/8'] });
      const err = await caught(service.importPolicy(bad, ctx));
      expect(err.code).toBe('POLICY_INVALID');
      expect((err.context?.issues as { path: string }[]).map((i) => i.path)).toEqual([
        '/vpnEndpoints/0',
        '/updateServers/0',
      ]);
      expect(err.context?.subject).toBe('');
      expect(store.loadPolicy()).toEqual(makePolicy());
    });

    it('refuses duplicate rule ids within one VM', async () => {
      const p = makePolicy();
      p.vms[0]!.rules![1]!.id = 'r1';
      const err = await caught(service.importPolicy(p, ctx));
      expect(err.path).toBe('/vms/0/rules/1/id');
    });
  });

  describe('rule expiry sweeper', () => {
    it('removes expired rules on its timer, as the sweeper', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      await service.stop();
      service = makeService();
      await service.start();
      await service.addRule(
        { vm: 'kid' },
        { id: 'soon', action: 'accept', to: { domain: 'games.example' }, expires: '2026-03-01T12:30:00Z' },
        ctx,
      );
      await vi.advanceTimersByTimeAsync(1000);
      expect(service.listRules({ vm: 'kid' }).map((r) => r.id)).toEqual(['r1', 'r2', 'soon']);
      clock = new Date('2026-03-01T12:30:00Z');
      await vi.advanceTimersByTimeAsync(1000);
      expect(service.listRules({ vm: 'kid' }).map((r) => r.id)).toEqual(['r1', 'r2']);
      expect(store.policy.rules({ vm: 'kid' }).map((r) => r.id)).toEqual(['r1', 'r2']);
      expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        actor: 'sweeper',
        action: 'rule.expire',
        before: [{ owner: 'vm/kid', rule: expect.objectContaining({ id: 'soon' }) }],
      });
    });

    it('removes every expired rule at once and does nothing when none expired', async () => {
      expect(await service.sweep()).toBe(0);
      clock = new Date('2031-01-01T00:00:00Z');
      expect(await service.sweep()).toBe(1);
      expect(service.listRules({ vm: 'kid' }).map((r) => r.id)).toEqual(['r2']);
    });

    it('keeps sweeping after a failed sweep and stops on stop()', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      await service.stop();
      service = makeService();
      await service.start();
      clock = new Date('2031-01-01T00:00:00Z');
      enforcer.failNext = new Error('busy');
      await vi.advanceTimersByTimeAsync(1000);
      expect(service.listRules({ vm: 'kid' })).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(1000);
      expect(service.listRules({ vm: 'kid' })).toHaveLength(1);
      await service.stop();
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  it('keeps what a change did not touch as the objects in force before, all frozen', async () => {
    await service.addRule({ vm: 'kid' }, { id: 'x', action: 'drop', to: { cidr: '192.0.2.1' } }, ctx);
    const { policy, previous } = seen.at(-1)!.payload as { policy: Policy; previous: Policy };
    expect(policy.vms[0]).not.toBe(previous.vms[0]);
    expect(policy.vms[0]!.rules![0]).toBe(previous.vms[0]!.rules![0]);
    expect(policy.vms[1]).toBe(previous.vms[1]);
    expect(policy.profiles).toBe(previous.profiles);
    expect(Object.isFrozen(policy.vms[0]!.rules)).toBe(true);
    expect(store.loadPolicy()).toEqual(service.current());
  });

  it('hands out copies: callers cannot change the policy in force', () => {
    const p = service.current();
    p.vms.length = 0;
    service.getVm('kid').name = 'changed';
    expect(service.current()).toEqual(makePolicy());
  });
});

describe('importPolicyYaml', () => {
  let store: Store;
  let service: PolicyService;

  beforeEach(async () => {
    store = Store.open({ path: ':memory:' });
    service = new PolicyService({ store, enforcer: { apply: async () => {} } });
    await service.start();
  });
  afterEach(async () => {
    await service.stop();
    store.close();
  });

  it('applies a valid file as one change', async () => {
    await importPolicyYaml(service, policyToYaml(makePolicy()), { actor: 'cli:alice' });
    expect(store.loadPolicy()).toEqual(makePolicy());
    expect(store.audit.list().items.map((a) => a.action)).toEqual(['policy.import']);
  });

  it('rejects a bad file whole', async () => {
    const text = policyToYaml(makePolicy()).replace('203.0.113.0/24', '203.0.113.1/24');
    await expect(importPolicyYaml(service, text, { actor: 'cli:alice' })).rejects.toThrow(
      /\/vms\/0\/rules\/0\/to\/cidr: .*host bits/,
    );
    expect(store.audit.count()).toBe(0);
    expect(store.loadPolicy().vms).toEqual([]);
  });
});
