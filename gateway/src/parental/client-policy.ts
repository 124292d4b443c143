import type { ClientPolicy, Verdict } from '../dns/model.js';
import { policyInForce, type CutOff, type VmInForce } from '../policy/in-force.js';
import type { Policy, Vm } from '../policy/model.js';

/** What the DNS filter and the block page know of one VM at one instant. */
export interface ClientView {
  readonly vm: Vm;
  /** What is in force for the VM at the instant the view was made. */
  readonly state: VmInForce;
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
 * Why a VM is cut off as a whole, in words for the kid; times in `tz`.
 * @param tz IANA time zone of the times in the words.
 */
export function cutOffWords(cut: CutOff, tz: string): string {
  switch (cut.kind) {
    case 'pause':
      return `a parent paused the internet${cut.until === undefined ? '' : ` until ${clock(cut.until, tz)}`}.`;
    case 'budget':
      return `today's internet time is used up; it comes back at ${clock(cut.until, tz)}.`;
    case 'schedule':
      return `the "${cut.schedule}" schedule has the internet off right now.`;
    case 'profile':
      return 'the internet is off for this computer.';
  }
}

/**
 * The DNS view of each VM, by address: its profile's DNS settings with the schedules,
 * pauses, budgets and approved domains in force at `at` (`policyInForce`). Pure.
 * @param budgetBlocked VMs whose daily budget is spent, with the instant it resets.
 */
export function clientPolicies(
  p: Policy,
  at: Date,
  budgetBlocked: ReadonlyMap<string, Date>,
): Map<string, ClientView> {
  const out = new Map<string, ClientView>();
  const now = at.getTime();
  for (const state of policyInForce(p, at, { budgetBlocked }).values()) {
    const { vm, profile } = state;
    const blocked =
      state.cutOff === undefined ? undefined : cutOffWords(state.cutOff, profile.parental?.timezone ?? 'UTC');
    // domains a rule (or an approved access request) accepts resolve whatever the lists say
    const accepted = [...(vm.rules ?? []), ...profile.rules]
      .filter((r) => r.action === 'accept' && 'domain' in r.to && (!r.expires || Date.parse(r.expires) > now))
      .map((r) => (r.to as { domain: string }).domain);
    const dns = profile.dns ?? {};
    // quarantined: only the names the quarantine profile allows (update servers) resolve;
    // every other query is answered here, never asked upstream (no tunnel through the resolver)
    const quarantined = state.quarantine !== undefined;
    const policy: ClientPolicy = {
      ...dns,
      client: vm.name,
      services: [...new Set([...(dns.services ?? []), ...state.blockedServices])],
      allow: [
        ...new Set([...(dns.allow ?? []), ...(profile.allowDomains ?? []), ...(quarantined ? [] : accepted)]),
      ],
      allowlistOnly:
        quarantined ||
        profile.internet === 'allowlist-only' ||
        state.allowlistSchedules.length > 0 ||
        (dns.allowlistOnly ?? false),
      paused: blocked !== undefined,
    };
    const view: ClientView = blocked === undefined ? { vm, state, policy } : { vm, state, policy, blocked };
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
