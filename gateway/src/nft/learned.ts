import { effectiveProfiles } from '../policy/builtins.js';
import { allowSet, ruleSet, serviceSet } from './names.js';
import type { Policy, Vm } from '../policy/model.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import type { NftApplier } from './applier.js';
import type { Ruleset } from './types.js';

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

/** One dynamic set an allowed name's addresses go into; `expires` (ms since the epoch) caps the timeout. */
export interface LearnTarget {
  readonly family: 4 | 6;
  readonly set: string;
  readonly expires?: number;
}

/**
 * Which of the VM's dynamic sets the addresses of an allowed answer for `name` go
 * into, per family: the allowlist set (allowlist-only mode), the set of every
 * scheduled or slowed service the name belongs to, and the set of every domain rule
 * the name falls under (`*.x` and `x` both cover `x` and its subdomains), each with
 * the rule's expiry. Depends only on the policy, the sets and the name, not on the
 * answer: {@link AddressLearner} keeps it per (VM, name). Pure.
 */
export function learnTargets(vm: Vm, rawName: string, ctx: Omit<LearnContext, 'now'>): LearnTarget[] {
  const name = rawName.toLowerCase().replace(/\.$/, '');
  const profile = effectiveProfiles(ctx.policy.profiles).get(vm.profile);
  const services = new Set([
    ...ctx.policy.schedules.filter((s) => s.vms.includes(vm.name)).flatMap((s) => s.services ?? []),
    ...(profile?.parental?.slowServices ?? []).map((s) => s.service),
  ]);
  const memberOf = [...services].filter((svc) => ctx.inService(name, svc));
  const rules = [...(vm.rules ?? []), ...(profile?.rules ?? [])];
  const out: LearnTarget[] = [];
  for (const family of [4, 6] as const) {
    const add = (set: string, expires?: number): void => {
      if (ctx.sets.has(set)) out.push(expires === undefined ? { family, set } : { family, set, expires });
    };
    add(allowSet(vm.name, family));
    for (const svc of memberOf) add(serviceSet(vm.name, svc, family));
    for (const [index, rule] of rules.entries()) {
      if (!('domain' in rule.to)) continue;
      const domain = rule.to.domain.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '');
      if (name !== domain && !name.endsWith(`.${domain}`)) continue;
      add(ruleSet(vm.name, rule, index, family), rule.expires ? Date.parse(rule.expires) : undefined);
    }
  }
  return out;
}

/**
 * The elements an answer adds to its targets: the timeout is the TTL, at least 30 s,
 * and never past a rule's expiry (an expired rule gets nothing). Pure.
 */
export function elementsFor(
  targets: readonly LearnTarget[],
  answer: Pick<LearnedAnswer, 'addresses' | 'ttl'>,
  now: number,
): LearnedElements[] {
  const timeout = Math.max(answer.ttl, MIN_TIMEOUT);
  const out: LearnedElements[] = [];
  for (const t of targets) {
    const values = t.family === 4 ? answer.addresses.v4 : answer.addresses.v6;
    if (values.length === 0) continue;
    const seconds =
      t.expires === undefined ? timeout : Math.min(timeout, Math.floor((t.expires - now) / 1000));
    if (seconds > 0) out.push({ set: t.set, values, timeout: seconds });
  }
  return out;
}

/** {@link learnTargets} and {@link elementsFor} in one step. Pure. */
export function learnedElements(answer: LearnedAnswer, ctx: LearnContext): LearnedElements[] {
  return elementsFor(learnTargets(answer.vm, answer.name, ctx), answer, ctx.now);
}

/** An allowed DNS answer as the filter reports it (`DnsFilter`'s `onResolved`). */
export interface ResolvedAnswer {
  /** The VM that asked (the filter's client name). */
  readonly client: string;
  readonly name: string;
  readonly addresses: { readonly v4: readonly string[]; readonly v6: readonly string[] };
  readonly ttl: number;
}

export interface AddressLearnerOptions {
  readonly applier: NftApplier;
  /** The policy the applied ruleset was compiled from; undefined before the first apply. */
  readonly policy: () => Policy | undefined;
  /** The registered VM of a DNS client name, if any. */
  readonly vm: (client: string) => Vm | undefined;
  /** Whether the DNS filter counts `name` as part of service `svc` for this VM. */
  readonly inService: (vm: Vm, name: string, svc: string) => boolean;
  readonly now: Clock;
  readonly log: Logger;
  /** Cached (VM, name) pairs before the cache starts over; default 20,000. */
  readonly maxCached?: number;
}

/**
 * Puts the addresses of allowed DNS answers into the VM's dynamic sets in the kernel
 * (the service's `onResolved` hook). The targets of a (VM, name) pair are worked out
 * once per applied ruleset and policy, not per answer: a busy resolver answers the
 * same names over and over, and the applier already skips elements whose timeout
 * covers the new one, so a repeated answer costs two map lookups and no transaction.
 */
export class AddressLearner {
  readonly #o: AddressLearnerOptions;
  readonly #max: number;
  #targets = new Map<string, LearnTarget[]>();
  #for: { ruleset: Ruleset; policy: Policy; sets: ReadonlySet<string> } | undefined;

  constructor(options: AddressLearnerOptions) {
    this.#o = options;
    this.#max = options.maxCached ?? 20_000;
  }

  /** Learn one answer; failures are logged (the answer itself has gone out already). */
  learn(answer: ResolvedAnswer): void {
    void this.learnNow(answer).catch((err: unknown) =>
      this.#o.log.warn(
        { err, vm: answer.client, name: answer.name },
        'could not add resolved addresses to nftables sets',
      ),
    );
  }

  /** Learn one answer; resolves when its elements are in the kernel. */
  async learnNow(answer: ResolvedAnswer): Promise<void> {
    const ruleset = this.#o.applier.applied;
    const policy = this.#o.policy();
    const vm = this.#o.vm(answer.client);
    if (!ruleset || !policy || !vm) return;
    if (this.#for?.ruleset !== ruleset || this.#for.policy !== policy) {
      this.#for = { ruleset, policy, sets: new Set(ruleset.sets.map((s) => s.name)) };
      this.#targets = new Map();
    }
    const key = `${vm.name}\n${answer.name}`;
    let targets = this.#targets.get(key);
    if (targets === undefined) {
      const inService = (name: string, svc: string): boolean => this.#o.inService(vm, name, svc);
      targets = learnTargets(vm, answer.name, { policy, sets: this.#for.sets, inService });
      if (this.#targets.size >= this.#max) this.#targets = new Map();
      this.#targets.set(key, targets);
    }
    for (const e of elementsFor(targets, answer, this.#o.now()))
      await this.#o.applier.addElements(e.set, e.values, e.timeout);
  }
}
