import { effectiveProfiles } from '../policy/builtins.js';
import { allowSet, ruleSet, serviceSet } from './names.js';
import type { Policy, Vm } from '../policy/model.js';
import type { NftApplier } from './applier.js';

/** Addresses of one allowed DNS answer of one VM, as the DNS filter reports them. */
export interface LearnedAnswer {
  readonly vm: Vm;
  /** The name asked for (any case, trailing dot or not). */
  readonly name: string;
  readonly addresses: { readonly v4: readonly string[]; readonly v6: readonly string[] };
  /** The answer's TTL in seconds; at least 30 s is used. */
  readonly ttl: number;
}

/** Elements to add to one dynamic set, with their timeout in seconds (at least 1). */
export interface LearnedElements {
  readonly set: string;
  readonly values: readonly string[];
  readonly timeout: number;
}

export interface LearnContext {
  /** The policy the applied ruleset was compiled from. */
  readonly policy: Policy;
  /** Names of the sets in the applied ruleset: sets it lacks are skipped. */
  readonly sets: ReadonlySet<string>;
  /** Whether the DNS filter counts `name` (lower case, no trailing dot) as part of `service`. */
  readonly inService: (name: string, service: string) => boolean;
  /** Now, in ms since the epoch (for rule expiries). */
  readonly now: number;
}

/** The floor of a learned element's timeout, in seconds: short TTLs would close a set under a live connection. */
const MIN_TIMEOUT = 30;

/**
 * Which of the VM's dynamic sets the addresses of an allowed answer go into, per
 * family: the allowlist set (allowlist-only mode), the set of every scheduled or
 * slowed service the name belongs to, and the set of every domain rule the name falls
 * under (`*.x` and `x` both cover `x` and its subdomains). The timeout is the TTL, at
 * least 30 s, and never past a rule's expiry (an expired rule gets nothing). Pure.
 */
export function learnedElements(answer: LearnedAnswer, ctx: LearnContext): LearnedElements[] {
  const { vm, addresses } = answer;
  const timeout = Math.max(answer.ttl, MIN_TIMEOUT);
  const name = answer.name.toLowerCase().replace(/\.$/, '');
  const profile = effectiveProfiles(ctx.policy.profiles).get(vm.profile);
  const services = new Set([
    ...ctx.policy.schedules.filter((s) => s.vms.includes(vm.name)).flatMap((s) => s.services ?? []),
    ...(profile?.parental?.slowServices ?? []).map((s) => s.service),
  ]);
  const memberOf = [...services].filter((svc) => ctx.inService(name, svc));
  const rules = [...(vm.rules ?? []), ...(profile?.rules ?? [])];
  const out: LearnedElements[] = [];
  for (const family of [4, 6] as const) {
    const values = family === 4 ? addresses.v4 : addresses.v6;
    if (values.length === 0) continue;
    const add = (set: string, seconds: number): void => {
      if (ctx.sets.has(set)) out.push({ set, values, timeout: seconds });
    };
    add(allowSet(vm.name, family), timeout);
    for (const svc of memberOf) add(serviceSet(vm.name, svc, family), timeout);
    for (const [index, rule] of rules.entries()) {
      if (!('domain' in rule.to)) continue;
      const domain = rule.to.domain.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '');
      if (name !== domain && !name.endsWith(`.${domain}`)) continue;
      let seconds = timeout;
      if (rule.expires) seconds = Math.min(seconds, Math.floor((Date.parse(rule.expires) - ctx.now) / 1000));
      if (seconds > 0) add(ruleSet(vm.name, rule, index, family), seconds);
    }
  }
  return out;
}

/**
 * Add the addresses of an allowed answer to the VM's sets in the kernel (see
 * {@link learnedElements}), one transaction per set. Nothing happens before the first
 * ruleset is applied.
 */
export async function learnAddresses(
  applier: NftApplier,
  answer: LearnedAnswer,
  ctx: Omit<LearnContext, 'sets'>,
): Promise<void> {
  const ruleset = applier.applied;
  if (!ruleset) return;
  const sets = new Set(ruleset.sets.map((s) => s.name));
  for (const e of learnedElements(answer, { ...ctx, sets }))
    await applier.addElements(e.set, e.values, e.timeout);
}
