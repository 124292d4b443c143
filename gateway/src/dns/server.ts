import { createSocket } from 'node:dgram';
import {
  createServer,
  isIPv4,
  isIPv6,
  type AddressInfo,
  type Server,
  type Socket as TcpSocket,
} from 'node:net';
import { Counter, Registry } from 'prom-client';
import { isPortcullisError, PortcullisError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { DnsCache, prepare, remainingTtl, serve, type CacheOptions, type Prepared } from './cache.js';
import { DomainIndex, type IndexedList } from './domain-index.js';
import { ClientLimits, type ClientLimitOptions } from './limits.js';
import { RebindingGuard, type RebindingOptions } from './rebinding.js';
import { loadListSources, type ListParseOptions, type ListSource } from './lists.js';
import { NameMatcher } from './matcher.js';
import { DnsMetrics, type CountedAction } from './metrics.js';
import type { ClientPolicy, Verdict } from './model.js';
import { QueryLog, type QueryAction, type QueryLogEntry } from './query-log.js';
import { SafeSearch, type SafeSearchTargets } from './safesearch.js';
import { BatchedUdpSocket } from './udp-batch.js';
import { UpstreamClient, type UpstreamServer } from './upstream.js';
import {
  buildResponse,
  CLASS_IN,
  decodeRecord,
  ipv4Rdata,
  ipv6Rdata,
  parseQuery,
  RCODE,
  syntheticSoa,
  TYPE,
  typeName,
  UDP_CLASSIC,
  encodeName,
  type ParsedQuery,
  type RecordData,
} from './wire.js';
import { Serial } from '../util/serial.js';
import { systemClock, type Clock } from '../clock.js';

/** An address and port to answer on, over both UDP and TCP. */
export interface ListenAddress {
  /** IPv4 or IPv6 address to bind. */
  readonly address: string;
  /** Port; 0 picks a free one, the same for UDP and TCP (see `addresses()`). */
  readonly port: number;
}

/** Passed to `onResolved` after an allowed (or rewritten) answer that carries addresses. */
export interface ResolvedEvent {
  /** `ClientPolicy.client` of the asking VM. */
  readonly client: string;
  /** The name asked (lower-case, no trailing dot). */
  readonly name: string;
  readonly addresses: { readonly v4: readonly string[]; readonly v6: readonly string[] };
  /** Seconds the answer stays valid: use as the nftables set element timeout. */
  readonly ttl: number;
}

/** Passed to `onBlocked` for every query answered by policy instead of upstream. */
export interface BlockedEvent {
  readonly client: string;
  readonly clientIp: string;
  readonly name: string;
  /** Query type mnemonic (A, AAAA, HTTPS, …). */
  readonly type: string;
  readonly verdict: Verdict;
}

export interface DnsFilterOptions {
  /** Where to answer (UDP and TCP on each). At least one. */
  readonly listen: readonly ListenAddress[];
  /** Upstream resolvers, tried in order (see `UpstreamClient`). At least one. */
  readonly upstreams: readonly UpstreamServer[];
  /**
   * Who is asking: the policy of the VM with this source address, or undefined for an
   * unknown client (answered REFUSED). IPv4-mapped IPv6 addresses are passed as IPv4.
   * Called for every query: keep it a map lookup, and return the same object while the
   * VM's policy is unchanged (compiled policies are memoised per object).
   */
  readonly identify: (clientIp: string) => ClientPolicy | undefined;
  /** The block page: blocked names answer A with `v4`; AAAA with `v6` when set, else NODATA. */
  readonly blockPage: { readonly v4: string; readonly v6?: string };
  /** TTL of block answers and synthesised negative answers, in seconds. Default 10. */
  readonly blockTtl?: number;
  /** Lists loaded by `start()`. Default none; `loadLists()` replaces them later. */
  readonly lists?: readonly ListSource[];
  /** Limits for list files (line length, invalid-line threshold, file size). */
  readonly listParse?: ListParseOptions;
  /** SafeSearch endpoint overrides (e.g. a lab test host). */
  readonly safeSearchTargets?: Partial<SafeSearchTargets>;
  /** Cache size and TTL clamps. */
  readonly cache?: CacheOptions;
  /** Per-attempt upstream timeout, in ms. Default 2,000. */
  readonly upstreamTimeoutMs?: number;
  /** UDP sockets (random ports) towards upstream, per address family. Default 4. */
  readonly upstreamSockets?: number;
  /**
   * Datagrams read and answered per system call on IPv4 addresses (`recvmmsg` and
   * `sendmmsg`, see `BatchedUdpSocket`). Default 64; 0 answers through a plain `dgram`
   * socket, as IPv6 addresses always do.
   */
  readonly udpBatch?: number;
  /** Largest UDP answer we send to EDNS clients and advertise, in bytes. Default 1,232. */
  readonly udpSize?: number;
  /** Query log entries kept per client. Default 1,000; 0 disables the log. */
  readonly queryLogSize?: number;
  /**
   * TCP: `idleTimeoutMs` without a complete query before a connection is closed (a
   * trickle of bytes does not extend it; default 10,000); `maxLifetimeMs` a connection
   * lives at most, busy or not (default 60,000); `maxConnections` open at once (default
   * 256); `maxPendingWriteBytes` of answers the client has not read before the filter
   * stops reading its queries (default 65,536).
   */
  readonly tcp?: {
    readonly idleTimeoutMs?: number;
    readonly maxLifetimeMs?: number;
    readonly maxConnections?: number;
    readonly maxPendingWriteBytes?: number;
  };
  /**
   * Per-client limits (query rate, upstream look-ups waiting, TCP connections), so that
   * one guest's flood leaves the others' look-ups fast. Default: TCP 8 per client, no
   * rate or upstream limit.
   */
  readonly limits?: ClientLimitOptions;
  /**
   * DNS-rebinding protection: an upstream answer with an internal address (RFC 1918,
   * loopback, link-local, CGNAT, ULA … and `internal`) is answered NODATA, so that no
   * name leads a guest, an `accept` rule or an approved request to the LAN, another VM
   * or the appliance. On by default; `allowNames` exempts intranet names.
   */
  readonly rebinding?: RebindingOptions;
  /** Metrics registry. Default a private one. */
  readonly registry?: Registry;
  /** After each allowed answer with addresses (cache hits included). Called synchronously: keep it cheap. */
  readonly onResolved?: (event: ResolvedEvent) => void;
  /** After each query answered by policy (block, NXDOMAIN/NODATA by policy). */
  readonly onBlocked?: (event: BlockedEvent) => void;
  readonly logger?: Logger;
  /** Wall clock in ms since the epoch, for TTLs and the query log. Default Date.now. */
  readonly clock?: Clock;
}

/** Lists read and indexed by `prepareLists()`, not yet in force. */
export interface PreparedLists {
  readonly index: DomainIndex;
  readonly report: ListLoadReport;
}

/** What a successful `loadLists()` put in force. */
export interface ListLoadReport {
  readonly lists: readonly (IndexedList & {
    readonly files: readonly { file: string; lines: number; invalid: number }[];
  })[];
  /** Distinct domains over all lists. */
  readonly entries: number;
  /** Time to read, parse and index, in ms. */
  readonly ms: number;
}

export interface DnsFilterStatus {
  readonly running: boolean;
  readonly addresses: readonly ListenAddress[];
  readonly cacheEntries: number;
  readonly lists: readonly IndexedList[];
  readonly listEntries: number;
  readonly pendingUpstream: number;
  readonly tcpConnections: number;
}

/** The answer to a client with too many upstream look-ups waiting (SERVFAIL, logged at debug). */
const UPSTREAM_LIMITED = new PortcullisError(
  'DNS_UPSTREAM_FAILED',
  'this client has too many upstream look-ups waiting (limits.maxUpstream)',
);

/** The verdict for an answer DNS-rebinding protection drops: NODATA, no block page. */
const REBINDING: Verdict = { action: 'nodata' };

/** Reasons whose verdict on a CNAME target blocks the whole answer. */
const CNAME_BLOCKING = new Set(['category', 'service', 'custom', 'doh']);

type Reply = (out: Buffer) => void;

/** The UDP side of a listener: a batched socket or a plain one behind the same two calls. */
interface UdpListener {
  send(out: Buffer, ip: string, port: number): void;
  close(): Promise<void>;
}

interface Listener {
  readonly udp: UdpListener;
  readonly tcp: Server;
  readonly address: ListenAddress;
}

const normaliseIp = (ip: string): string =>
  ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;

/**
 * The DNS filter: answers guests over UDP and TCP, applies each VM's policy, forwards
 * allowed names upstream through a TTL-honouring cache, and reports learned addresses.
 * `start()` binds and loads the configured lists; `stop()` releases every socket and
 * timer. The constructor only assigns.
 */
export class DnsFilter {
  readonly #o: DnsFilterOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #metrics: DnsMetrics;
  readonly #limits: ClientLimits;
  readonly #rebinding: RebindingGuard;
  /** Whether a cached answer holds an internal address, worked out once per answer. */
  readonly #internal = new WeakMap<Prepared, boolean>();
  readonly #rebound: Counter;
  readonly #cache: DnsCache;
  readonly #queryLog: QueryLog;
  readonly #upstream: UpstreamClient;
  readonly #safeSearch: SafeSearch;
  readonly #inflight = new Map<string, Promise<Prepared>>();
  readonly #tcpSockets = new Set<TcpSocket>();
  readonly #blockTtl: number;
  readonly #udpSize: number;
  #matcher: NameMatcher;
  #listeners: Listener[] = [];
  #running = false;
  readonly #loading = new Serial();
  #blockV4: Buffer = Buffer.alloc(4);
  #blockV6: Buffer | undefined;
  #soa: Buffer = Buffer.alloc(0);

  constructor(options: DnsFilterOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    const registry = options.registry ?? new Registry();
    this.#metrics = new DnsMetrics(registry);
    this.#limits = new ClientLimits(options.limits ?? {}, registry, this.#clock);
    this.#rebinding = new RebindingGuard(options.rebinding);
    const rebound = 'portcullis_dns_rebinding_dropped_total';
    this.#rebound =
      (registry.getSingleMetric(rebound) as Counter | undefined) ??
      new Counter({
        name: rebound,
        help: 'Upstream answers with an internal address (LAN, loopback, private …) answered NODATA instead: DNS-rebinding protection',
        registers: [registry],
      });
    this.#cache = new DnsCache(options.cache?.maxEntries);
    this.#queryLog = new QueryLog(options.queryLogSize);
    this.#upstream = new UpstreamClient({
      servers: options.upstreams,
      timeoutMs: options.upstreamTimeoutMs,
      sockets: options.upstreamSockets,
    });
    this.#safeSearch = new SafeSearch(options.safeSearchTargets);
    this.#matcher = new NameMatcher(DomainIndex.empty(), this.#safeSearch);
    this.#blockTtl = options.blockTtl ?? 10;
    this.#udpSize = Math.max(UDP_CLASSIC, options.udpSize ?? 1_232);
  }

  /** Check options, load the configured lists, open upstream sockets, then bind every listen address. */
  async start(): Promise<void> {
    if (this.#running) return;
    const o = this.#o;
    if (o.listen.length === 0) {
      throw new PortcullisError(
        'CONFIG_INVALID',
        'DNS filter: no listen address; set at least one in listen',
      );
    }
    if (!isIPv4(o.blockPage.v4)) {
      throw new PortcullisError(
        'CONFIG_INVALID',
        `DNS filter: blockPage.v4 "${o.blockPage.v4}" is not an IPv4 address`,
      );
    }
    if (o.blockPage.v6 !== undefined && !isIPv6(o.blockPage.v6)) {
      throw new PortcullisError(
        'CONFIG_INVALID',
        `DNS filter: blockPage.v6 "${o.blockPage.v6}" is not an IPv6 address`,
      );
    }
    this.#blockV4 = ipv4Rdata(o.blockPage.v4);
    this.#blockV6 = o.blockPage.v6 === undefined ? undefined : ipv6Rdata(o.blockPage.v6);
    this.#soa = syntheticSoa(this.#blockTtl);
    if (o.lists !== undefined) await this.loadLists(o.lists);
    await this.#upstream.start();
    this.#running = true;
    try {
      for (const l of o.listen) this.#listeners.push(await this.#bind(l));
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#log.info({ listen: this.addresses(), upstreams: o.upstreams }, 'DNS filter listening');
  }

  /** Close listeners, TCP connections and upstream sockets; pending questions are dropped. */
  async stop(): Promise<void> {
    this.#running = false;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const s of this.#tcpSockets) s.destroy();
    this.#tcpSockets.clear();
    await Promise.all(
      listeners.flatMap((l) => [l.udp.close(), new Promise<void>((resolve) => l.tcp.close(() => resolve()))]),
    );
    await this.#upstream.stop();
    this.#inflight.clear();
  }

  /** The bound addresses (with the real port when 0 was asked). */
  addresses(): ListenAddress[] {
    return this.#listeners.map((l) => l.address);
  }

  status(): DnsFilterStatus {
    return {
      running: this.#running,
      addresses: this.addresses(),
      cacheEntries: this.#cache.size,
      lists: this.#matcher.index.lists,
      listEntries: this.#matcher.index.size,
      pendingUpstream: this.#upstream.pending,
      tcpConnections: this.#tcpSockets.size,
    };
  }

  /**
   * Load a complete set of lists and put it in force at once. Loads run one at a time.
   * On any error (`DNS_LIST_INVALID`, naming file and line) the lists in force stay.
   */
  loadLists(sources: readonly ListSource[]): Promise<ListLoadReport> {
    return this.#loading.run(async () => this.useLists(await this.#prepareLists(sources)));
  }

  /**
   * Read, parse and index a complete set of lists without putting it in force (a rule
   * bundle prepares its lists while the version in force still filters); {@link useLists}
   * then swaps it in at once. Throws like {@link loadLists}.
   */
  prepareLists(sources: readonly ListSource[]): Promise<PreparedLists> {
    return this.#loading.run(() => this.#prepareLists(sources));
  }

  /** Put lists from {@link prepareLists} in force: one assignment, no parsing. */
  useLists(prepared: PreparedLists): ListLoadReport {
    this.#matcher = new NameMatcher(prepared.index, this.#safeSearch);
    return prepared.report;
  }

  async #prepareLists(sources: readonly ListSource[]): Promise<PreparedLists> {
    const started = performance.now();
    try {
      const loaded = await loadListSources(sources, this.#o.listParse);
      const index = await DomainIndex.build(loaded);
      const report: ListLoadReport = {
        lists: index.lists.map((l, i) => ({
          ...l,
          files: (loaded[i]?.files ?? []).map((f) => ({ file: f.file, lines: f.lines, invalid: f.invalid })),
        })),
        entries: index.size,
        ms: performance.now() - started,
      };
      for (const l of loaded) {
        for (const f of l.files) {
          if (f.invalid > 0) {
            this.#log.warn(
              { file: f.file, invalid: f.invalid, samples: f.invalidSamples },
              'DNS list: invalid lines skipped',
            );
          }
        }
      }
      this.#log.info(
        { lists: index.lists.length, entries: index.size, ms: Math.round(report.ms) },
        'DNS lists loaded',
      );
      return { index, report };
    } catch (err) {
      this.#metrics.listLoadErrors.inc();
      this.#log.error({ err }, 'DNS lists rejected; the lists in force were kept');
      throw err;
    }
  }

  /** Policy names with no loaded list (they block nothing): for validation and warnings. */
  missingLists(policy: ClientPolicy): readonly string[] {
    return this.#matcher.missingLists(policy);
  }

  /** The verdict the filter would give now; for the API's "why is this blocked" and tests. */
  verdict(name: string, policy: ClientPolicy): Verdict {
    return this.#matcher.verdict(name.toLowerCase().replace(/\.$/, ''), policy);
  }

  /** Whether `name` belongs to the service list `service` (what puts its addresses into the service's sets). */
  inService(name: string, client: string, service: string): boolean {
    const v = this.verdict(name, { client, services: [service] });
    return v.reason?.kind === 'service' && v.reason.list === service;
  }

  /** The query log itself, to record into from outside (a test of the dashboard). */
  get queries(): QueryLog {
    return this.#queryLog;
  }

  /** A client's latest queries, newest first. */
  /** Queries of known clients answered since the start, all together. */
  totalQueries(): number {
    return this.#metrics.totalQueries();
  }

  queryLog(client: string, options: { limit?: number } = {}): QueryLogEntry[] {
    return this.#queryLog.get(client, options);
  }

  /** Drop every cached answer. */
  flushCache(): void {
    this.#cache.clear();
  }

  // ---- listeners ----

  async #bind(l: ListenAddress): Promise<Listener> {
    const family = isIPv6(l.address) ? 'udp6' : 'udp4';
    for (let attempt = 0; ; attempt++) {
      const tcp = createServer({ noDelay: true }, (sock) => this.#onTcp(sock));
      tcp.maxConnections = this.#o.tcp?.maxConnections ?? 256;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(
            { host: l.address, port: l.port, ipv6Only: family === 'udp6' && l.address !== '::' },
            () => {
              tcp.off('error', reject);
              resolve();
            },
          );
        });
      } catch (err) {
        throw new PortcullisError(
          'DNS_LISTEN_FAILED',
          `DNS filter: cannot listen on TCP ${l.address}:${l.port}: ${(err as Error).message}`,
          { cause: err, context: { ...l } },
        );
      }
      const port = (tcp.address() as AddressInfo).port;
      let udp: UdpListener;
      try {
        udp = await this.#bindUdp(family, l.address, port);
      } catch (err) {
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
        const code = (err as NodeJS.ErrnoException).code ?? (err as PortcullisError).context?.errno;
        if (l.port === 0 && attempt < 10 && (code === 'EADDRINUSE' || code === 98)) continue;
        throw isPortcullisError(err)
          ? err
          : new PortcullisError(
              'DNS_LISTEN_FAILED',
              `DNS filter: cannot listen on UDP ${l.address}:${port}: ${(err as Error).message}`,
              { cause: err, context: { ...l } },
            );
      }
      tcp.on('error', (err) => this.#log.warn({ err }, 'DNS filter: TCP server error'));
      return { udp, tcp, address: { address: l.address, port } };
    }
  }

  /** A batched socket for IPv4 where the machine allows it, else a plain dgram socket. */
  async #bindUdp(family: 'udp4' | 'udp6', address: string, port: number): Promise<UdpListener> {
    const batch = this.#o.udpBatch ?? 64;
    const onError = (err: Error): void => this.#log.warn({ err }, 'DNS filter: UDP socket error');
    if (family === 'udp4' && batch > 0 && BatchedUdpSocket.available()) {
      const sock = await BatchedUdpSocket.bind({
        address,
        port,
        batch,
        onError,
        onDrop: (direction, count) => this.#metrics.udpDropped(direction, count),
        onMessage: (msg, ip, from) => this.#onUdp(sock, msg, ip, from),
      });
      return sock;
    }
    const udp = createSocket({ type: family, ipv6Only: family === 'udp6' && address !== '::' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    try {
      udp.setRecvBufferSize(4 * 1024 * 1024);
      udp.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // capped by net.core.rmem_max / wmem_max; the default works too
    }
    const listener: UdpListener = {
      send: (out, ip, to) => udp.send(out, to, ip),
      close: () => new Promise<void>((resolve) => udp.close(() => resolve())),
    };
    udp.on('message', (msg, rinfo) => this.#onUdp(listener, msg, rinfo.address, rinfo.port));
    udp.on('error', onError);
    return listener;
  }

  #onUdp(sock: UdpListener, msg: Buffer, ip: string, port: number): void {
    // over its rate: dropped unanswered, before any work (counted)
    if (!this.#limits.query(ip)) return;
    const started = performance.now();
    this.#handle(msg, ip, false, (out) => {
      if (!this.#running) return;
      sock.send(out, ip, port);
      this.#metrics.duration.observe((performance.now() - started) / 1000);
    });
  }

  #onTcp(sock: TcpSocket): void {
    const ip = sock.remoteAddress;
    if (ip === undefined || !this.#running) {
      sock.destroy();
      return;
    }
    if (!this.#limits.tcpOpen(ip)) {
      sock.destroy();
      return;
    }
    this.#tcpSockets.add(sock);
    const tcp = this.#o.tcp;
    const maxPending = tcp?.maxPendingWriteBytes ?? 65_536;
    const idleMs = tcp?.idleTimeoutMs ?? 10_000;
    // an absolute deadline: a busy or trickling connection ends all the same
    const lifetime = setTimeout(() => {
      this.#limits.count('tcp_lifetime');
      sock.destroy();
    }, tcp?.maxLifetimeMs ?? 60_000);
    // reset by complete queries only, never by a byte that trickles in
    let buf: Buffer = Buffer.alloc(0);
    const onIdle = (): void => {
      // a query begun and never finished: a trickle (counted); else a plain idle close
      if (buf.length > 0) this.#limits.count('tcp_idle');
      sock.destroy();
    };
    let idle = setTimeout(onIdle, idleMs);
    let inflight = 0;
    // reading (and taking queries out of what was read) stops while 64 queries wait or
    // the client does not read its answers; it goes on when they are written
    const held = (): boolean => inflight >= 64 || sock.writableLength > maxPending;
    const pump = (): void => {
      while (buf.length >= 2 && !held() && !sock.destroyed) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        clearTimeout(idle);
        idle = setTimeout(onIdle, idleMs);
        if (!this.#limits.query(ip)) {
          // over its rate on TCP: the connection ends (counted)
          sock.destroy();
          return;
        }
        const started = performance.now();
        inflight++;
        const answered = this.#handle(msg, ip, true, (out) => {
          inflight--;
          if (!this.#running || sock.destroyed) return;
          const framed = Buffer.allocUnsafe(out.length + 2);
          framed.writeUInt16BE(out.length, 0);
          out.copy(framed, 2);
          sock.write(framed);
          this.#metrics.duration.observe((performance.now() - started) / 1000);
          if (sock.writableLength > 16 * maxPending) {
            // answers pile up unread even with reading stopped: give up on this client
            this.#limits.count('tcp_backpressure');
            sock.destroy();
            return;
          }
          flow();
        });
        if (!answered) {
          // not a query: on TCP the stream is out of step, so end it
          sock.destroy();
          return;
        }
      }
      if (held()) sock.pause();
      else if (buf.length < 2 + 65_535) sock.resume();
    };
    // a microtask later: an answer written synchronously does not re-enter pump
    let scheduled = false;
    const flow = (): void => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(() => {
        scheduled = false;
        pump();
      });
    };
    sock.on('drain', flow);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      pump();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clearTimeout(lifetime);
      clearTimeout(idle);
      this.#tcpSockets.delete(sock);
      this.#limits.tcpClose(ip);
    });
  }

  // ---- the request path ----

  /**
   * Answer one message. Returns false when it is dropped unanswered (too short for a
   * header, or a response); otherwise `reply` is called once, now or later.
   */
  #handle(raw: Buffer, ip: string, tcp: boolean, reply: Reply): boolean {
    const q = parseQuery(raw);
    if (q === undefined) {
      this.#metrics.query('dropped');
      return false;
    }
    if (q.rcode !== RCODE.NOERROR) {
      this.#error(raw, q, q.rcode, reply);
      return true;
    }
    const policy = this.#o.identify(normaliseIp(ip));
    if (policy === undefined) {
      this.#error(raw, q, RCODE.REFUSED, reply);
      return true;
    }
    if (q.qclass !== CLASS_IN) {
      this.#error(raw, q, RCODE.REFUSED, reply, policy);
      return true;
    }
    const maxSize = tcp ? 65_535 : q.ednsUdp > 0 ? Math.min(q.ednsUdp, this.#udpSize) : UDP_CLASSIC;
    const v = this.#matcher.verdict(q.name, policy);
    if (v.action === 'allow') this.#allowed(raw, q, ip, policy, v, maxSize, reply);
    else if (v.action === 'rewrite') this.#rewrite(raw, q, ip, policy, v, maxSize, reply);
    else this.#blocked(raw, q, ip, policy, v, maxSize, reply);
    return true;
  }

  #allowed(
    raw: Buffer,
    q: ParsedQuery,
    ip: string,
    policy: ClientPolicy,
    v: Verdict,
    maxSize: number,
    reply: Reply,
  ): void {
    const key = DnsCache.key(q.name, q.type);
    const now = this.#clock();
    const hit = this.#cache.get(key, now);
    if (hit !== undefined) {
      this.#metrics.cacheHit();
      this.#answer(raw, q, ip, policy, v, hit, now, maxSize, reply, true);
      return;
    }
    if (!this.#limits.upstreamStart(ip)) {
      this.#servfail(raw, q, policy, UPSTREAM_LIMITED, reply);
      return;
    }
    this.#resolve(q.name, q.type).then(
      (p) => {
        this.#limits.upstreamEnd(ip);
        this.#answer(raw, q, ip, policy, v, p, this.#clock(), maxSize, reply, false);
      },
      (err: unknown) => {
        this.#limits.upstreamEnd(ip);
        this.#servfail(raw, q, policy, err, reply);
      },
    );
  }

  #answer(
    raw: Buffer,
    q: ParsedQuery,
    ip: string,
    policy: ClientPolicy,
    v: Verdict,
    p: Prepared,
    now: number,
    maxSize: number,
    reply: Reply,
    cached: boolean,
  ): void {
    // a CNAME chain through a blocked name is blocked, unless the name itself is allowed by hand
    if (p.cnames.length > 0 && v.reason?.kind !== 'custom') {
      for (const target of p.cnames) {
        const cv = this.#matcher.verdict(target, policy);
        if (
          (cv.action === 'block' || cv.action === 'nxdomain') &&
          cv.reason !== undefined &&
          CNAME_BLOCKING.has(cv.reason.kind)
        ) {
          this.#blocked(raw, q, ip, policy, cv, maxSize, reply);
          return;
        }
      }
    }
    if (this.#rebinds(q.name, p)) {
      // an internet name pointing inside: answered without addresses, nothing learned
      this.#rebound.inc();
      this.#blocked(raw, q, ip, policy, REBINDING, maxSize, reply);
      return;
    }
    reply(serve(p, raw, q, now, this.#udpSize, maxSize));
    this.#metrics.query('allow');
    this.#learned(policy, q.name, p, now);
    // on a hit, log the cached (long-lived) copy of the name, not this query's fresh one
    this.#record(
      policy,
      q,
      p.scanned.name,
      'allow',
      v,
      p.answers,
      cached ? undefined : p.upstreamMs,
      cached,
      now,
    );
  }

  /** Whether answer `p` to `name` holds an internal address a guest must not get by name. */
  #rebinds(name: string, p: Prepared): boolean {
    if (p.v4.length === 0 && p.v6.length === 0) return false;
    let internal = this.#internal.get(p);
    if (internal === undefined) {
      internal = this.#rebinding.internal(p.v4, p.v6);
      this.#internal.set(p, internal);
    }
    return internal && !this.#rebinding.allowed(name);
  }

  #rewrite(
    raw: Buffer,
    q: ParsedQuery,
    ip: string,
    policy: ClientPolicy,
    v: Verdict,
    maxSize: number,
    reply: Reply,
  ): void {
    const target = v.target as string;
    const key = DnsCache.key(target, q.type);
    const now = this.#clock();
    const hit = this.#cache.get(key, now);
    const respond = (p: Prepared, at: number, cached: boolean): void => {
      const elapsed = Math.floor((at - p.storedAt) / 1000);
      const ttlAt = (i: number): number => Math.max(0, (p.ttls[i] as number) - elapsed);
      const answers: RecordData[] = [
        { type: TYPE.CNAME, ttl: Math.max(1, remainingTtl(p, at)), rdata: encodeName(target) },
      ];
      const authority: RecordData[] = [];
      p.scanned.records.forEach((r, i) => {
        if (r.section === 2) return;
        const d = decodeRecord(p.buf, r);
        if (d === undefined) return;
        (r.section === 0 ? answers : authority).push({ ...d, ttl: ttlAt(i) });
      });
      reply(buildResponse(raw, q, { rcode: p.rcode, answers, authority, udpSize: this.#udpSize, maxSize }));
      this.#metrics.query('rewrite');
      this.#learned(policy, q.name, p, at);
      this.#record(
        policy,
        q,
        q.name,
        'rewrite',
        v,
        [`CNAME ${target}`, ...p.answers],
        cached ? undefined : p.upstreamMs,
        cached,
        at,
      );
    };
    if (hit !== undefined) {
      this.#metrics.cacheHit();
      respond(hit, now, true);
      return;
    }
    if (!this.#limits.upstreamStart(ip)) {
      this.#servfail(raw, q, policy, UPSTREAM_LIMITED, reply);
      return;
    }
    this.#resolve(target, q.type).then(
      (p) => {
        this.#limits.upstreamEnd(ip);
        respond(p, this.#clock(), false);
      },
      (err: unknown) => {
        this.#limits.upstreamEnd(ip);
        this.#servfail(raw, q, policy, err, reply);
      },
    );
  }

  #blocked(
    raw: Buffer,
    q: ParsedQuery,
    ip: string,
    policy: ClientPolicy,
    v: Verdict,
    maxSize: number,
    reply: Reply,
  ): void {
    const ttl = this.#blockTtl;
    const answers: RecordData[] = [];
    if (v.action === 'block') {
      if (q.type === TYPE.A || q.type === TYPE.ANY) answers.push({ type: TYPE.A, ttl, rdata: this.#blockV4 });
      if ((q.type === TYPE.AAAA || q.type === TYPE.ANY) && this.#blockV6 !== undefined) {
        answers.push({ type: TYPE.AAAA, ttl, rdata: this.#blockV6 });
      }
    }
    const entry = v.reason?.entry;
    const soaOwner =
      entry !== undefined && (q.name === entry || q.name.endsWith(`.${entry}`)) ? entry : undefined;
    const authority: RecordData[] =
      answers.length > 0 ? [] : [{ name: soaOwner ?? q.name, type: TYPE.SOA, ttl, rdata: this.#soa }];
    const rcode = v.action === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR;
    reply(buildResponse(raw, q, { rcode, answers, authority, udpSize: this.#udpSize, maxSize }));
    const action: QueryAction = v.action === 'nxdomain' || v.action === 'nodata' ? v.action : 'block';
    this.#metrics.query(action);
    const now = this.#clock();
    const text =
      answers.length > 0
        ? answers.map((a) => (a.type === TYPE.A ? this.#o.blockPage.v4 : (this.#o.blockPage.v6 ?? '')))
        : [rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'NODATA'];
    this.#record(policy, q, q.name, action, v, text, undefined, false, now);
    const hook = this.#o.onBlocked;
    if (hook !== undefined) {
      try {
        hook({
          client: policy.client,
          clientIp: normaliseIp(ip),
          name: q.name,
          type: typeName(q.type),
          verdict: v,
        });
      } catch (err) {
        this.#log.warn({ err }, 'DNS filter: onBlocked hook threw');
      }
    }
  }

  #error(raw: Buffer, q: ParsedQuery, rcode: number, reply: Reply, policy?: ClientPolicy): void {
    reply(buildResponse(raw, q, { rcode, udpSize: this.#udpSize, maxSize: 65_535 }));
    const action: CountedAction =
      rcode === RCODE.FORMERR
        ? 'formerr'
        : rcode === RCODE.NOTIMP
          ? 'notimp'
          : rcode === RCODE.REFUSED
            ? 'refused'
            : 'servfail';
    this.#metrics.query(action);
    if (policy !== undefined)
      this.#record(policy, q, q.name, action, undefined, [], undefined, false, this.#clock());
  }

  #servfail(raw: Buffer, q: ParsedQuery, policy: ClientPolicy, err: unknown, reply: Reply): void {
    if (!this.#running) return;
    if (!isPortcullisError(err, 'DNS_UPSTREAM_FAILED'))
      this.#log.error({ err }, 'DNS filter: unexpected error resolving');
    else this.#log.debug({ err: err.message }, 'DNS filter: upstream failed');
    reply(buildResponse(raw, q, { rcode: RCODE.SERVFAIL, udpSize: this.#udpSize, maxSize: 65_535 }));
    this.#metrics.query('servfail');
    this.#record(policy, q, q.name, 'servfail', undefined, [], undefined, false, this.#clock());
  }

  /** Ask upstream once per name/type at a time; the answer is cached and shared by every waiting query. */
  #resolve(name: string, type: number): Promise<Prepared> {
    const key = DnsCache.key(name, type);
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const onError = (): void => this.#metrics.upstreamError();
    const pr = this.#upstream
      .query(name, type, onError)
      .then((a) => {
        const p = prepare(a.buf, this.#clock(), this.#o.cache ?? {}, a.server, a.ms);
        if (p === undefined) {
          this.#metrics.upstreamError();
          throw new PortcullisError(
            'DNS_UPSTREAM_FAILED',
            `upstream ${a.server} sent a malformed answer for ${name} ${typeName(type)}`,
          );
        }
        this.#cache.set(key, p);
        return p;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, pr);
    return pr;
  }

  #learned(policy: ClientPolicy, name: string, p: Prepared, now: number): void {
    const hook = this.#o.onResolved;
    if (hook === undefined || (p.v4.length === 0 && p.v6.length === 0)) return;
    try {
      hook({ client: policy.client, name, addresses: { v4: p.v4, v6: p.v6 }, ttl: remainingTtl(p, now) });
    } catch (err) {
      this.#log.warn({ err }, 'DNS filter: onResolved hook threw');
    }
  }

  #record(
    policy: ClientPolicy,
    q: ParsedQuery,
    name: string,
    action: QueryAction,
    v: Verdict | undefined,
    answers: readonly string[],
    upstreamMs: number | undefined,
    cached: boolean,
    now: number,
  ): void {
    this.#metrics.clientQuery(policy.client);
    if (this.#queryLog.size === 0) return;
    this.#queryLog.record(
      policy.client,
      now,
      name,
      typeName(q.type),
      action,
      v?.reason,
      answers,
      upstreamMs,
      cached,
    );
  }
}
