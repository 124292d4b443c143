import { randomBytes } from 'node:crypto';
import { PortcullisError, invalid, isPortcullisError, type ErrorCode, type Issue } from '../errors.js';
import type { EventBus } from '../events.js';
import { silentLogger, type Logger } from '../log.js';
import type { PolicyStore } from '../store/store.js';
import type { AuditRecord } from '../store/types.js';
import { BUILTIN_PROFILES } from '../policy/builtins.js';
import { cloneJson, deepFreeze, share } from '../policy/fingerprint.js';
import {
  emptyPolicy,
  type Policy,
  type Profile,
  type Rule,
  type Schedule,
  type Vm,
} from '../policy/model.js';
import { checkPolicy } from '../policy/validate.js';
import { parsePolicyYaml } from '../policy/yaml.js';
import { Serial } from '../util/serial.js';
import { systemClock, type Clock } from '../clock.js';

/**
 * Puts a policy into force in the kernel. `apply` is atomic: when it throws, the
 * ruleset in force is still `prev`'s.
 */
export interface Enforcer {
  apply(next: Policy, prev: Policy): Promise<void>;
}

/** Who changes the policy, and why (both go to the audit log). */
export interface MutationContext {
  /** `api`, `cli:alice`, `sweeper`, `ips` … */
  readonly actor: string;
  readonly reason?: string | undefined;
}

/** Whose rules: a VM's, or a custom profile's. */
export type RuleOwner = { readonly vm: string } | { readonly profile: string };

/** A change to a VM's own fields; `null` removes an optional field. */
export interface VmPatch {
  readonly mac?: string;
  readonly ipv4?: string;
  readonly ipv6?: string | null;
  /** The VM's port (see the model); moving a VM is a change like any other. */
  readonly port?: string | null;
  readonly profile?: string;
  readonly owner?: string | null;
  readonly notes?: string | null;
}

/** Longest pause with an end, in minutes: a week. */
export const MAX_PAUSE_MINUTES = 7 * 1440;

/** How to pause a VM (`PolicyService.pause`). */
export interface PauseOptions {
  /** How long, 1 to `MAX_PAUSE_MINUTES`; absent: until resumed. */
  readonly minutes?: number | undefined;
  /** Why, for the parent and the audit log. */
  readonly reason?: string | undefined;
}

/** The policy-wide settings. */
export type PolicySettings = Pick<Policy, 'vpnEndpoints' | 'updateServers' | 'deny' | 'ipv6'>;
/** A change to the settings; `deny: null` removes the global deny list. */
export interface SettingsPatch {
  readonly vpnEndpoints?: string[];
  readonly updateServers?: string[];
  readonly deny?: string[] | null;
  readonly ipv6?: boolean;
}

/** A profile as listed: built-ins are marked and read-only. */
export type ProfileView = Profile & { readonly builtin: boolean };

/** How one mutation is described: what it does, to what, and how to find that thing. */
export interface MutationSpec {
  /** Audit action, e.g. `vm.add`. */
  readonly action: string;
  /** Audit target, e.g. `vm/kid`. */
  readonly target: string;
  /** The part of the policy the change is about; its value before and after goes to the audit log. */
  readonly select?: (policy: Policy) => unknown;
  /**
   * JSON pointer of the thing the caller supplied, within the new policy (`/vms/3`).
   * Lets an API answer problems relative to its request body. Default: the whole policy.
   */
  readonly subject?: (next: Policy) => string;
}

/** Options of `PolicyService`. */
export interface PolicyServiceOptions {
  /** Where the policy is kept. */
  readonly store: PolicyStore;
  /** What puts a policy into force. */
  readonly enforcer: Enforcer;
  /** Where `policy.applied`, `vm.quarantined` and `vm.released` go; default: nowhere. */
  readonly events?: EventBus;
  readonly logger?: Logger;
  /** The clock for quarantine times and rule expiry; default `() => new Date()`. */
  readonly now?: Clock;
  /** Generates ids for rules that have none; default `r-` and 8 random hex digits. */
  readonly newRuleId?: () => string;
  /** How often the sweeper looks for expired rules, in ms, at least 100; default 15 000. */
  readonly sweepIntervalMs?: number;
  /** Apply the stored policy to the enforcer in `start()`; default true. */
  readonly applyOnStart?: boolean;
}

function notFound(code: ErrorCode, what: string, name: string, path?: string): PortcullisError {
  return new PortcullisError(code, `no ${what} named "${name}"`, path === undefined ? {} : { path });
}

const BUILTIN_NAMES = new Set(BUILTIN_PROFILES.map((p) => p.name));

/**
 * The single place where the policy changes. Holds the policy in force; every
 * mutation builds the next policy, validates it in full, has the enforcer apply it and
 * only then stores it with its audit entry. If applying fails nothing is stored; if
 * storing fails the previous policy is applied again. Mutations run one at a time.
 *
 * Lifecycle: `start()` loads the stored policy, applies it and starts the rule expiry
 * sweeper; `stop()` stops the sweeper and waits for a mutation in progress.
 */
export class PolicyService {
  readonly #store: PolicyStore;
  readonly #enforcer: Enforcer;
  readonly #events: EventBus | undefined;
  readonly #logger: Logger;
  readonly #now: Clock;
  readonly #newRuleId: () => string;
  readonly #sweepIntervalMs: number;
  readonly #applyOnStart: boolean;
  readonly #lock = new Serial();
  #policy: Policy | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: PolicyServiceOptions) {
    this.#store = options.store;
    this.#enforcer = options.enforcer;
    this.#events = options.events;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? systemClock;
    this.#newRuleId = options.newRuleId ?? (() => `r-${randomBytes(4).toString('hex')}`);
    this.#sweepIntervalMs = Math.max(100, options.sweepIntervalMs ?? 15_000);
    this.#applyOnStart = options.applyOnStart ?? true;
  }

  // ---- lifecycle ----

  /**
   * Load the stored policy, validate it, apply it (unless `applyOnStart` is false) and
   * start the expiry sweeper. Starting a started service does nothing.
   * @throws POLICY_INVALID if the stored policy does not validate; the enforcer's error if applying fails.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    await this.#lock.run(async () => {
      const loaded = this.#store.loadPolicy();
      const issues = checkPolicy(loaded, new Date(this.#now()));
      if (issues.length > 0) throw invalid('POLICY_INVALID', 'the stored policy is invalid', issues);
      deepFreeze(loaded);
      if (this.#applyOnStart) await this.#apply(loaded, emptyPolicy());
      this.#policy = loaded;
      this.#events?.emit('policy.applied', {
        policy: this.#policy,
        previous: emptyPolicy(),
        actor: 'system',
        action: 'policy.load',
      });
    });
    this.#running = true;
    this.#schedule();
  }

  /** Stop the sweeper and wait for the mutation in progress, if any. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#lock.idle();
  }

  // ---- reads ----

  /** A copy of the policy in force. */
  current(): Policy {
    return structuredClone(this.#current());
  }

  /** Every VM, in order. */
  listVms(): Vm[] {
    return structuredClone(this.#current().vms);
  }

  /** @throws VM_NOT_FOUND */
  getVm(name: string): Vm {
    const vm = this.#current().vms.find((v) => v.name === name);
    if (!vm) throw notFound('VM_NOT_FOUND', 'VM', name, '/params/name');
    return structuredClone(vm);
  }

  /** Built-in and custom profiles; a custom profile of a built-in's name replaces it. */
  listProfiles(): ProfileView[] {
    const custom = this.#current().profiles;
    const names = new Set(custom.map((p) => p.name));
    return [
      ...BUILTIN_PROFILES.filter((p) => !names.has(p.name)).map((p) => ({
        ...structuredClone(p),
        builtin: true,
      })),
      ...custom.map((p) => ({ ...structuredClone(p), builtin: false })),
    ];
  }

  /** @throws PROFILE_NOT_FOUND */
  getProfile(name: string): ProfileView {
    const p = this.listProfiles().find((x) => x.name === name);
    if (!p) throw notFound('PROFILE_NOT_FOUND', 'profile', name, '/params/name');
    return p;
  }

  /** Every schedule, in order. */
  listSchedules(): Schedule[] {
    return structuredClone(this.#current().schedules);
  }

  /** @throws SCHEDULE_NOT_FOUND */
  getSchedule(name: string): Schedule {
    const s = this.#current().schedules.find((x) => x.name === name);
    if (!s) throw notFound('SCHEDULE_NOT_FOUND', 'schedule', name, '/params/name');
    return structuredClone(s);
  }

  /** The ordered rules of a VM or a profile (built-ins have none). */
  listRules(owner: RuleOwner): Rule[] {
    if ('vm' in owner) return this.getVm(owner.vm).rules ?? [];
    return this.getProfile(owner.profile).rules;
  }

  /** @throws VM_NOT_FOUND, PROFILE_NOT_FOUND, RULE_NOT_FOUND */
  getRule(owner: RuleOwner, id: string): Rule {
    const rule = this.listRules(owner).find((r) => r.id === id);
    if (!rule) throw new PortcullisError('RULE_NOT_FOUND', `no rule with id "${id}"`, { path: '/params/id' });
    return rule;
  }

  /** The policy-wide settings. */
  getSettings(): PolicySettings {
    return pickSettings(this.current());
  }

  // ---- VMs ----

  /**
   * Add a VM at the end of the list; rules without an id get one.
   * @throws CONFLICT if the name is taken; POLICY_INVALID naming the field at fault.
   */
  async addVm(vm: Vm, ctx: MutationContext): Promise<Vm> {
    return this.mutate(
      ctx,
      { ...vmSpec('vm.add', vm.name), subject: (p) => `/vms/${Math.max(0, p.vms.length - 1)}` },
      (draft) => {
        if (draft.vms.some((v) => v.name === vm.name)) {
          throw new PortcullisError('CONFLICT', `a VM named "${vm.name}" exists already`, {
            path: `/vms/${draft.vms.length}/name`,
            context: { subject: `/vms/${draft.vms.length}` },
          });
        }
        draft.vms.push(structuredClone(vm));
        return () => this.getVm(vm.name);
      },
    );
  }

  /**
   * Change a VM's own fields (not its name, rules or quarantine).
   * @throws VM_NOT_FOUND; POLICY_INVALID naming the field at fault.
   */
  async updateVm(name: string, patch: VmPatch, ctx: MutationContext): Promise<Vm> {
    return this.mutate(
      ctx,
      { ...vmSpec('vm.update', name), subject: (p) => `/vms/${indexOf(p.vms, name)}` },
      (draft) => {
        const vm = findVm(draft, name);
        for (const [key, value] of Object.entries(patch) as [keyof VmPatch, string | null | undefined][]) {
          if (value === undefined) continue;
          if (value === null) delete vm[key];
          else vm[key] = value;
        }
        return () => this.getVm(name);
      },
    );
  }

  /**
   * Remove a VM and its rules.
   * @throws VM_NOT_FOUND; CONFLICT if a schedule, a profile or a rule still refers to it.
   */
  async removeVm(name: string, ctx: MutationContext): Promise<void> {
    await this.mutate(ctx, vmSpec('vm.remove', name), (draft) => {
      const i = indexOf(draft.vms, name);
      if (i < 0) throw notFound('VM_NOT_FOUND', 'VM', name, '/params/name');
      draft.vms.splice(i, 1);
      const refs = vmReferences(draft, name);
      if (refs.length > 0) {
        throw new PortcullisError(
          'CONFLICT',
          `VM "${name}" is still referred to at ${refs.join(', ')}; remove those references first`,
          {
            path: refs[0],
          },
        );
      }
      return () => undefined;
    });
  }

  /**
   * Quarantine a VM: only DNS and update servers stay reachable. A VM already in
   * quarantine stays so, with its first reason and time.
   * @throws VM_NOT_FOUND
   */
  async quarantine(name: string, reason: string, ctx: MutationContext): Promise<Vm> {
    let changed = false;
    const since = new Date(this.#now()).toISOString();
    const vm = await this.mutate(
      { ...ctx, reason: ctx.reason ?? reason },
      { ...vmSpec('vm.quarantine', name), subject: (p) => `/vms/${indexOf(p.vms, name)}/quarantine` },
      (draft) => {
        const v = findVm(draft, name);
        if (!v.quarantine) {
          v.quarantine = { reason, since };
          changed = true;
        }
        return () => this.getVm(name);
      },
    );
    if (changed) this.#events?.emit('vm.quarantined', { vm: name, reason, since, actor: ctx.actor });
    return vm;
  }

  /**
   * Take a VM out of quarantine; one not in quarantine is left as it is.
   * @throws VM_NOT_FOUND
   */
  async release(name: string, ctx: MutationContext): Promise<Vm> {
    let changed = false;
    const vm = await this.mutate(ctx, vmSpec('vm.release', name), (draft) => {
      const v = findVm(draft, name);
      if (v.quarantine) {
        delete v.quarantine;
        changed = true;
      }
      return () => this.getVm(name);
    });
    if (changed) this.#events?.emit('vm.released', { vm: name, actor: ctx.actor });
    return vm;
  }

  /**
   * Pause a VM's internet from now: for `options.minutes`, or until `resume`. A pause in
   * force is replaced by the new one. The kernel clock ends a pause with an end even
   * while the service is down.
   * @param options.minutes how long, a whole number from 1 to 10 080 (a week); absent: until resumed.
   * @param options.reason why, for the parent and the audit log (at most 200 characters).
   * @throws VM_NOT_FOUND; REQUEST_INVALID for minutes out of range.
   */
  async pause(name: string, options: PauseOptions, ctx: MutationContext): Promise<Vm> {
    const { minutes, reason } = options;
    if (minutes !== undefined && !(Number.isInteger(minutes) && minutes >= 1 && minutes <= MAX_PAUSE_MINUTES))
      throw new PortcullisError(
        'REQUEST_INVALID',
        `a pause lasts 1 to ${MAX_PAUSE_MINUTES} whole minutes (got ${minutes}); leave minutes out to pause until resumed`,
        { path: '/body/minutes' },
      );
    const at = new Date(this.#now());
    const until = minutes === undefined ? undefined : new Date(at.getTime() + minutes * 60_000).toISOString();
    return this.mutate(
      { ...ctx, reason: ctx.reason ?? reason },
      {
        ...pauseSpec('vm.pause', name),
        subject: (p) => `/vms/${indexOf(p.vms, name)}/pause`,
      },
      (draft) => {
        findVm(draft, name).pause = {
          since: at.toISOString(),
          ...(until !== undefined ? { until } : {}),
          ...(reason ? { reason } : {}),
        };
        return () => this.getVm(name);
      },
    );
  }

  /**
   * End a VM's pause; one not paused is left as it is.
   * @throws VM_NOT_FOUND
   */
  async resume(name: string, ctx: MutationContext): Promise<Vm> {
    return this.mutate(ctx, pauseSpec('vm.resume', name), (draft) => {
      delete findVm(draft, name).pause;
      return () => this.getVm(name);
    });
  }

  // ---- profiles ----

  /**
   * Add a custom profile.
   * @throws CONFLICT if the name is taken or is a built-in's; POLICY_INVALID naming the field at fault.
   */
  async addProfile(profile: Profile, ctx: MutationContext): Promise<ProfileView> {
    return this.mutate(
      ctx,
      {
        ...profileSpec('profile.add', profile.name),
        subject: (p) => `/profiles/${Math.max(0, p.profiles.length - 1)}`,
      },
      (draft) => {
        const at = `/profiles/${draft.profiles.length}`;
        if (draft.profiles.some((p) => p.name === profile.name) || BUILTIN_NAMES.has(profile.name)) {
          const builtin = BUILTIN_NAMES.has(profile.name) ? ' (a built-in profile)' : '';
          throw new PortcullisError(
            'CONFLICT',
            `a profile named "${profile.name}" exists already${builtin}; choose another name`,
            {
              path: `${at}/name`,
              context: { subject: at },
            },
          );
        }
        draft.profiles.push(structuredClone(profile));
        return () => this.getProfile(profile.name);
      },
    );
  }

  /**
   * Replace a custom profile. The name cannot change.
   * @throws PROFILE_NOT_FOUND; CONFLICT for a built-in; REQUEST_INVALID for a rename; POLICY_INVALID.
   */
  async updateProfile(name: string, profile: Profile, ctx: MutationContext): Promise<ProfileView> {
    return this.mutate(
      ctx,
      { ...profileSpec('profile.update', name), subject: (p) => `/profiles/${indexOf(p.profiles, name)}` },
      (draft) => {
        const i = this.#customProfileIndex(draft, name);
        if (profile.name !== name) {
          throw new PortcullisError(
            'REQUEST_INVALID',
            `a profile cannot be renamed ("${name}" to "${profile.name}"); add a new one instead`,
            {
              path: `/profiles/${i}/name`,
              context: { subject: `/profiles/${i}` },
            },
          );
        }
        draft.profiles[i] = structuredClone(profile);
        return () => this.getProfile(name);
      },
    );
  }

  /**
   * Remove a custom profile.
   * @throws PROFILE_NOT_FOUND; CONFLICT for a built-in or a profile VMs still use.
   */
  async removeProfile(name: string, ctx: MutationContext): Promise<void> {
    await this.mutate(ctx, profileSpec('profile.remove', name), (draft) => {
      const i = this.#customProfileIndex(draft, name);
      draft.profiles.splice(i, 1);
      if (!BUILTIN_NAMES.has(name)) {
        const users = draft.vms.flatMap((v, j) =>
          v.profile === name ? [{ name: v.name, path: `/vms/${j}/profile` }] : [],
        );
        if (users.length > 0) {
          throw new PortcullisError(
            'CONFLICT',
            `profile "${name}" is used by VM ${users.map((u) => `"${u.name}"`).join(', ')}; move them to another profile first`,
            {
              path: users[0]!.path,
            },
          );
        }
      }
      return () => undefined;
    });
  }

  #customProfileIndex(draft: Policy, name: string): number {
    const i = indexOf(draft.profiles, name);
    if (i >= 0) return i;
    if (BUILTIN_NAMES.has(name)) {
      throw new PortcullisError(
        'CONFLICT',
        `profile "${name}" is built in and read-only; add a profile of your own instead`,
        {
          path: '/params/name',
        },
      );
    }
    throw notFound('PROFILE_NOT_FOUND', 'profile', name, '/params/name');
  }

  // ---- rules ----

  /**
   * Add a rule to a VM or a custom profile, at `position` (default: the end). A rule
   * without an id gets one. An `expires` in the past is refused.
   * @returns the rule as stored, with its id.
   * @throws VM_NOT_FOUND, PROFILE_NOT_FOUND; CONFLICT for a taken id or a built-in profile; POLICY_INVALID.
   */
  async addRule(owner: RuleOwner, rule: Rule, ctx: MutationContext, position?: number): Promise<Rule> {
    const { id, ...rest } = structuredClone(rule);
    const stored: Rule = { id: id ?? '', ...rest };
    let at = 0;
    return this.mutate(
      ctx,
      { ...ruleSpec('rule.add', owner), subject: (p) => `${ownerPath(p, owner)}/rules/${at}` },
      (draft) => {
        const list = this.#rulesOf(draft, owner);
        at = position === undefined ? list.length : Math.min(Math.max(0, Math.trunc(position)), list.length);
        if (stored.id === '') stored.id = uniqueId(list, this.#newRuleId);
        else if (list.some((r) => r.id === stored.id)) {
          const path = `${ownerPath(draft, owner)}/rules/${at}`;
          throw new PortcullisError('CONFLICT', `a rule with id "${stored.id}" exists already`, {
            path: `${path}/id`,
            context: { subject: path },
          });
        }
        list.splice(at, 0, stored);
        if (stored.expires !== undefined && Date.parse(stored.expires) <= this.#now()) {
          const path = `${ownerPath(draft, owner)}/rules/${at}`;
          const err = invalid('POLICY_INVALID', 'invalid rule', [
            {
              path: `${path}/expires`,
              message: `${stored.expires} is in the past; give a future time or none`,
            },
          ]);
          throw withSubject(err, path);
        }
        return () => structuredClone(stored);
      },
    );
  }

  /**
   * Remove a rule by id.
   * @throws VM_NOT_FOUND, PROFILE_NOT_FOUND, RULE_NOT_FOUND; CONFLICT for a built-in profile.
   */
  async removeRule(owner: RuleOwner, id: string, ctx: MutationContext): Promise<void> {
    await this.mutate(ctx, ruleSpec('rule.remove', owner), (draft) => {
      const list = this.#rulesOf(draft, owner);
      const i = list.findIndex((r) => r.id === id);
      if (i < 0)
        throw new PortcullisError('RULE_NOT_FOUND', `no rule with id "${id}"`, { path: '/params/id' });
      list.splice(i, 1);
      return () => undefined;
    });
  }

  #rulesOf(draft: Policy, owner: RuleOwner): Rule[] {
    if ('vm' in owner) {
      const vm = findVm(draft, owner.vm);
      vm.rules ??= [];
      return vm.rules;
    }
    return draft.profiles[this.#customProfileIndex(draft, owner.profile)]!.rules;
  }

  // ---- schedules ----

  /** @throws CONFLICT if the name is taken; POLICY_INVALID naming the field at fault. */
  async addSchedule(schedule: Schedule, ctx: MutationContext): Promise<Schedule> {
    return this.mutate(
      ctx,
      {
        ...scheduleSpec('schedule.add', schedule.name),
        subject: (p) => `/schedules/${Math.max(0, p.schedules.length - 1)}`,
      },
      (draft) => {
        if (draft.schedules.some((s) => s.name === schedule.name)) {
          const at = `/schedules/${draft.schedules.length}`;
          throw new PortcullisError('CONFLICT', `a schedule named "${schedule.name}" exists already`, {
            path: `${at}/name`,
            context: { subject: at },
          });
        }
        draft.schedules.push(structuredClone(schedule));
        return () => this.getSchedule(schedule.name);
      },
    );
  }

  /** Replace a schedule; the name cannot change. @throws SCHEDULE_NOT_FOUND; REQUEST_INVALID; POLICY_INVALID. */
  async updateSchedule(name: string, schedule: Schedule, ctx: MutationContext): Promise<Schedule> {
    return this.mutate(
      ctx,
      {
        ...scheduleSpec('schedule.update', name),
        subject: (p) => `/schedules/${indexOf(p.schedules, name)}`,
      },
      (draft) => {
        const i = indexOf(draft.schedules, name);
        if (i < 0) throw notFound('SCHEDULE_NOT_FOUND', 'schedule', name, '/params/name');
        if (schedule.name !== name) {
          throw new PortcullisError(
            'REQUEST_INVALID',
            `a schedule cannot be renamed ("${name}" to "${schedule.name}")`,
            {
              path: `/schedules/${i}/name`,
              context: { subject: `/schedules/${i}` },
            },
          );
        }
        draft.schedules[i] = structuredClone(schedule);
        return () => this.getSchedule(name);
      },
    );
  }

  /** @throws SCHEDULE_NOT_FOUND */
  async removeSchedule(name: string, ctx: MutationContext): Promise<void> {
    await this.mutate(ctx, scheduleSpec('schedule.remove', name), (draft) => {
      const i = indexOf(draft.schedules, name);
      if (i < 0) throw notFound('SCHEDULE_NOT_FOUND', 'schedule', name, '/params/name');
      draft.schedules.splice(i, 1);
      return () => undefined;
    });
  }

  // ---- settings and whole policy ----

  /** Change policy-wide settings. @throws POLICY_INVALID naming the field at fault. */
  async setSettings(patch: SettingsPatch, ctx: MutationContext): Promise<PolicySettings> {
    return this.mutate(
      ctx,
      { action: 'settings.update', target: 'settings', select: pickSettings, subject: () => '' },
      (draft) => {
        if (patch.vpnEndpoints !== undefined) draft.vpnEndpoints = [...patch.vpnEndpoints];
        if (patch.updateServers !== undefined) draft.updateServers = [...patch.updateServers];
        if (patch.ipv6 !== undefined) draft.ipv6 = patch.ipv6;
        if (patch.deny === null) delete draft.deny;
        else if (patch.deny !== undefined) draft.deny = [...patch.deny];
        return () => this.getSettings();
      },
    );
  }

  /**
   * Replace the whole policy (config as code), as one change. Rules without an id get one.
   * @throws POLICY_INVALID listing every problem, with paths into `policy`.
   */
  async importPolicy(policy: Policy, ctx: MutationContext): Promise<Policy> {
    return this.mutate(
      ctx,
      { action: 'policy.import', target: 'policy', select: (p) => p, subject: () => '' },
      (draft) => {
        const issues = checkPolicy(policy, new Date(this.#now()));
        if (issues.length > 0) throw withSubject(invalid('POLICY_INVALID', 'invalid policy', issues), '');
        for (const key of Object.keys(draft) as (keyof Policy)[]) delete draft[key];
        Object.assign(draft, structuredClone(policy));
        return () => this.current();
      },
    );
  }

  // ---- rule expiry ----

  /**
   * Remove every rule whose `expires` has passed, as one change by actor `sweeper`.
   * @returns how many rules were removed.
   */
  async sweep(): Promise<number> {
    const now = this.#now();
    const isExpired = (r: Rule): boolean => r.expires !== undefined && Date.parse(r.expires) <= now;
    const expired = (p: Policy): { owner: string; rule: Rule }[] => [
      ...p.vms.flatMap((v) =>
        (v.rules ?? []).filter(isExpired).map((rule) => ({ owner: `vm/${v.name}`, rule })),
      ),
      ...p.profiles.flatMap((pr) =>
        pr.rules.filter(isExpired).map((rule) => ({ owner: `profile/${pr.name}`, rule })),
      ),
    ];
    if (this.#policy === undefined || expired(this.#policy).length === 0) return 0;
    let removed = 0;
    await this.mutate(
      { actor: 'sweeper', reason: 'rules expired' },
      { action: 'rule.expire', target: 'rules', select: expired },
      (draft) => {
        for (const vm of draft.vms) {
          if (!vm.rules) continue;
          removed += vm.rules.length;
          vm.rules = vm.rules.filter((r) => !isExpired(r));
          removed -= vm.rules.length;
          if (vm.rules.length === 0) delete vm.rules;
        }
        for (const p of draft.profiles) {
          removed += p.rules.length;
          p.rules = p.rules.filter((r) => !isExpired(r));
          removed -= p.rules.length;
        }
        return () => removed;
      },
    );
    if (removed > 0) this.#logger.info({ removed }, 'expired rules removed');
    return removed;
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.sweep()
        .catch((err: unknown) =>
          this.#logger.error({ err }, 'rule expiry sweep failed; retrying at the next interval'),
        )
        .finally(() => this.#schedule());
    }, this.#sweepIntervalMs);
    this.#timer.unref();
  }

  // ---- the mutation path ----

  /**
   * Change the policy: `build` edits a draft copy and returns a function that yields the
   * result once the change is in force. Then: rule ids are filled in, the draft is
   * validated in full, applied by the enforcer, stored with its audit entry, and made
   * current. A change that leaves the policy as it was is neither applied nor audited.
   *
   * Other parts may use this for changes the named methods do not cover.
   * @throws POLICY_INVALID (with `context.subject` from `spec.subject`), the enforcer's
   *   error (NFT_APPLY_FAILED for a plain Error), STORE_FAILED, or whatever `build` throws.
   */
  async mutate<T>(ctx: MutationContext, spec: MutationSpec, build: (draft: Policy) => () => T): Promise<T> {
    return this.#lock.run(async () => {
      const prev = this.#current();
      const draft = cloneJson(prev);
      const result = build(draft);
      this.#fillRuleIds(draft);
      const subject = spec.subject?.(draft);
      // every part the change left as it was is prev's own (frozen) object again: checks
      // skip what they checked before, and the store, the compiler and the applier see
      // at once what is new
      const next = share(prev, draft);
      const issues = [...checkPolicy(next, new Date(this.#now())), ...ruleIdIssues(next)];
      if (issues.length > 0) {
        throw withSubject(invalid('POLICY_INVALID', 'invalid policy', issues), subject);
      }
      deepFreeze(next);
      if (next === prev) return result();

      await this.#apply(next, prev);
      const select = spec.select ?? (() => undefined);
      let record: AuditRecord;
      try {
        record = this.#store.commitPolicy(next, {
          actor: ctx.actor,
          action: spec.action,
          target: spec.target,
          reason: ctx.reason,
          before: select(prev),
          after: select(next),
        });
      } catch (err) {
        this.#logger.error(
          { err, action: spec.action },
          'storing the policy failed; applying the previous policy again',
        );
        try {
          await this.#enforcer.apply(prev, next);
        } catch (err2) {
          this.#logger.error(
            { err: err2 },
            'applying the previous policy again failed: the kernel runs a policy the store does not have',
          );
        }
        throw err;
      }
      this.#policy = next;
      this.#logger.info(
        { action: spec.action, target: spec.target, actor: ctx.actor, audit: record.id },
        'policy changed',
      );
      this.#events?.emit('policy.applied', {
        policy: this.#policy,
        previous: prev,
        actor: ctx.actor,
        action: spec.action,
      });
      return result();
    });
  }

  async #apply(next: Policy, prev: Policy): Promise<void> {
    try {
      await this.#enforcer.apply(next, prev);
    } catch (err) {
      if (isPortcullisError(err)) throw err;
      throw new PortcullisError('NFT_APPLY_FAILED', `applying the policy failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  #fillRuleIds(p: Policy): void {
    const fill = (list: Rule[] | undefined): void => {
      list?.forEach((r, i) => {
        if (r.id === undefined || r.id === '') {
          const { id: _none, ...rest } = r;
          list[i] = { id: uniqueId(list, this.#newRuleId), ...rest };
        }
      });
    };
    p.vms.forEach((v) => fill(v.rules));
    p.profiles.forEach((pr) => fill(pr.rules));
  }

  #current(): Policy {
    if (this.#policy === undefined)
      throw new PortcullisError('INTERNAL', 'the policy service is not started');
    return this.#policy;
  }
}

// ---- helpers ----

/** The same error, marked with the pointer of the part of the policy the caller supplied. */
function withSubject(err: PortcullisError, subject: string | undefined): PortcullisError {
  if (subject === undefined) return err;
  return new PortcullisError(err.code, err.message, {
    cause: err.cause,
    path: err.path,
    context: { ...err.context, subject },
  });
}

function indexOf(list: readonly { name: string }[], name: string): number {
  return list.findIndex((x) => x.name === name);
}

function findVm(p: Policy, name: string): Vm {
  const vm = p.vms.find((v) => v.name === name);
  if (!vm) throw notFound('VM_NOT_FOUND', 'VM', name, '/params/name');
  return vm;
}

function ownerPath(p: Policy, owner: RuleOwner): string {
  return 'vm' in owner
    ? `/vms/${indexOf(p.vms, owner.vm)}`
    : `/profiles/${indexOf(p.profiles, owner.profile)}`;
}

/** Where the policy still names VM `name`, as JSON pointers. */
function vmReferences(p: Policy, name: string): string[] {
  const refs: string[] = [];
  p.schedules.forEach((s, i) => s.vms.forEach((n, j) => n === name && refs.push(`/schedules/${i}/vms/${j}`)));
  p.profiles.forEach((pr, i) => {
    pr.reach.forEach((n, j) => n === name && refs.push(`/profiles/${i}/reach/${j}`));
    pr.rules.forEach(
      (r, j) => 'vm' in r.to && r.to.vm === name && refs.push(`/profiles/${i}/rules/${j}/to/vm`),
    );
  });
  p.vms.forEach((v, i) =>
    v.rules?.forEach((r, j) => 'vm' in r.to && r.to.vm === name && refs.push(`/vms/${i}/rules/${j}/to/vm`)),
  );
  return refs;
}

function uniqueId(list: readonly Rule[], gen: () => string): string {
  for (let i = 0; i < 100; i++) {
    const id = gen();
    if (!list.some((r) => r.id === id)) return id;
  }
  throw new PortcullisError('INTERNAL', 'could not generate a unique rule id');
}

/** Rule ids must be unique within their VM or profile: rules are addressed by them. */
function ruleIdIssues(p: Policy): Issue[] {
  const issues: Issue[] = [];
  const check = (list: readonly Rule[] | undefined, at: string): void => {
    const seen = new Set<string>();
    list?.forEach((r, j) => {
      if (r.id === undefined) return;
      if (seen.has(r.id))
        issues.push({ path: `${at}/rules/${j}/id`, message: `duplicate rule id "${r.id}"` });
      seen.add(r.id);
    });
  };
  p.vms.forEach((v, i) => check(v.rules, `/vms/${i}`));
  p.profiles.forEach((pr, i) => check(pr.rules, `/profiles/${i}`));
  return issues;
}

function pickSettings(p: Policy): PolicySettings {
  const s: PolicySettings = { vpnEndpoints: p.vpnEndpoints, updateServers: p.updateServers, ipv6: p.ipv6 };
  if (p.deny !== undefined) s.deny = p.deny;
  return structuredClone(s);
}

function vmSpec(action: string, name: string): MutationSpec {
  return { action, target: `vm/${name}`, select: (p) => p.vms.find((v) => v.name === name) };
}

/** A pause change: the audit log keeps the VM's pause before and after (null: none). */
function pauseSpec(action: string, name: string): MutationSpec {
  return { action, target: `vm/${name}`, select: (p) => p.vms.find((v) => v.name === name)?.pause ?? null };
}

function profileSpec(action: string, name: string): MutationSpec {
  return { action, target: `profile/${name}`, select: (p) => p.profiles.find((x) => x.name === name) };
}

function scheduleSpec(action: string, name: string): MutationSpec {
  return { action, target: `schedule/${name}`, select: (p) => p.schedules.find((x) => x.name === name) };
}

function ruleSpec(action: string, owner: RuleOwner): MutationSpec {
  const [kind, name] = 'vm' in owner ? ['vm', owner.vm] : ['profile', owner.profile];
  return {
    action,
    target: `${kind}/${name}/rules`,
    select: (p) =>
      'vm' in owner
        ? (p.vms.find((v) => v.name === name)?.rules ?? [])
        : p.profiles.find((x) => x.name === name)?.rules,
  };
}

/**
 * Import a policy file: parse, validate and apply it as one change through the
 * policy service, or reject it whole.
 * @throws POLICY_INVALID (see `parsePolicyYaml`), or whatever `PolicyService.importPolicy` throws.
 */
export async function importPolicyYaml(
  service: PolicyService,
  text: string,
  ctx: MutationContext,
): Promise<Policy> {
  return service.importPolicy(parsePolicyYaml(text), ctx);
}
