import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { CounterValue } from '../nft/counters.js';
import { vmCounter, vmCounterIn } from '../nft/names.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

/**
 * What the dashboard's charts draw: per-VM bytes in and out and the DNS queries
 * allowed and blocked, per minute, for the last day. Kept in memory in ring buffers
 * (one slot per minute, 1,440 slots: 23 KB per VM), not in SQLite: charts of the
 * last hour and day need no history across a restart, and a sample costs one counter
 * reading a minute. A restart starts the charts empty.
 */

/** A fixed number of slots, the oldest overwritten; values are per step. Pure. */
export class Ring {
  readonly #values: Float64Array;
  #next = 0;
  #filled = 0;

  constructor(readonly size: number) {
    this.#values = new Float64Array(size);
  }

  push(value: number): void {
    this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.size;
    this.#filled = Math.min(this.#filled + 1, this.size);
  }

  /** The last `n` values, oldest first; slots never filled are left out. */
  last(n: number): number[] {
    const k = Math.min(n, this.#filled);
    const out = new Array<number>(k);
    for (let i = 0; i < k; i++) out[i] = this.#values[(this.#next - k + i + this.size) % this.size]!;
    return out;
  }

  get filled(): number {
    return this.#filled;
  }
}

/** The history of one range, as the API answers it. */
export interface HistorySeries {
  /** Seconds between points. */
  readonly step: number;
  /** The time of each point (the end of its step), ms since the epoch. */
  readonly times: readonly number[];
  /** Bytes per step, by VM. */
  readonly vms: Readonly<Record<string, { readonly in: readonly number[]; readonly out: readonly number[] }>>;
  /** DNS queries per step. */
  readonly dns: { readonly allowed: readonly number[]; readonly blocked: readonly number[] };
}

export interface TrafficHistoryOptions {
  /** Read the table's named counters. */
  readonly read: () => Promise<ReadonlyMap<string, CounterValue>>;
  /** The policy's VM names now. */
  readonly vms: () => readonly string[];
  /** DNS queries and blocks since the start. */
  readonly dns: () => { readonly queries: number; readonly blocks: number };
  /** Seconds between samples. Default 60. */
  readonly stepSeconds?: number;
  /** Samples kept. Default 1,440 (a day of minutes). */
  readonly points?: number;
  readonly now?: Clock;
  readonly log?: Logger;
}

/** Samples the counters every step and keeps the differences. */
export class TrafficHistory {
  readonly #o: TrafficHistoryOptions;
  readonly #log: Logger;
  readonly #now: Clock;
  readonly #points: number;
  readonly #times: Ring;
  readonly #vms = new Map<string, { in: Ring; out: Ring }>();
  readonly #dns: { allowed: Ring; blocked: Ring };
  #last:
    { counters: ReadonlyMap<string, CounterValue>; dns: { queries: number; blocks: number } } | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(at: number) => void>();

  constructor(options: TrafficHistoryOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
    this.#points = options.points ?? 1440;
    this.#times = new Ring(this.#points);
    this.#dns = { allowed: new Ring(this.#points), blocked: new Ring(this.#points) };
  }

  get stepSeconds(): number {
    return this.#o.stepSeconds ?? 60;
  }

  start(): void {
    void this.sample();
    this.#timer = setInterval(() => void this.sample(), this.stepSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Take one sample: the first only sets the baseline. Never throws (a failed reading is logged and skipped). */
  async sample(): Promise<void> {
    let counters: ReadonlyMap<string, CounterValue>;
    try {
      counters = await this.#o.read();
    } catch (err) {
      this.#log.warn({ err }, 'could not read the kernel counters for the traffic history');
      return;
    }
    const dns = { ...this.#o.dns() };
    const last = this.#last;
    this.#last = { counters, dns };
    if (last === undefined) return;
    // a counter that went down was reset (a new table): count from 0
    const delta = (now: number, before: number): number => (now >= before ? now - before : now);
    const names = this.#o.vms();
    const filledBefore = this.#times.filled;
    for (const vm of names) {
      let rings = this.#vms.get(vm);
      if (!rings) {
        // a VM new to the history starts with zeros where the others have points
        rings = { in: new Ring(this.#points), out: new Ring(this.#points) };
        for (let i = 0; i < filledBefore; i++) {
          rings.in.push(0);
          rings.out.push(0);
        }
        this.#vms.set(vm, rings);
      }
      const bytes = (name: string, from: ReadonlyMap<string, CounterValue>): number =>
        from.get(name)?.bytes ?? 0;
      rings.in.push(delta(bytes(vmCounterIn(vm), counters), bytes(vmCounterIn(vm), last.counters)));
      rings.out.push(delta(bytes(vmCounter(vm), counters), bytes(vmCounter(vm), last.counters)));
    }
    for (const vm of [...this.#vms.keys()]) if (!names.includes(vm)) this.#vms.delete(vm);
    const blocked = delta(dns.blocks, last.dns.blocks);
    this.#dns.blocked.push(blocked);
    this.#dns.allowed.push(Math.max(0, delta(dns.queries, last.dns.queries) - blocked));
    const at = this.#now();
    this.#times.push(at);
    for (const cb of this.#listeners) cb(at);
  }

  /** Call `cb` after each new point (the live feed tells the charts); returns the unsubscribe. */
  onSample(cb: (at: number) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** The last `points` steps (60 for an hour of minutes, 1,440 for a day). */
  series(points: number): HistorySeries {
    const vms: Record<string, { in: number[]; out: number[] }> = {};
    for (const [vm, r] of this.#vms) vms[vm] = { in: r.in.last(points), out: r.out.last(points) };
    return {
      step: this.stepSeconds,
      times: this.#times.last(points),
      vms,
      dns: { allowed: this.#dns.allowed.last(points), blocked: this.#dns.blocked.last(points) },
    };
  }
}
