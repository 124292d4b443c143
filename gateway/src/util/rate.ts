import type { Clock } from '../clock.js';

/** Settings of a {@link TokenBuckets}. */
export interface TokenBucketOptions {
  /** Tokens added per second, > 0. */
  readonly ratePerSecond: number;
  /** Most tokens a key can save up (the burst), >= 1. */
  readonly burst: number;
  /**
   * Most keys tracked at once; beyond, the key seen least recently is forgotten (it
   * starts again with a full bucket). Default 10,000: bounds memory against a flood of
   * new keys.
   */
  readonly maxKeys?: number;
  readonly now: Clock;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * One token bucket per key (a VM, a client address): `take(key)` spends a token when
 * there is one. Pure logic over the injected clock; memory bounded by `maxKeys`.
 */
export class TokenBuckets {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #now: Clock;
  /** Insertion order = recency order (a key is re-inserted when used). */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: TokenBucketOptions) {
    this.#rate = options.ratePerSecond / 1000;
    this.#burst = options.burst;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now;
  }

  /** Spend `cost` tokens of `key` (default 1); false, and nothing spent, when it has fewer. */
  take(key: string, cost = 1): boolean {
    const now = this.#now();
    const b = this.#buckets.get(key);
    let tokens = this.#burst;
    if (b) {
      tokens = Math.min(this.#burst, b.tokens + Math.max(0, now - b.at) * this.#rate);
      this.#buckets.delete(key);
    } else if (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    const ok = tokens >= cost;
    this.#buckets.set(key, { tokens: ok ? tokens - cost : tokens, at: now });
    return ok;
  }

  /** How many keys are tracked now. */
  get size(): number {
    return this.#buckets.size;
  }
}
