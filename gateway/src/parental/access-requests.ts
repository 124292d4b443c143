import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { AccessRequestRepository } from '../store/records.js';
import type { AuditInput, AccessRequest } from '../store/types.js';
import { TokenBuckets } from '../util/rate.js';

/** How many requests a VM may make, whichever way it asks (API or block page). */
export interface AccessRequestLimits {
  /** Pending requests one VM may have; more are refused until a parent decides. Default 20. */
  readonly maxPending?: number;
  /** New requests one VM may make per hour, on average. Default 30. */
  readonly perHour?: number;
  /** New requests one VM may make in a row before the hourly rate applies. Default 5. */
  readonly burst?: number;
}

/** Why a request was not recorded; the label of `portcullis_access_requests_total{result}`. */
export type AccessRequestRejection = 'invalid' | 'pending_cap' | 'rate_limited' | 'csrf';

/** Options of {@link AccessRequestIntake}. */
export interface AccessRequestIntakeOptions {
  readonly store: {
    readonly accessRequests: Pick<AccessRequestRepository, 'pendingFor' | 'create'>;
    record(entry: AuditInput): unknown;
  };
  /** Where `portcullis_access_requests_total{result}` is registered. */
  readonly registry: Registry;
  readonly limits?: AccessRequestLimits;
  /** Default {@link systemClock}. */
  readonly now?: Clock;
  readonly log?: Logger;
}

/** What a guest gives: the domain, or the URL that was blocked (its host is the domain). */
export interface AccessRequestAsk {
  readonly domain?: string | undefined;
  readonly url?: string | undefined;
  readonly reason?: string | undefined;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$/;
/** A limited VM is audited at most this often (the counter sees every rejection). */
const AUDIT_EVERY_MS = 10 * 60_000;
const METRIC = 'portcullis_access_requests_total';

/**
 * The domain a request asks for: lower case, no trailing dot, at least two labels, no
 * wildcard and no address (an address is not something to approve).
 * @throws REQUEST_INVALID naming `/body/domain` or `/body/url`.
 */
export function requestedDomain(ask: AccessRequestAsk): string {
  if (ask.domain !== undefined) {
    const d = ask.domain.toLowerCase().replace(/\.$/, '');
    if (!isDomain(d)) {
      throw new PortcullisError(
        'REQUEST_INVALID',
        `"${ask.domain.slice(0, 80)}" is not a domain name (like games.example; no wildcard, no address)`,
        { path: '/body/domain' },
      );
    }
    return d;
  }
  if (ask.url === undefined) {
    throw new PortcullisError('REQUEST_INVALID', 'give the domain or the URL that was blocked', {
      path: '/body/domain',
    });
  }
  let host: string;
  try {
    host = new URL(ask.url).hostname.replace(/\.$/, '');
  } catch {
    throw new PortcullisError('REQUEST_INVALID', `"${ask.url.slice(0, 80)}" is not a URL`, {
      path: '/body/url',
    });
  }
  if (!isDomain(host)) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      `"${ask.url.slice(0, 80)}" has no domain name (an address is not something to approve)`,
      { path: '/body/url' },
    );
  }
  return host;
}

function isDomain(d: string): boolean {
  if (d.length === 0 || d.length > 253) return false;
  const labels = d.split('.');
  if (labels.length < 2) return false;
  if (/^[0-9]+$/.test(labels.at(-1)!)) return false; // an IPv4 address, or a numeric TLD
  return labels.every((l) => LABEL.test(l));
}

/**
 * The one way an access request is recorded, for the API and the block page alike:
 * a valid domain, one pending request per VM and domain (asking again answers the
 * existing one), at most `maxPending` pending per VM, and a per-VM rate limit on new
 * requests. Every outcome is counted in `portcullis_access_requests_total{result}`;
 * a VM that hits a limit is audited (`access-request.limited`) at most once per 10
 * minutes, so that a flood cannot flood the audit log either.
 */
export class AccessRequestIntake {
  readonly #o: AccessRequestIntakeOptions;
  readonly #now: Clock;
  readonly #log: Logger;
  readonly #maxPending: number;
  readonly #buckets: TokenBuckets;
  readonly #counter: Counter<'result'>;
  readonly #audited = new Map<string, number>();

  constructor(options: AccessRequestIntakeOptions) {
    this.#o = options;
    this.#now = options.now ?? systemClock;
    this.#log = options.log ?? silentLogger;
    this.#maxPending = options.limits?.maxPending ?? 20;
    this.#buckets = new TokenBuckets({
      ratePerSecond: (options.limits?.perHour ?? 30) / 3600,
      burst: options.limits?.burst ?? 5,
      now: this.#now,
    });
    this.#counter = accessRequestCounter(options.registry);
  }

  /**
   * Record what `vm` asks for, or answer its pending request for the same domain.
   * The caller has checked that `vm` exists.
   * @throws REQUEST_INVALID (not a domain), CONFLICT (too many pending), RATE_LIMITED.
   */
  submit(vm: string, ask: AccessRequestAsk, actor: string): { request: AccessRequest; created: boolean } {
    let domain: string;
    try {
      domain = requestedDomain(ask);
    } catch (err) {
      this.reject(vm, 'invalid');
      throw err;
    }
    const pending = this.#o.store.accessRequests.pendingFor(vm);
    const same = pending.find((r) => r.domain === domain);
    if (same) {
      this.#counter.inc({ result: 'existing' });
      return { request: same, created: false };
    }
    if (pending.length >= this.#maxPending) {
      this.reject(vm, 'pending_cap', domain);
      throw new PortcullisError(
        'CONFLICT',
        `VM "${vm}" has ${pending.length} requests pending; wait for a decision`,
        { path: '/body/vm' },
      );
    }
    if (!this.#buckets.take(vm)) {
      this.reject(vm, 'rate_limited', domain);
      throw new PortcullisError('RATE_LIMITED', `VM "${vm}" asked too often; try again later`, {
        path: '/body/vm',
      });
    }
    const request = this.#o.store.accessRequests.create(
      { vm, domain, url: ask.url?.slice(0, 2048), reason: ask.reason?.slice(0, 500) },
      actor,
    );
    this.#counter.inc({ result: 'created' });
    return { request, created: true };
  }

  /** Count a rejection (the block page's CSRF check calls this too); audit limits, sparingly. */
  reject(vm: string, why: AccessRequestRejection, domain?: string): void {
    this.#counter.inc({ result: why });
    this.#log.debug({ vm, why, domain }, 'access request refused');
    if (why !== 'pending_cap' && why !== 'rate_limited') return;
    const now = this.#now();
    const last = this.#audited.get(vm);
    if (last !== undefined && now - last < AUDIT_EVERY_MS) return;
    this.#audited.set(vm, now);
    try {
      this.#o.store.record({
        actor: `guest:${vm}`,
        action: 'access-request.limited',
        target: `vm/${vm}`,
        reason: why === 'pending_cap' ? `more than ${this.#maxPending} requests pending` : 'asked too often',
        after: { domain, limit: why },
      });
    } catch (err) {
      this.#log.warn({ err, vm }, 'could not audit an access request limit');
    }
  }
}

/** The counter of access request outcomes; created once per registry. */
export function accessRequestCounter(registry: Registry): Counter<'result'> {
  const existing = registry.getSingleMetric(METRIC);
  if (existing) return existing as Counter<'result'>;
  return new Counter({
    name: METRIC,
    help: 'Access requests by outcome: created, existing (asked again), invalid, pending_cap, rate_limited, csrf',
    labelNames: ['result'],
    registers: [registry],
  });
}

/** Options of {@link PageTokens}. */
export interface PageTokenOptions {
  /** HMAC key; default 32 random bytes (tokens do not survive a restart, pages are reloaded). */
  readonly secret?: Buffer;
  /** How long a page's token is good for, in ms. Default 1 hour. */
  readonly maxAgeMs?: number;
  readonly now?: Clock;
}

/**
 * CSRF tokens tied to the block page that was shown: an HMAC over the VM, the domain
 * and the time the page was made. A form posted from anywhere else (another site, a
 * script that never loaded the page, another VM) has no valid token.
 */
export class PageTokens {
  readonly #secret: Buffer;
  readonly #maxAge: number;
  readonly #now: Clock;

  constructor(options: PageTokenOptions = {}) {
    this.#secret = options.secret ?? randomBytes(32);
    this.#maxAge = options.maxAgeMs ?? 3_600_000;
    this.#now = options.now ?? systemClock;
  }

  /** The token for a page shown to `vm` about `domain`. */
  issue(vm: string, domain: string): string {
    const at = Math.floor(this.#now() / 1000).toString(36);
    return `${at}.${this.#mac(vm, domain, at)}`;
  }

  /** Whether `token` was issued for this VM and domain, and is not older than the maximum age. */
  check(token: string | null | undefined, vm: string, domain: string): boolean {
    if (typeof token !== 'string' || token.length > 64) return false;
    const [at, mac] = token.split('.');
    if (at === undefined || mac === undefined || !/^[0-9a-z]{1,12}$/.test(at)) return false;
    const age = this.#now() - parseInt(at, 36) * 1000;
    if (age < -60_000 || age > this.#maxAge) return false;
    const want = Buffer.from(this.#mac(vm, domain, at));
    const got = Buffer.from(mac);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  #mac(vm: string, domain: string, at: string): string {
    return createHmac('sha256', this.#secret)
      .update(`${vm}\0${domain}\0${at}`)
      .digest('base64url')
      .slice(0, 32);
  }
}
