import { systemClock, type Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Store } from './store.js';

/** How long access requests and audit entries are kept. */
export interface RetentionSettings {
  /** Days an access request is kept (approvals in force are kept regardless). Default 90. */
  readonly accessRequestDays?: number;
  /** Most access requests kept. Default 5,000. */
  readonly accessRequestMax?: number;
  /** Days an audit entry is kept. Default 365. */
  readonly auditDays?: number;
  /** Most audit entries kept. Default 200,000. */
  readonly auditMax?: number;
}

const DAY = 86_400_000;

/**
 * Trims old access requests and audit entries by age and count, at start and every
 * `everyMs` (default one hour). A trim that deleted anything is itself audited
 * (`retention.trim`), so the log says where its history ends and why.
 */
export class RetentionJob {
  readonly #store: Pick<Store, 'accessRequests' | 'audit' | 'record'>;
  readonly #s: Required<RetentionSettings>;
  readonly #every: number;
  readonly #now: Clock;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: {
    readonly store: Pick<Store, 'accessRequests' | 'audit' | 'record'>;
    readonly settings?: RetentionSettings;
    readonly everyMs?: number;
    readonly now?: Clock;
    readonly log?: Logger;
  }) {
    this.#store = options.store;
    const s = options.settings ?? {};
    this.#s = {
      accessRequestDays: s.accessRequestDays ?? 90,
      accessRequestMax: s.accessRequestMax ?? 5000,
      auditDays: s.auditDays ?? 365,
      auditMax: s.auditMax ?? 200_000,
    };
    this.#every = options.everyMs ?? 3_600_000;
    this.#now = options.now ?? systemClock;
    this.#log = options.log ?? silentLogger;
  }

  /** Trim once now, then every `everyMs`. */
  start(): void {
    this.run();
    this.#timer = setInterval(() => this.run(), this.#every);
    this.#timer.unref();
  }

  /** Trim once; returns how many requests and audit entries were deleted. */
  run(): { accessRequests: number; audit: number } {
    const now = this.#now();
    const iso = (days: number): string => new Date(now - days * DAY).toISOString();
    try {
      const accessRequests = this.#store.accessRequests.trim(
        iso(this.#s.accessRequestDays),
        this.#s.accessRequestMax,
      );
      // one slot for the entry that records this trim
      const audit = this.#store.audit.trim(iso(this.#s.auditDays), this.#s.auditMax - 1);
      if (accessRequests + audit > 0) {
        this.#store.record({
          actor: 'retention',
          action: 'retention.trim',
          target: 'store',
          after: { accessRequests, audit, settings: this.#s },
        });
        this.#log.info({ accessRequests, audit }, 'old access requests and audit entries trimmed');
      }
      return { accessRequests, audit };
    } catch (err) {
      this.#log.warn({ err }, 'retention trim failed');
      return { accessRequests: 0, audit: 0 };
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
