import type { Clock } from '../clock.js';

/**
 * Failed attempts per key (a user name) in a fixed window: after `max` failures the
 * key is refused until its window ends. Pure apart from the clock; bounded to
 * `maxKeys` keys (the oldest windows go first), so guessing names cannot fill memory.
 */
export class FailureLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: Clock;
  readonly #windows = new Map<string, { start: number; failures: number }>();

  /**
   * @param options.max failures allowed per window, at least 1
   * @param options.windowMs window length in ms
   * @param options.maxKeys keys kept at most; default 10 000
   */
  constructor(options: { max: number; windowMs: number; maxKeys?: number; now: Clock }) {
    this.#max = Math.max(1, options.max);
    this.#windowMs = options.windowMs;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now;
  }

  /** Seconds until `key` may try again; 0 when it may now. */
  retryAfter(key: string): number {
    const w = this.#live(key);
    if (!w || w.failures < this.#max) return 0;
    return Math.max(1, Math.ceil((w.start + this.#windowMs - this.#now()) / 1000));
  }

  /** Count a failure of `key`. */
  fail(key: string): void {
    const w = this.#live(key);
    if (w) {
      w.failures++;
      return;
    }
    if (this.#windows.size >= this.#maxKeys) {
      const oldest = this.#windows.keys().next();
      if (!oldest.done) this.#windows.delete(oldest.value);
    }
    this.#windows.set(key, { start: this.#now(), failures: 1 });
  }

  /** Forget `key`'s failures (after a successful login). */
  reset(key: string): void {
    this.#windows.delete(key);
  }

  #live(key: string): { start: number; failures: number } | undefined {
    const w = this.#windows.get(key);
    if (w && this.#now() - w.start >= this.#windowMs) {
      this.#windows.delete(key);
      return undefined;
    }
    return w;
  }
}
