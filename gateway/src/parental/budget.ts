/**
 * Daily time budgets, pure: active minutes counted from a VM's traffic counter.
 * A sample interval counts as active when the VM sent more than the idle threshold
 * in it (background chatter does not count). VMs of one owner share one budget.
 * Days are local days in the budget's time zone; the budget resets at local midnight.
 */

export interface BudgetRule {
  /** Whose budget: the VM's owner, else the VM itself. */
  readonly key: string;
  readonly dailyMinutes: number;
  /** Bytes per minute below which a VM counts as idle. */
  readonly idleBytesPerMinute: number;
  readonly timezone: string;
}

export interface BudgetUsage {
  readonly key: string;
  /** Local date, YYYY-MM-DD. */
  readonly day: string;
  /** Active seconds used today. */
  readonly usedSeconds: number;
  /** Extra minutes granted today. */
  readonly extraMinutes: number;
  readonly dailyMinutes: number;
  /** When the budget is spent: blocked until this instant (the next local midnight). */
  readonly blockedUntil?: string;
}

export interface BudgetState {
  readonly usage: Record<string, { day: string; usedSeconds: number; extraMinutes: number }>;
}

const dayFormat = new Map<string, Intl.DateTimeFormat>();

/** The local date (YYYY-MM-DD) of `at` in `tz`. */
export function localDay(at: Date, tz: string): string {
  let f = dayFormat.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
    dayFormat.set(tz, f);
  }
  return f.format(at);
}

/** The first instant after `at` whose local date differs: the next local midnight, to the minute. */
export function nextLocalMidnight(at: Date, tz: string): Date {
  const today = localDay(at, tz);
  let lo = at.getTime();
  let hi = lo + 26 * 3_600_000;
  while (localDay(new Date(hi), tz) === today) hi += 3_600_000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (localDay(new Date(mid), tz) === today) lo = mid;
    else hi = mid;
  }
  // local midnight falls on a whole minute (zone offsets are whole minutes)
  return new Date(Math.ceil((lo + 1) / 60_000) * 60_000);
}

/** The budget ledger. Feed it counter samples; ask it who is blocked. */
export class BudgetBook {
  readonly #usage = new Map<string, { day: string; usedSeconds: number; extraMinutes: number }>();
  readonly #lastBytes = new Map<string, { bytes: number; at: number }>();
  /** Per budget: the instant up to which active time is already counted. */
  readonly #countedUntil = new Map<string, number>();

  constructor(state?: BudgetState) {
    for (const [k, v] of Object.entries(state?.usage ?? {})) this.#usage.set(k, { ...v });
  }

  #entry(key: string, day: string): { day: string; usedSeconds: number; extraMinutes: number } {
    let e = this.#usage.get(key);
    if (!e || e.day !== day) {
      e = { day, usedSeconds: 0, extraMinutes: 0 };
      this.#usage.set(key, e);
    }
    return e;
  }

  /**
   * A sample of one VM's cumulative byte counter. The interval since the previous
   * sample counts as active when its rate was above the idle threshold. A counter that
   * went backwards (table replaced) restarts the baseline.
   */
  sample(vm: string, bytes: number, at: Date, rule: BudgetRule): void {
    const prev = this.#lastBytes.get(vm);
    this.#lastBytes.set(vm, { bytes, at: at.getTime() });
    if (!prev || bytes < prev.bytes) return;
    const seconds = (at.getTime() - prev.at) / 1000;
    if (seconds <= 0 || seconds > 600) return;
    const perMinute = ((bytes - prev.bytes) / seconds) * 60;
    if (perMinute <= rule.idleBytesPerMinute) return;
    const from = Math.max(prev.at, this.#countedUntil.get(rule.key) ?? 0);
    const counted = (at.getTime() - from) / 1000;
    if (counted <= 0) return;
    this.#countedUntil.set(rule.key, at.getTime());
    this.#entry(rule.key, localDay(at, rule.timezone)).usedSeconds += counted;
  }

  /** Give extra minutes for today. */
  grant(rule: BudgetRule, minutes: number, at: Date): void {
    this.#entry(rule.key, localDay(at, rule.timezone)).extraMinutes += minutes;
  }

  usage(rule: BudgetRule, at: Date): BudgetUsage {
    const day = localDay(at, rule.timezone);
    const e = this.#usage.get(rule.key);
    const used = e?.day === day ? e.usedSeconds : 0;
    const extra = e?.day === day ? e.extraMinutes : 0;
    const spent = used >= (rule.dailyMinutes + extra) * 60;
    return {
      key: rule.key,
      day,
      usedSeconds: Math.round(used),
      extraMinutes: extra,
      dailyMinutes: rule.dailyMinutes,
      ...(spent ? { blockedUntil: nextLocalMidnight(at, rule.timezone).toISOString() } : {}),
    };
  }

  toJSON(): BudgetState {
    return { usage: Object.fromEntries(this.#usage) };
  }
}
