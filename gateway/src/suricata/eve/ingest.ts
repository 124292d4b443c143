import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import type { EveMetrics } from './metrics.js';
import { parseEveLine, type EveParseError, type EveParseReason } from './parse.js';
import type { EveEvent } from './types.js';

/**
 * Between the EVE readers and the consumer: a bounded queue of lines, parsed and handed
 * to the consumer one at a time. Suricata must never wait on the gateway (inline IPS:
 * a stalled EVE writer stalls packets), so when the consumer falls behind and the queue
 * is full, new lines are shed and counted instead of buffered without bound.
 * Malformed lines and shedding are logged once per burst, not once per line.
 */

/** What readers deliver lines to. */
export interface LineSink {
  /** A complete line from Suricata. */
  pushLine(line: string): void;
  /** A line the reader dropped before parsing (too long, cut off by the end of the stream). */
  reject(error: EveParseError): void;
}

/** The consumer: may be synchronous, or return a promise to slow the queue down. */
export type EveHandler = (event: EveEvent) => void | Promise<void>;

export interface EveIngestOptions {
  /** Called with every parsed event, in order; the next waits for a returned promise. */
  readonly handler: EveHandler;
  /** Most lines waiting for the consumer; more are shed. Default 10,000; at least 1. */
  readonly capacity?: number;
  /** Lines handled per turn of the event loop before yielding to I/O. Default 256. */
  readonly batch?: number;
  /** A burst of malformed lines or of shedding is reported once per this window, in ms. Default 10,000. */
  readonly burstMs?: number;
  readonly log?: Logger;
  readonly metrics?: EveMetrics;
  /** Called with every rejected line (after counting), e.g. for a debug tap. */
  readonly onReject?: (error: EveParseError) => void;
}

export interface EveIngestStats {
  /** Lines offered by the readers. */
  readonly received: number;
  /** Lines parsed into events and handed to the consumer. */
  readonly events: number;
  /** Lines rejected (by a reader or the parser), by reason. */
  readonly malformed: number;
  readonly malformedByReason: Readonly<Partial<Record<EveParseReason, number>>>;
  /** Lines dropped because the queue was full. */
  readonly shed: number;
  /** Events whose handler threw or rejected. */
  readonly handlerErrors: number;
  /** Lines waiting now. */
  readonly queued: number;
}

/** A fixed-capacity FIFO; O(1) push and shift, no reallocation. */
class Ring<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** False when full. */
  push(item: T): boolean {
    const cap = this.#items.length;
    if (this.#size === cap) return false;
    this.#items[(this.#head + this.#size) % cap] = item;
    this.#size += 1;
    return true;
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size -= 1;
    return item;
  }

  clear(): void {
    this.#items.fill(undefined);
    this.#head = 0;
    this.#size = 0;
  }
}

/**
 * Reports the first occurrence of a burst at once and a count at the end of its window:
 * at most two log lines per window however many occurrences.
 */
export class BurstReporter<T> {
  readonly #windowMs: number;
  readonly #first: (item: T) => void;
  readonly #summary: (count: number) => void;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param windowMs length of a burst window, in ms.
   * @param first called with the first occurrence of a burst.
   * @param summary called at the end of a window with the number of occurrences, when more than one.
   */
  constructor(windowMs: number, first: (item: T) => void, summary: (count: number) => void) {
    this.#windowMs = windowMs;
    this.#first = first;
    this.#summary = summary;
  }

  /** One occurrence: reported at once when it opens a window, else only counted. */
  hit(item: T): void {
    this.#count += 1;
    if (this.#count > 1) return;
    this.#first(item);
    this.#timer = setTimeout(() => this.#close(), this.#windowMs);
    this.#timer.unref();
  }

  /** End the current window now (reports its count). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#close();
  }

  #close(): void {
    this.#timer = undefined;
    const n = this.#count;
    this.#count = 0;
    if (n > 1) this.#summary(n);
  }
}

export class EveIngest implements LineSink {
  readonly #handler: EveHandler;
  readonly #batch: number;
  readonly #queue: Ring<string>;
  readonly #metrics: EveMetrics | undefined;
  readonly #onReject: ((error: EveParseError) => void) | undefined;
  readonly #malformedBurst: BurstReporter<EveParseError>;
  readonly #shedBurst: BurstReporter<number>;
  readonly #handlerBurst: BurstReporter<unknown>;
  #received = 0;
  #events = 0;
  #malformed = 0;
  readonly #byReason: Partial<Record<EveParseReason, number>> = {};
  #shed = 0;
  #handlerErrors = 0;
  #draining = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: EveIngestOptions) {
    const log = options.log ?? silentLogger;
    const burstMs = options.burstMs ?? 10_000;
    this.#handler = options.handler;
    this.#batch = Math.max(1, options.batch ?? 256);
    this.#queue = new Ring(Math.max(1, options.capacity ?? 10_000));
    this.#metrics = options.metrics;
    this.#onReject = options.onReject;
    this.#malformedBurst = new BurstReporter<EveParseError>(
      burstMs,
      (e) =>
        log.warn({ reason: e.reason, path: e.path, sample: e.sample }, `malformed EVE line: ${e.message}`),
      (n) => log.warn({ count: n, windowMs: burstMs }, `${n} malformed EVE lines in this burst`),
    );
    this.#shedBurst = new BurstReporter<number>(
      burstMs,
      (queued) => log.warn({ queued }, 'EVE consumer too slow: queue full, shedding events'),
      (n) => log.warn({ count: n, windowMs: burstMs }, `${n} EVE events shed in this burst`),
    );
    this.#handlerBurst = new BurstReporter<unknown>(
      burstMs,
      (err) => log.error({ err }, 'EVE event handler failed'),
      (n) => log.error({ count: n, windowMs: burstMs }, `EVE event handler failed ${n} times in this burst`),
    );
  }

  /** Queue a line for parsing; shed (and counted) when the queue is full. */
  pushLine(line: string): void {
    if (this.#closed) return;
    this.#received += 1;
    if (!this.#queue.push(line)) {
      this.#shed += 1;
      this.#metrics?.shed();
      this.#shedBurst.hit(this.#queue.size);
      return;
    }
    if (!this.#draining) {
      this.#draining = true;
      setImmediate(() => void this.#drain());
    }
  }

  /** Count a line a reader dropped before parsing. */
  reject(error: EveParseError): void {
    this.#received += 1;
    this.#countMalformed(error);
  }

  /** Counters since construction. */
  stats(): EveIngestStats {
    return {
      received: this.#received,
      events: this.#events,
      malformed: this.#malformed,
      malformedByReason: { ...this.#byReason },
      shed: this.#shed,
      handlerErrors: this.#handlerErrors,
      queued: this.#queue.size,
    };
  }

  /** Resolves once every queued line has been handled. */
  idle(): Promise<void> {
    if (!this.#draining && this.#queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stop taking lines. With `drain` (default) the queued lines are handled first;
   * without, they are dropped (and counted as shed). Flushes the burst reports.
   */
  async close(drain = true): Promise<void> {
    this.#closed = true;
    if (!drain) {
      this.#shed += this.#queue.size;
      this.#queue.clear();
    }
    await this.idle();
    this.#malformedBurst.flush();
    this.#shedBurst.flush();
    this.#handlerBurst.flush();
  }

  #countMalformed(error: EveParseError): void {
    this.#malformed += 1;
    this.#byReason[error.reason] = (this.#byReason[error.reason] ?? 0) + 1;
    this.#metrics?.malformed(error.reason);
    this.#malformedBurst.hit(error);
    this.#onReject?.(error);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.size > 0) {
        for (let n = 0; n < this.#batch; n++) {
          const line = this.#queue.shift();
          if (line === undefined) break;
          const result = parseEveLine(line);
          if (!result.ok) {
            this.#countMalformed(result.error);
            continue;
          }
          this.#events += 1;
          try {
            const pending = this.#handler(result.event);
            if (pending !== undefined) await pending;
          } catch (err) {
            this.#handlerErrors += 1;
            this.#handlerBurst.hit(err);
          }
        }
        // Let sockets and file reads in before the next batch.
        if (this.#queue.size > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#draining = false;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
