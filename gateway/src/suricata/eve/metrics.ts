import { Counter, type Registry } from 'prom-client';
import type { EveParseReason } from './parse.js';
import type { EveEvent } from './types.js';

/**
 * EVE metrics, on an injected prom-client registry. Labels are bounded: event types
 * the parser does not know are counted as `unknown` (their `event_type`), severities
 * above 3 as `4+`.
 *
 * Events arrive at hundreds of thousands per second, so the per-event counters are
 * tallied in plain cells and added to the prom-client counters when the registry is
 * collected (each scrape): scrapes see exact totals, the hot path does one map lookup
 * and an increment instead of prom-client's label hashing and validation.
 */
export class EveMetrics {
  readonly #events: Counter<'event_type'>;
  readonly #alerts: Counter<'severity' | 'action'>;
  readonly #malformed: Counter<'reason'>;
  readonly #shed: Counter;
  /** event_type → count not yet added to the counter. */
  readonly #eventCells = new Map<string, { n: number }>();
  /** `severity|action` → labels and count not yet added. */
  readonly #alertCells = new Map<string, { readonly severity: string; readonly action: string; n: number }>();

  /** @param registry where the metrics are registered (one EveMetrics per registry). */
  constructor(registry: Registry) {
    this.#events = new Counter({
      name: 'portcullis_eve_events_total',
      help: 'EVE events parsed, by event type',
      labelNames: ['event_type'],
      registers: [registry],
      collect: () => this.flush(),
    });
    this.#alerts = new Counter({
      name: 'portcullis_eve_alerts_total',
      help: 'Suricata alerts, by severity (1 most severe) and action (allowed, blocked)',
      labelNames: ['severity', 'action'],
      registers: [registry],
      collect: () => this.flush(),
    });
    this.#malformed = new Counter({
      name: 'portcullis_eve_malformed_lines_total',
      help: 'EVE lines rejected, by reason',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.#shed = new Counter({
      name: 'portcullis_eve_shed_lines_total',
      help: 'EVE lines dropped because the consumer was too slow',
      registers: [registry],
    });
  }

  /** Count one parsed event (and, for an alert, its severity and action). */
  event(event: EveEvent): void {
    const type = event.event_type;
    let cell = this.#eventCells.get(type);
    if (cell === undefined) {
      cell = { n: 0 };
      this.#eventCells.set(type, cell);
    }
    cell.n += 1;
    if (type === 'alert') {
      const a = event.raw.alert;
      const key = `${a.severity}|${a.action}`;
      let ac = this.#alertCells.get(key);
      if (ac === undefined) {
        const severity =
          a.severity >= 1 && a.severity <= 3 ? String(a.severity) : a.severity > 3 ? '4+' : 'other';
        const action = a.action === 'allowed' || a.action === 'blocked' ? a.action : 'other';
        ac = { severity, action, n: 0 };
        if (this.#alertCells.size < 1024) this.#alertCells.set(key, ac);
      }
      ac.n += 1;
    }
  }

  /** Add the tallies to the prom-client counters (runs on every collection). */
  flush(): void {
    for (const [type, cell] of this.#eventCells) {
      if (cell.n > 0) this.#events.inc({ event_type: type }, cell.n);
      cell.n = 0;
    }
    for (const cell of this.#alertCells.values()) {
      if (cell.n > 0) this.#alerts.inc({ severity: cell.severity, action: cell.action }, cell.n);
      cell.n = 0;
    }
  }

  /** Count one rejected line. */
  malformed(reason: EveParseReason): void {
    this.#malformed.inc({ reason });
  }

  /** Count shed lines. */
  shed(count = 1): void {
    this.#shed.inc(count);
  }
}
