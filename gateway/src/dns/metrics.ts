import { Counter, Histogram, Registry } from 'prom-client';
import type { Verdict } from './model.js';
import { QUERY_ACTIONS, type QueryAction } from './query-log.js';

/** Query outcomes counted by `portcullis_dns_queries_total{action}`; `dropped` = not answered (not a query). */
export type CountedAction = QueryAction | 'dropped';

const ACTIONS: readonly CountedAction[] = [...QUERY_ACTIONS, 'dropped'];

/** Get a metric already on the registry (a second filter on the same registry), or make it. */
function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * The DNS filter's metrics on an injected registry. Label values are bounded (the
 * action set); per-client detail lives in the query log, not in labels. Counters are
 * kept as plain numbers on the request path and handed to prom-client when it
 * collects (a scrape), which keeps the per-query cost to an addition.
 */
export class DnsMetrics {
  readonly #counts = new Float64Array(ACTIONS.length);
  readonly #flushed = new Float64Array(ACTIONS.length);
  #cacheHits = 0;
  #cacheHitsFlushed = 0;
  #upstreamErrors = 0;
  #upstreamErrorsFlushed = 0;
  readonly #udpDropped = { in: 0, out: 0 };
  readonly #udpDroppedFlushed = { in: 0, out: 0 };
  /** Per client (VM name): queries, `[count, flushed]`. */
  readonly #perClient = new Map<string, [number, number]>();
  readonly listLoadErrors: Counter;
  readonly duration: Histogram;

  /** @param registry where the metrics are registered; default a private one. */
  constructor(registry: Registry = new Registry()) {
    const registers = [registry];
    const queries = metric(
      registry,
      'portcullis_dns_queries_total',
      () =>
        new Counter({
          name: 'portcullis_dns_queries_total',
          help: 'DNS queries answered, by outcome (allow, block, rewrite, nxdomain, nodata, refused, servfail, formerr, notimp, dropped)',
          labelNames: ['action'],
          registers,
        }),
    );
    const hits = metric(
      registry,
      'portcullis_dns_cache_hits_total',
      () =>
        new Counter({
          name: 'portcullis_dns_cache_hits_total',
          help: 'DNS answers served from the cache',
          registers,
        }),
    );
    const upstream = metric(
      registry,
      'portcullis_dns_upstream_errors_total',
      () =>
        new Counter({
          name: 'portcullis_dns_upstream_errors_total',
          help: 'Failed upstream attempts (timeout, SERVFAIL/REFUSED, network error)',
          registers,
        }),
    );
    this.listLoadErrors = metric(
      registry,
      'portcullis_dns_list_load_errors_total',
      () =>
        new Counter({
          name: 'portcullis_dns_list_load_errors_total',
          help: 'Domain list loads rejected (the lists in force were kept)',
          registers,
        }),
    );
    this.duration = metric(
      registry,
      'portcullis_dns_query_duration_seconds',
      () =>
        new Histogram({
          name: 'portcullis_dns_query_duration_seconds',
          help: 'Time from receiving a DNS query to sending its answer',
          buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers,
        }),
    );
    const udpDropped = metric(
      registry,
      'portcullis_dns_udp_dropped_total',
      () =>
        new Counter({
          name: 'portcullis_dns_udp_dropped_total',
          help: 'UDP datagrams dropped by the filter: in = a query longer than a receive slot, out = an answer the full send buffer would not take',
          labelNames: ['direction'],
          registers,
        }),
    );
    const vmQueries = metric(
      registry,
      'portcullis_dns_vm_queries_total',
      () =>
        new Counter({
          name: 'portcullis_dns_vm_queries_total',
          help: 'DNS queries from each VM (vm: a VM of the policy, or unassigned)',
          labelNames: ['vm'],
          registers,
        }),
    );
    chainCollect(vmQueries, () => {
      for (const [vm, c] of this.#perClient) {
        vmQueries.inc({ vm }, c[0] - c[1]);
        c[1] = c[0];
      }
    });
    for (const a of ACTIONS) queries.inc({ action: a }, 0);
    for (const d of ['in', 'out'] as const) udpDropped.inc({ direction: d }, 0);
    // a second filter on the same registry shares the metrics: each adds only its own deltas
    chainCollect(queries, () => this.#flushQueries(queries));
    chainCollect(hits, () => {
      hits.inc(this.#cacheHits - this.#cacheHitsFlushed);
      this.#cacheHitsFlushed = this.#cacheHits;
    });
    chainCollect(upstream, () => {
      upstream.inc(this.#upstreamErrors - this.#upstreamErrorsFlushed);
      this.#upstreamErrorsFlushed = this.#upstreamErrors;
    });
    chainCollect(udpDropped, () => {
      for (const d of ['in', 'out'] as const) {
        udpDropped.inc({ direction: d }, this.#udpDropped[d] - this.#udpDroppedFlushed[d]);
        this.#udpDroppedFlushed[d] = this.#udpDropped[d];
      }
    });
  }

  query(action: CountedAction): void {
    const i = ACTION_INDEX[action];
    this.#counts[i] = (this.#counts[i] as number) + 1;
  }

  /**
   * A query of `client` (a VM's name, or `unassigned`: the client directory knows no
   * other names, so the label is bounded by the policy's VMs). Blocks are counted from
   * the event bus (`dns.blocked`, metrics/events.ts).
   */
  clientQuery(client: string): void {
    const c = this.#perClient.get(client);
    if (c === undefined) this.#perClient.set(client, [1, 0]);
    else c[0]++;
  }

  /** Queries of every client since the start (the dashboard's history samples them). */
  totalQueries(): number {
    let queries = 0;
    for (const c of this.#perClient.values()) queries += c[0];
    return queries;
  }

  cacheHit(): void {
    this.#cacheHits++;
  }

  upstreamError(): void {
    this.#upstreamErrors++;
  }

  udpDropped(direction: 'in' | 'out', count: number): void {
    this.#udpDropped[direction] += count;
  }

  #flushQueries(queries: Counter<'action'>): void {
    ACTIONS.forEach((a, i) => {
      const delta = (this.#counts[i] as number) - (this.#flushed[i] as number);
      if (delta > 0) queries.inc({ action: a }, delta);
      this.#flushed[i] = this.#counts[i] as number;
    });
  }
}

/** The category of a blocking verdict (its list for categories and services, else its kind); undefined when not a block. */
export function blockCategory(v: Verdict | undefined): string | undefined {
  if (v === undefined || v.action === 'allow' || v.action === 'rewrite') return undefined;
  const reason = v.reason;
  if (reason === undefined) return 'other';
  return (reason.kind === 'category' || reason.kind === 'service') && reason.list ? reason.list : reason.kind;
}

const ACTION_INDEX = Object.fromEntries(ACTIONS.map((a, i) => [a, i])) as Record<CountedAction, number>;

/** Add `fn` to the metric's collect hook, keeping any hook already there (another filter's). */
function chainCollect(m: Counter<string>, fn: () => void): void {
  const holder = m as unknown as { collect?: () => void | Promise<void> };
  const previous = holder.collect;
  holder.collect =
    previous === undefined
      ? fn
      : async () => {
          await previous.call(m);
          fn();
        };
}
