import type { Counter, Registry } from 'prom-client';
import { Counter as PromCounter, Gauge, Histogram } from 'prom-client';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { CompileCache, compile, type PrefixGroups } from '../policy/compile.js';
import type { UnassignedPool } from '../policy/compile/ports.js';
import type { Policy } from '../policy/model.js';
import type { GatewayNetwork } from '../policy/network.js';
import { windowsByVm } from '../policy/schedule.js';
import type { NftApplier } from './applier.js';
import type { Conntrack } from './conntrack.js';
import type { GuestBinding, Neighbours } from './neighbours.js';
import type { QueueSettings, Ruleset } from './types.js';
import { Serial } from '../util/serial.js';
import { systemClock, type Clock } from '../clock.js';

export interface NftSyncOptions {
  readonly applier: NftApplier;
  readonly network: GatewayNetwork;
  readonly conntrack?: Conntrack;
  /** The LAN's permanent neighbour and bridge entries of the registered guests. */
  readonly neighbours?: Neighbours;
  readonly registry?: Registry;
  readonly log?: Logger;
  /** The clock. Default Date.now. */
  readonly now?: Clock;
  /** Seconds between drift checks; 0 disables. Default 10. */
  readonly driftIntervalSeconds?: number;
  /** How queued traffic reaches Suricata; absent: IPS off. */
  readonly queue?: () => QueueSettings | undefined;
  /** Large address lists from rule bundles, grouped (the same object while unchanged). */
  readonly lists?: () => { readonly deny?: PrefixGroups };
  /** Addresses of DoH endpoints and Tor relays, for profiles that close the ways around. */
  readonly bypass?: () => {
    readonly doh?: readonly string[];
    readonly tor?: readonly string[];
    readonly vpn?: readonly string[];
  };
  /** VMs whose daily budget is spent, blocked until the daily reset. */
  readonly budgetBlocked?: () => ReadonlyMap<string, Date>;
  /** The DHCP pool of unknown devices, and how many a port may have at a time. */
  readonly unassigned?: UnassignedPool;
  /** Called after a drift was found and repaired. */
  readonly onDrift?: (what: string) => void;
}

/**
 * Keeps the kernel's `inet portcullis` table equal to the policy: compiles and
 * applies each new policy (the PolicyService's enforcer), re-applies when a schedule's
 * UTC offset changes (DST) and when the table drifted, purges conntrack entries of
 * VMs whose MAC/IP binding changed, and pins the registered guests' neighbour and
 * bridge entries (permanent: no ARP reply moves them).
 */
export class NftSync {
  readonly #o: NftSyncOptions;
  readonly #log: Logger;
  readonly #now: Clock;
  #policy: Policy | undefined;
  #dstTimer: NodeJS.Timeout | undefined;
  #driftTimer: NodeJS.Timeout | undefined;
  readonly #busy = new Serial();
  /** What applies reuse of the previous compile (unchanged VMs' chains and sets). */
  readonly #cache = new CompileCache();
  /** The guest bindings last pinned in the neighbour and bridge tables. */
  #pinned: string | undefined;
  /** What could not be pinned last time: told once, not at every check. */
  #pinProblems = '';
  readonly #applies: Counter | undefined;
  readonly #drifts: Counter | undefined;
  readonly #driftsFound: Counter | undefined;
  readonly #failures: Counter | undefined;
  readonly #duration: Histogram | undefined;

  constructor(options: NftSyncOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
    const r = options.registry;
    if (r) {
      this.#applies = new PromCounter({
        name: 'portcullis_nft_applies_total',
        help: 'Ruleset transactions applied, by kind',
        labelNames: ['kind'],
        registers: [r],
      });
      this.#failures = new PromCounter({
        name: 'portcullis_nft_apply_failures_total',
        help: 'Ruleset transactions the kernel rejected',
        registers: [r],
      });
      this.#driftsFound = new PromCounter({
        name: 'portcullis_nft_drift_found_total',
        help: 'Times a drift check found the kernel table differing from the applied ruleset',
        registers: [r],
      });
      this.#drifts = new PromCounter({
        name: 'portcullis_nft_drift_repairs_total',
        help: 'Times the kernel table differed from the applied ruleset and was restored (healed)',
        registers: [r],
      });
      this.#duration = new Histogram({
        name: 'portcullis_nft_apply_duration_seconds',
        help: 'Time to apply a ruleset transaction',
        labelNames: ['kind'],
        buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 3],
        registers: [r],
      });
      new Gauge({
        name: 'portcullis_nft_backend_info',
        help: 'The nftables backend in use (1)',
        labelNames: ['backend'],
        registers: [r],
      }).set({ backend: options.applier.backend.kind }, 1);
    }
  }

  /** The policy last applied. */
  get policy(): Policy | undefined {
    return this.#policy;
  }

  /** Compile without applying (pure; for checks and the API). */
  compile(policy: Policy): Ruleset {
    return this.#compile(policy, new Date(this.#now())).ruleset;
  }

  #compile(
    policy: Policy,
    at: Date,
    cache?: CompileCache,
  ): { ruleset: Ruleset; validUntil: Date | undefined } {
    const { byVm, services, validUntil } = windowsByVm(policy.schedules, at);
    const ruleset = compile({
      policy,
      network: this.#o.network,
      now: at,
      windows: byVm,
      serviceWindows: services,
      queue: this.#o.queue?.(),
      lists: this.#o.lists?.(),
      bypass: this.#o.bypass?.(),
      budgetBlocked: this.#o.budgetBlocked?.(),
      unassigned: this.#o.unassigned,
      cache,
    });
    return { ruleset, validUntil };
  }

  /** Apply a policy to the kernel: one transaction, or a rejection that changes nothing. */
  apply(next: Policy, prev?: Policy, options: { full?: boolean } = {}): Promise<void> {
    return this.#busy.run(() => this.#apply(next, prev ?? this.#policy, options.full ?? false));
  }

  async #apply(next: Policy, prev: Policy | undefined, full: boolean): Promise<void> {
    const { ruleset, validUntil } = this.#compile(next, new Date(this.#now()), this.#cache);
    let result;
    try {
      result = await this.#o.applier.apply(ruleset, { full });
    } catch (err) {
      this.#failures?.inc();
      throw err;
    }
    this.#applies?.inc({ kind: result.kind });
    this.#duration?.observe({ kind: result.kind }, result.ms / 1000);
    this.#policy = next;
    this.#log.info(
      { kind: result.kind, commands: result.commands, ms: Math.round(result.ms * 10) / 10 },
      'policy applied to the kernel',
    );
    if (prev) await this.#purgeChangedBindings(prev, next);
    await this.#pin(next);
    this.#scheduleDst(validUntil);
  }

  /**
   * Pin the guests' neighbour and bridge entries when their bindings changed, or
   * (`check`) when any is not as pinned: dnsmasq's ARP injection for a DHCP reply
   * replaces a permanent entry with a plain one. A failure is logged.
   */
  async #pin(policy: Policy, check = false): Promise<void> {
    const n = this.#o.neighbours;
    if (!n) return;
    const guests: GuestBinding[] = policy.vms.map((vm) => ({
      ipv4: vm.ipv4,
      mac: vm.mac.toLowerCase(),
      ...(vm.port !== undefined ? { port: vm.port } : {}),
    }));
    const key = JSON.stringify(guests);
    if (key === this.#pinned && !check) return;
    try {
      const problems = await n.set(guests);
      const told = this.#pinProblems;
      this.#pinProblems = problems.join('\n');
      if (problems.length > 0 && this.#pinProblems !== told)
        this.#log.warn(
          { problems },
          "some guests' permanent neighbour or bridge entries could not be set (does each VM's port exist?)",
        );
      if (problems.length === 0) this.#pinned = key;
    } catch (err) {
      this.#log.warn({ err }, "the guests' permanent neighbour entries could not be set");
    }
  }

  async #purgeChangedBindings(prev: Policy, next: Policy): Promise<void> {
    if (!this.#o.conntrack) return;
    const now = new Map(next.vms.map((v) => [v.name, v]));
    const stale = new Set<string>();
    for (const old of prev.vms) {
      const cur = now.get(old.name);
      const changed =
        !cur ||
        cur.mac.toLowerCase() !== old.mac.toLowerCase() ||
        cur.ipv4 !== old.ipv4 ||
        cur.ipv6 !== old.ipv6;
      const quarantined = cur?.quarantine !== undefined && old.quarantine === undefined;
      if (changed || quarantined) {
        stale.add(old.ipv4);
        if (old.ipv6) stale.add(old.ipv6);
      }
    }
    for (const addr of stale) {
      await this.#o.conntrack.purge(addr);
      this.#log.info({ address: addr }, 'conntrack entries purged after a binding change');
    }
  }

  #scheduleDst(validUntil: Date | undefined): void {
    if (this.#dstTimer) clearTimeout(this.#dstTimer);
    this.#dstTimer = undefined;
    if (!validUntil) return;
    const ms = Math.max(1000, validUntil.getTime() - this.#now() + 1000);
    // setTimeout takes at most ~24.8 days; re-arm on the way
    this.#dstTimer = setTimeout(
      () => {
        this.#dstTimer = undefined;
        if (!this.#policy) return;
        this.apply(this.#policy).catch((err: unknown) =>
          this.#log.error({ err }, 're-applying schedules at a UTC offset change failed'),
        );
      },
      Math.min(ms, 2 ** 31 - 1),
    );
    this.#dstTimer.unref();
  }

  /** Start the drift check loop. */
  start(): void {
    const every = this.#o.driftIntervalSeconds ?? 10;
    if (every <= 0) return;
    this.#driftTimer = setInterval(() => void this.checkDrift(), every * 1000);
    this.#driftTimer.unref();
  }

  /** Compare the kernel with the applied ruleset; restore it when they differ. */
  async checkDrift(): Promise<string | undefined> {
    if (!this.#policy) return undefined;
    await this.#busy.run(() => this.#pin(this.#policy!, true));
    const what = await this.#o.applier.drift();
    if (!what) return undefined;
    this.#log.warn({ drift: what }, 'the kernel ruleset drifted; restoring it');
    this.#driftsFound?.inc();
    await this.apply(this.#policy, this.#policy, { full: true });
    this.#drifts?.inc();
    this.#o.onDrift?.(what);
    return what;
  }

  stop(): void {
    if (this.#dstTimer) clearTimeout(this.#dstTimer);
    if (this.#driftTimer) clearInterval(this.#driftTimer);
    this.#dstTimer = undefined;
    this.#driftTimer = undefined;
  }
}
