import type { VerdictReason } from './model.js';

/** What happened to one query. Verdict actions plus the error answers. */
export type QueryAction =
  'allow' | 'block' | 'rewrite' | 'nxdomain' | 'nodata' | 'refused' | 'servfail' | 'formerr' | 'notimp';

/** One query in the log. */
export interface QueryLogEntry {
  /** When it was answered, ms since the epoch. */
  readonly time: number;
  readonly client: string;
  /** Lower-case, without the trailing dot. */
  readonly name: string;
  /** Query type mnemonic: A, AAAA, HTTPS, TYPE123, … */
  readonly type: string;
  readonly action: QueryAction;
  readonly reason?: VerdictReason;
  /** Short text of the answer: addresses, `CNAME target`, NXDOMAIN/NODATA. */
  readonly answers: readonly string[];
  /** Time spent waiting for upstream, in ms; absent when served from cache or synthesised. */
  readonly upstreamMs?: number;
  /** Served from the cache. */
  readonly cached: boolean;
}

/** Every query action, in the order the log stores them by index. */
export const QUERY_ACTIONS: readonly QueryAction[] = [
  'allow',
  'block',
  'rewrite',
  'nxdomain',
  'nodata',
  'refused',
  'servfail',
  'formerr',
  'notimp',
];
const ACTION_INDEX = Object.fromEntries(QUERY_ACTIONS.map((a, i) => [a, i])) as Record<QueryAction, number>;

/**
 * One client's ring, stored by column: adding an entry allocates nothing, and entries
 * become objects only when read. (An object per query, kept until overwritten, is what
 * made the log the most expensive step on the cached-answer path.)
 */
class Ring {
  readonly #time: Float64Array;
  readonly #upstreamMs: Float64Array;
  readonly #action: Uint8Array;
  readonly #cached: Uint8Array;
  readonly #name: string[];
  readonly #type: string[];
  readonly #reason: (VerdictReason | undefined)[];
  readonly #answers: (readonly string[])[];
  readonly #size: number;
  #next = 0;
  #count = 0;

  constructor(size: number) {
    this.#size = size;
    this.#time = new Float64Array(size);
    this.#upstreamMs = new Float64Array(size);
    this.#action = new Uint8Array(size);
    this.#cached = new Uint8Array(size);
    this.#name = new Array<string>(size).fill('');
    this.#type = new Array<string>(size).fill('');
    this.#reason = new Array<VerdictReason | undefined>(size).fill(undefined);
    this.#answers = new Array<readonly string[]>(size).fill(NONE);
  }

  push(
    time: number,
    name: string,
    type: string,
    action: QueryAction,
    reason: VerdictReason | undefined,
    answers: readonly string[],
    upstreamMs: number | undefined,
    cached: boolean,
  ): void {
    const i = this.#next;
    this.#time[i] = time;
    this.#name[i] = name;
    this.#type[i] = type;
    this.#action[i] = ACTION_INDEX[action];
    this.#reason[i] = reason;
    this.#answers[i] = answers;
    this.#upstreamMs[i] = upstreamMs ?? -1;
    this.#cached[i] = cached ? 1 : 0;
    this.#next = i + 1 === this.#size ? 0 : i + 1;
    if (this.#count < this.#size) this.#count++;
  }

  /** Newest first. */
  latest(client: string, limit: number): QueryLogEntry[] {
    const out: QueryLogEntry[] = [];
    for (let k = 0; k < Math.min(limit, this.#count); k++) {
      const i = (this.#next - 1 - k + this.#size * 2) % this.#size;
      const ms = this.#upstreamMs[i] as number;
      const reason = this.#reason[i];
      out.push({
        time: this.#time[i] as number,
        client,
        name: this.#name[i] as string,
        type: this.#type[i] as string,
        action: QUERY_ACTIONS[this.#action[i] as number] as QueryAction,
        ...(reason === undefined ? {} : { reason }),
        answers: this.#answers[i] as readonly string[],
        ...(ms < 0 ? {} : { upstreamMs: ms }),
        cached: this.#cached[i] === 1,
      });
    }
    return out;
  }
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * Per-client query logs: one ring buffer per client, so a chatty VM cannot push another
 * VM's entries out. Memory is bounded by `size × maxClients` entries.
 */
export class QueryLog {
  readonly size: number;
  readonly maxClients: number;
  readonly #rings = new Map<string, Ring>();

  /**
   * @param size entries kept per client (default 1,000; 0 disables the log).
   * @param maxClients clients tracked; the least recently added client's log is dropped beyond it (default 4,096).
   */
  constructor(size = 1_000, maxClients = 4_096) {
    this.size = Math.max(0, Math.floor(size));
    this.maxClients = Math.max(1, maxClients);
  }

  add(e: QueryLogEntry): void {
    this.record(e.client, e.time, e.name, e.type, e.action, e.reason, e.answers, e.upstreamMs, e.cached);
  }

  /** `add` without building an entry object: the request path's way in. */
  record(
    client: string,
    time: number,
    name: string,
    type: string,
    action: QueryAction,
    reason: VerdictReason | undefined,
    answers: readonly string[],
    upstreamMs: number | undefined,
    cached: boolean,
  ): void {
    if (this.size === 0) return;
    let ring = this.#rings.get(client);
    if (ring === undefined) {
      ring = new Ring(this.size);
      this.#rings.set(client, ring);
      if (this.#rings.size > this.maxClients) {
        const first = this.#rings.keys().next();
        if (first.done !== true) this.#rings.delete(first.value);
      }
    }
    ring.push(time, name, type, action, reason, answers, upstreamMs, cached);
  }

  /** The client's latest entries, newest first. `limit` defaults to the ring size. */
  get(client: string, options: { limit?: number } = {}): QueryLogEntry[] {
    return this.#rings.get(client)?.latest(client, Math.max(0, options.limit ?? this.size)) ?? [];
  }

  /** Forget a client's log (e.g. when the VM is removed). */
  forget(client: string): void {
    this.#rings.delete(client);
  }
}
