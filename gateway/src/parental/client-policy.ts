import type { ClientPolicy, Verdict } from '../dns/model.js';
import { effectiveProfiles } from '../policy/builtins.js';
import type { Policy, Vm } from '../policy/model.js';
import { scheduleActive } from '../policy/schedule.js';

/** What the DNS filter and the block page know of one VM at one instant. */
export interface ClientView {
  readonly vm: Vm;
  readonly policy: ClientPolicy;
  /**
   * Why every name of this VM answers the block page, in words for the kid; absent
   * while the VM is not blocked as a whole.
   */
  readonly blocked?: string;
}

const clockFormat = new Map<string, Intl.DateTimeFormat>();

/** `HH:MM` of `at` in `tz`. */
function clock(at: Date, tz: string): string {
  let f = clockFormat.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone: tz,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    clockFormat.set(tz, f);
  }
  return f.format(at);
}

/**
 * The DNS view of each VM, by address: its profile's DNS settings with the schedules,
 * pauses, budgets and approved domains in force at `at`. Pure.
 * @param budgetBlocked VMs whose daily budget is spent, with the instant it resets.
 */
export function clientPolicies(
  p: Policy,
  at: Date,
  budgetBlocked: ReadonlyMap<string, Date>,
): Map<string, ClientView> {
  const profiles = effectiveProfiles(p.profiles);
  const out = new Map<string, ClientView>();
  const now = at.getTime();
  for (const vm of p.vms) {
    const profile = vm.quarantine ? profiles.get('quarantine')! : profiles.get(vm.profile)!;
    const tz = profile.parental?.timezone ?? 'UTC';
    const active = p.schedules.filter((s) => s.vms.includes(vm.name) && scheduleActive(s, at));
    const wholeVm = active.filter((s) => !s.services?.length);
    const blockedServices = active.flatMap((s) => s.services ?? []);
    const pause =
      vm.pause !== undefined && (vm.pause.until === undefined || Date.parse(vm.pause.until) > now)
        ? vm.pause
        : undefined;
    const budgetUntil = budgetBlocked.get(vm.name);
    const denySchedule = wholeVm.find((s) => s.mode === 'deny');
    const blocked =
      pause !== undefined
        ? `a parent paused the internet${pause.until === undefined ? '' : ` until ${clock(new Date(pause.until), tz)}`}.`
        : budgetUntil !== undefined && budgetUntil.getTime() > now
          ? `today's internet time is used up; it comes back at ${clock(budgetUntil, tz)}.`
          : denySchedule !== undefined
            ? `the "${denySchedule.name}" schedule has the internet off right now.`
            : profile.dns?.paused === true
              ? 'the internet is off for this computer.'
              : undefined;
    // domains a rule (or an approved access request) accepts resolve whatever the lists say
    const accepted = [...(vm.rules ?? []), ...profile.rules]
      .filter((r) => r.action === 'accept' && 'domain' in r.to && (!r.expires || Date.parse(r.expires) > now))
      .map((r) => (r.to as { domain: string }).domain);
    const dns = profile.dns ?? {};
    const policy: ClientPolicy = {
      ...dns,
      client: vm.name,
      services: [...new Set([...(dns.services ?? []), ...blockedServices])],
      allow: [...new Set([...(dns.allow ?? []), ...(profile.allowDomains ?? []), ...accepted])],
      allowlistOnly:
        profile.internet === 'allowlist-only' ||
        wholeVm.some((s) => s.mode === 'allowlist-only') ||
        (dns.allowlistOnly ?? false),
      paused: blocked !== undefined,
    };
    const view: ClientView = blocked === undefined ? { vm, policy } : { vm, policy, blocked };
    out.set(vm.ipv4, view);
    if (vm.ipv6) out.set(vm.ipv6, view);
  }
  return out;
}

/**
 * A verdict in words for the block page.
 * @param blocked `ClientView.blocked`: the reason when the whole VM is blocked.
 */
export function explain(v: Verdict, blocked?: string): string {
  const r = v.reason;
  if (!r) return 'this page is not blocked; try again.';
  switch (r.kind) {
    case 'category':
      return `it is in the "${r.list}" category, which is blocked.`;
    case 'service':
      return `${r.list} is blocked${r.entry ? ` (${r.entry})` : ''}.`;
    case 'custom':
      return 'a parent blocked this site.';
    case 'allowlist':
      return 'only allowed sites can be visited right now.';
    case 'paused':
      return blocked ?? 'the internet is paused right now.';
    default:
      return `it is blocked (${r.kind}).`;
  }
}
