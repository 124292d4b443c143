import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { effectiveProfiles } from '../policy/builtins.js';
import { vmCounter } from '../nft/names.js';
import type { Policy, Vm } from '../policy/model.js';
import { BudgetBook, type BudgetRule, type BudgetState, type BudgetUsage } from './budget.js';
import { systemClock, type Clock } from '../clock.js';

export interface BudgetControllerOptions {
  /** The policy in force. */
  readonly policy: () => Policy;
  /** Cumulative bytes each VM has sent, by counter name (`vmCounter(vm)`). */
  readonly readCounters: () => Promise<Map<string, number>>;
  /** The set of budget-blocked VMs changed: re-apply the ruleset. */
  readonly onChange: () => Promise<void>;
  /** Where the ledger is kept across restarts (JSON). */
  readonly stateFile: string;
  /** Seconds between counter samples. Default 60. */
  readonly sampleSeconds?: number;
  readonly now?: Clock;
  readonly log?: Logger;
}

/** The budget rule of a VM, or undefined when its profile has no daily budget. */
export function budgetRule(vm: Vm, policy: Policy): BudgetRule | undefined {
  const profile = effectiveProfiles(policy.profiles).get(vm.profile);
  const p = profile?.parental;
  if (p?.dailyMinutes === undefined) return undefined;
  return {
    key: vm.owner ?? vm.name,
    dailyMinutes: p.dailyMinutes,
    idleBytesPerMinute: p.idleBytesPerMinute ?? 20_000,
    timezone: p.timezone ?? 'UTC',
  };
}

/**
 * Daily time budgets at run time: samples the VMs' counters, keeps the ledger
 * (persisted), and tells the ruleset which VMs are blocked until their daily reset.
 * The block itself is a kernel rule that ends at the reset by the kernel clock.
 */
export class BudgetController {
  readonly #o: BudgetControllerOptions;
  readonly #log: Logger;
  readonly #now: Clock;
  #book = new BudgetBook();
  #timer: NodeJS.Timeout | undefined;
  #blocked = new Map<string, Date>();

  constructor(options: BudgetControllerOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
  }

  /** VMs whose budget is spent, with the instant their block ends. */
  blocked(): ReadonlyMap<string, Date> {
    return this.#blocked;
  }

  usage(vm: Vm): BudgetUsage | undefined {
    const rule = budgetRule(vm, this.#o.policy());
    return rule && this.#book.usage(rule, new Date(this.#now()));
  }

  /** Give extra minutes today; takes effect at once. */
  async grant(vm: Vm, minutes: number): Promise<BudgetUsage | undefined> {
    const rule = budgetRule(vm, this.#o.policy());
    if (!rule) return undefined;
    this.#book.grant(rule, minutes, new Date(this.#now()));
    await this.#update();
    return this.#book.usage(rule, new Date(this.#now()));
  }

  /** Read the ledger kept by the last run (none yet: an empty one), then sample every `sampleSeconds`. */
  start(): void {
    let state: BudgetState | undefined;
    try {
      state = JSON.parse(readFileSync(this.#o.stateFile, 'utf8')) as BudgetState;
    } catch {
      state = undefined;
    }
    this.#book = new BudgetBook(state);
    this.#blocked = this.#compute();
    const every = (this.#o.sampleSeconds ?? 60) * 1000;
    this.#timer = setInterval(() => {
      this.sample().catch((err: unknown) => this.#log.warn({ err }, 'budget sample failed'));
    }, every);
    this.#timer.unref();
  }

  /** Take one sample of every budgeted VM's counter. */
  async sample(): Promise<void> {
    const policy = this.#o.policy();
    const at = new Date(this.#now());
    const counters = await this.#o.readCounters();
    for (const vm of policy.vms) {
      const rule = budgetRule(vm, policy);
      const bytes = counters.get(vmCounter(vm.name));
      if (rule && bytes !== undefined) this.#book.sample(vm.name, bytes, at, rule);
    }
    await this.#update();
  }

  async #update(): Promise<void> {
    this.#persist();
    const next = this.#compute();
    const same =
      next.size === this.#blocked.size &&
      [...next].every(([k, v]) => this.#blocked.get(k)?.getTime() === v.getTime());
    this.#blocked = next;
    if (!same) {
      this.#log.info(
        { blocked: Object.fromEntries([...next].map(([k, v]) => [k, v.toISOString()])) },
        'time budgets changed',
      );
      await this.#o.onChange();
    }
  }

  #compute(): Map<string, Date> {
    const policy = this.#o.policy();
    const at = new Date(this.#now());
    const out = new Map<string, Date>();
    for (const vm of policy.vms) {
      const rule = budgetRule(vm, policy);
      const until = rule && this.#book.usage(rule, at).blockedUntil;
      if (until) out.set(vm.name, new Date(until));
    }
    return out;
  }

  #persist(): void {
    const tmp = `${this.#o.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#book.toJSON()));
    renameSync(tmp, this.#o.stateFile);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
