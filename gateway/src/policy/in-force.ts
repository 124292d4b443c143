import { BUILTIN_ALERT_ACTIONS, DEFAULT_ALERT_ACTIONS, type AlertActions } from '../actions/model.js';
import { PortcullisError } from '../errors.js';
import { effectiveProfiles } from './builtins.js';
import type { InternetAccess, IpsSettings, Policy, Profile, Schedule, Vm } from './model.js';
import { scheduleActive } from './schedule.js';

/**
 * What is in force for a VM at an instant: the one answer the compiler, the DNS
 * filter's client policies, the API (`/vms/:name/state`), the block page and the IPS
 * share. Pure: no I/O and no clock of its own (the instant is an argument).
 *
 * The order of precedence, highest first:
 * - quarantine: the quarantine profile is in force and the internet is off, whatever
 *   else holds (the kernel lets DNS and the update servers through);
 * - a pause that has not ended, a spent daily budget, an active whole-VM `deny`
 *   schedule: the internet is off;
 * - an active whole-VM `allowlist-only` schedule: an open profile becomes
 *   allowlist-only;
 * - the profile's own `internet`.
 *
 * Per-service schedules block their services only and leave the VM's access as it is.
 */

/** What changes what is in force besides the policy and the time. */
export interface RuntimeState {
  /**
   * VMs whose daily time budget is spent, by name, with the instant it comes back (the
   * daily reset): `BudgetController.blocked()`. An instant at or before `at` has passed.
   * Default: none.
   */
  readonly budgetBlocked?: ReadonlyMap<string, Date>;
}

/** One of the VM's schedules at the instant asked about. */
export interface ScheduleState {
  readonly name: string;
  readonly mode: Schedule['mode'];
  /** The services it blocks; empty: the whole VM. */
  readonly services: readonly string[];
  /** In force at the instant (enabled and in one of its windows). */
  readonly active: boolean;
}

/**
 * Why a VM is cut off as a whole, first cause first: every name answers the block page
 * and (except `profile`) the kernel drops its traffic. Quarantine is apart: it keeps DNS
 * and the update servers.
 */
export type CutOff =
  | {
      readonly kind: 'pause';
      /** When the pause ends; absent: until a parent resumes. */
      readonly until?: Date;
      readonly reason?: string;
    }
  | {
      readonly kind: 'budget';
      /** When today's time comes back (the daily reset). */
      readonly until: Date;
    }
  | {
      readonly kind: 'schedule';
      /** The first active whole-VM `deny` schedule. */
      readonly schedule: string;
    }
  | {
      /** The profile's DNS settings say `paused` (DNS only; the kernel lets traffic through). */
      readonly kind: 'profile';
    };

/** Everything in force for one VM at one instant. */
export interface VmInForce {
  readonly vm: Vm;
  /** The profile in force: the quarantine profile while quarantined, else the VM's. */
  readonly profile: Profile;
  /** Set while the VM is quarantined. */
  readonly quarantine?: NonNullable<Vm['quarantine']>;
  /** The VM's pause, while it has not ended. */
  readonly pause?: NonNullable<Vm['pause']>;
  /** Set while today's time budget is spent: when it comes back. */
  readonly budgetSpentUntil?: Date;
  /** Every schedule of the VM, in policy order, with whether it is in force. */
  readonly schedules: readonly ScheduleState[];
  /** Active whole-VM `deny` schedules, by name, in policy order. */
  readonly denySchedules: readonly string[];
  /** Active whole-VM `allowlist-only` schedules, by name, in policy order. */
  readonly allowlistSchedules: readonly string[];
  /** Services blocked now by active per-service schedules, each once, in policy order. */
  readonly blockedServices: readonly string[];
  /** Why the whole VM is cut off (see `CutOff`); absent while it is not. */
  readonly cutOff?: CutOff;
  /** Internet access now, everything above applied: what the kernel lets through. */
  readonly internet: InternetAccess;
  /** IPS mode and failure mode of the profile in force. */
  readonly ips: IpsSettings;
  /** Reactions to IPS alerts: the profile's own, else the built-in profile's, else the defaults. */
  readonly alerts: AlertActions;
}

/**
 * The profile in force for a VM: the quarantine profile while it is quarantined, else
 * its own.
 * @param profiles the effective profiles (`effectiveProfiles`).
 * @throws INTERNAL when the profile does not exist (a validated policy never has that).
 */
export function profileInForce(vm: Vm, profiles: ReadonlyMap<string, Profile>): Profile {
  const name = vm.quarantine ? 'quarantine' : vm.profile;
  const profile = profiles.get(name);
  if (profile === undefined)
    throw new PortcullisError('INTERNAL', `VM "${vm.name}" has profile "${name}", which does not exist`, {
      context: { vm: vm.name, profile: name },
    });
  return profile;
}

/** Reactions to IPS alerts of a profile: its own, else its built-in's, else the defaults. */
export function alertActionsOf(profile: Profile): AlertActions {
  return profile.alerts ?? BUILTIN_ALERT_ACTIONS[profile.name] ?? DEFAULT_ALERT_ACTIONS;
}

/** What `evaluate` needs beside the VM, shared by all VMs of one policy. */
interface Context {
  readonly at: Date;
  readonly profiles: ReadonlyMap<string, Profile>;
  readonly budgetBlocked: ReadonlyMap<string, Date> | undefined;
  /** The schedules naming the VM, with whether each is active. */
  readonly schedulesOf: (vm: Vm) => ReadonlyArray<readonly [Schedule, boolean]>;
}

/**
 * What is in force for `vm` of `policy` at `at`.
 * @param runtime budget state; default: no budget spent.
 */
export function vmInForce(policy: Policy, vm: Vm, at: Date, runtime: RuntimeState = {}): VmInForce {
  return evaluate(vm, {
    at,
    profiles: effectiveProfiles(policy.profiles),
    budgetBlocked: runtime.budgetBlocked,
    schedulesOf: (v) =>
      policy.schedules.filter((s) => s.vms.includes(v.name)).map((s) => [s, scheduleActive(s, at)] as const),
  });
}

/**
 * What is in force for every VM of `policy` at `at`, by VM name, in policy order. Each
 * schedule is evaluated once, however many VMs it names.
 * @param runtime budget state; default: no budget spent.
 */
export function policyInForce(policy: Policy, at: Date, runtime: RuntimeState = {}): Map<string, VmInForce> {
  const byVm = new Map<string, Array<readonly [Schedule, boolean]>>();
  for (const s of policy.schedules) {
    const entry = [s, scheduleActive(s, at)] as const;
    for (const name of s.vms) {
      let list = byVm.get(name);
      if (list === undefined) byVm.set(name, (list = []));
      list.push(entry);
    }
  }
  const ctx: Context = {
    at,
    profiles: effectiveProfiles(policy.profiles),
    budgetBlocked: runtime.budgetBlocked,
    schedulesOf: (v) => byVm.get(v.name) ?? [],
  };
  const out = new Map<string, VmInForce>();
  for (const vm of policy.vms) out.set(vm.name, evaluate(vm, ctx));
  return out;
}

function evaluate(vm: Vm, ctx: Context): VmInForce {
  const now = ctx.at.getTime();
  const profile = profileInForce(vm, ctx.profiles);
  const schedules: ScheduleState[] = ctx.schedulesOf(vm).map(([s, active]) => ({
    name: s.name,
    mode: s.mode,
    services: s.services ?? [],
    active,
  }));
  const on = schedules.filter((s) => s.active);
  const denySchedules = on.filter((s) => s.services.length === 0 && s.mode === 'deny').map((s) => s.name);
  const allowlistSchedules = on
    .filter((s) => s.services.length === 0 && s.mode === 'allowlist-only')
    .map((s) => s.name);
  const blockedServices = [...new Set(on.flatMap((s) => s.services))];
  const pause =
    vm.pause !== undefined && (vm.pause.until === undefined || Date.parse(vm.pause.until) > now)
      ? vm.pause
      : undefined;
  const budgetUntil = ctx.budgetBlocked?.get(vm.name);
  const budgetSpentUntil = budgetUntil !== undefined && budgetUntil.getTime() > now ? budgetUntil : undefined;

  let cutOff: CutOff | undefined;
  if (pause !== undefined)
    cutOff = {
      kind: 'pause',
      ...(pause.until !== undefined ? { until: new Date(pause.until) } : {}),
      ...(pause.reason !== undefined ? { reason: pause.reason } : {}),
    };
  else if (budgetSpentUntil !== undefined) cutOff = { kind: 'budget', until: budgetSpentUntil };
  else if (denySchedules.length > 0) cutOff = { kind: 'schedule', schedule: denySchedules[0]! };
  else if (profile.dns?.paused === true) cutOff = { kind: 'profile' };

  let internet: InternetAccess = profile.internet;
  if (vm.quarantine !== undefined || (cutOff !== undefined && cutOff.kind !== 'profile')) internet = 'deny';
  else if (allowlistSchedules.length > 0 && internet === 'open') internet = 'allowlist-only';

  return {
    vm,
    profile,
    ...(vm.quarantine !== undefined ? { quarantine: vm.quarantine } : {}),
    ...(pause !== undefined ? { pause } : {}),
    ...(budgetSpentUntil !== undefined ? { budgetSpentUntil } : {}),
    schedules,
    denySchedules,
    allowlistSchedules,
    blockedServices,
    ...(cutOff !== undefined ? { cutOff } : {}),
    internet,
    ips: profile.ips,
    alerts: alertActionsOf(profile),
  };
}
