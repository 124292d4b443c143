import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import { TokenBuckets } from '../util/rate.js';

/** Per-client limits of the DNS filter: what one guest may take of the service. */
export interface ClientLimitOptions {
  /**
   * Queries per second one client (source address) may send, UDP and TCP together, on
   * average; more are dropped (UDP) or refused (TCP). Default 0: no limit.
   */
  readonly queriesPerSecond?: number;
  /** Queries in a row beyond the rate. Default 2 × queriesPerSecond. */
  readonly burst?: number;
  /**
   * Upstream look-ups one client may have waiting at once (names not in the cache);
   * more are answered SERVFAIL at once. Bounds what a flood of random names costs the
   * other guests and the service's memory. Default 0: no limit.
   */
  readonly maxUpstream?: number;
  /**
   * Upstream look-ups (cache misses) one client may start per second, on average
   * (burst twice that); more are answered SERVFAIL at once. A flood of random names
   * misses the cache every time: this keeps it from taking the upstream's capacity
   * while cached names stay cheap. Default 0: no limit.
   */
  readonly upstreamPerSecond?: number;
  /** TCP connections one client may hold open. Default 8. */
  readonly tcpPerClient?: number;
}

/** Why the filter refused a client something; the label of `portcullis_dns_limited_total{reason}`. */
export type LimitReason =
  'rate' | 'upstream' | 'tcp_per_client' | 'tcp_lifetime' | 'tcp_idle' | 'tcp_backpressure' | 'tcp_oversize';

const REASONS: readonly LimitReason[] = [
  'rate',
  'upstream',
  'tcp_per_client',
  'tcp_lifetime',
  'tcp_idle',
  'tcp_backpressure',
  'tcp_oversize',
];

/**
 * The bookkeeping behind the per-client limits: a token bucket per client address,
 * upstream look-ups and TCP connections in flight per client. Pure logic over the
 * clock; every refusal is counted. Memory: bounded by the clients seen (buckets are
 * capped at 10,000 addresses; in-flight counts drop to nothing when idle).
 */
export class ClientLimits {
  readonly #buckets: TokenBuckets | undefined;
  readonly #misses: TokenBuckets | undefined;
  readonly #maxUpstream: number;
  readonly #tcpPerClient: number;
  readonly #upstream = new Map<string, number>();
  readonly #tcp = new Map<string, number>();
  readonly #counts = new Float64Array(REASONS.length);
  readonly #flushed = new Float64Array(REASONS.length);

  constructor(options: ClientLimitOptions, registry: Registry, now: Clock) {
    const qps = options.queriesPerSecond ?? 0;
    this.#buckets =
      qps > 0 ? new TokenBuckets({ ratePerSecond: qps, burst: options.burst ?? 2 * qps, now }) : undefined;
    const ups = options.upstreamPerSecond ?? 0;
    this.#misses = ups > 0 ? new TokenBuckets({ ratePerSecond: ups, burst: 2 * ups, now }) : undefined;
    this.#maxUpstream = options.maxUpstream ?? 0;
    this.#tcpPerClient = options.tcpPerClient ?? 8;
    const name = 'portcullis_dns_limited_total';
    if (!registry.getSingleMetric(name)) {
      const counts = this.#counts;
      const flushed = this.#flushed;
      new Counter({
        name,
        help: 'What the DNS filter refused a client by a per-client limit (rate, upstream, tcp_per_client, tcp_lifetime, tcp_idle, tcp_backpressure, tcp_oversize)',
        labelNames: ['reason'],
        registers: [registry],
        collect() {
          REASONS.forEach((reason, i) => {
            const d = (counts[i] as number) - (flushed[i] as number);
            if (d > 0) this.inc({ reason }, d);
            flushed[i] = counts[i] as number;
          });
        },
      });
    }
  }

  /** Spend one query of `ip`'s rate; false (counted): over its limit. */
  query(ip: string): boolean {
    if (this.#buckets === undefined || this.#buckets.take(ip)) return true;
    this.count('rate');
    return false;
  }

  /**
   * Start an upstream look-up for `ip`; false (counted) when it has `maxUpstream`
   * waiting or started more than `upstreamPerSecond` lately.
   */
  upstreamStart(ip: string): boolean {
    const n = this.#upstream.get(ip) ?? 0;
    if (
      (this.#maxUpstream > 0 && n >= this.#maxUpstream) ||
      (this.#misses !== undefined && !this.#misses.take(ip))
    ) {
      this.count('upstream');
      return false;
    }
    this.#upstream.set(ip, n + 1);
    return true;
  }

  /** An upstream look-up of `ip` ended (answered or failed). */
  upstreamEnd(ip: string): void {
    const n = (this.#upstream.get(ip) ?? 1) - 1;
    if (n <= 0) this.#upstream.delete(ip);
    else this.#upstream.set(ip, n);
  }

  /** Open a TCP connection for `ip`; false (counted) when it holds `tcpPerClient` already. */
  tcpOpen(ip: string): boolean {
    const n = this.#tcp.get(ip) ?? 0;
    if (n >= this.#tcpPerClient) {
      this.count('tcp_per_client');
      return false;
    }
    this.#tcp.set(ip, n + 1);
    return true;
  }

  /** A TCP connection of `ip` closed. */
  tcpClose(ip: string): void {
    const n = (this.#tcp.get(ip) ?? 1) - 1;
    if (n <= 0) this.#tcp.delete(ip);
    else this.#tcp.set(ip, n);
  }

  /** Count a refusal decided elsewhere (TCP timers, back-pressure). */
  count(reason: LimitReason): void {
    const i = REASONS.indexOf(reason);
    this.#counts[i] = (this.#counts[i] as number) + 1;
  }

  /** Upstream look-ups and TCP connections in flight now, over all clients (for status and tests). */
  get inFlight(): { upstream: number; tcp: number } {
    let upstream = 0;
    let tcp = 0;
    for (const n of this.#upstream.values()) upstream += n;
    for (const n of this.#tcp.values()) tcp += n;
    return { upstream, tcp };
  }
}
