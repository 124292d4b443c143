import { alertFacts, type ActionEngine, type Decision } from '../../actions/engine.js';
import { vmForEvent, type VmMatch, type VmResolver } from './leases.js';
import type { EveMetrics } from './metrics.js';
import { eveTimeMs } from './parse.js';
import type { EveEvent } from './types.js';
import type { Clock } from '../../clock.js';

/**
 * What happens to every parsed EVE event, in the service and in offline replay alike:
 * count it, find its VM, and for alerts ask the action engine what to do. Synchronous
 * and free of I/O: the caller carries the decisions out (or, in replay, lists them).
 */

/** The outcome for one event. */
export interface PipelineResult {
  /** The guest side of the event, if a VM was found. */
  readonly match: VmMatch | undefined;
  /** Decisions for an alert (`record` first); empty for every other event. */
  readonly decisions: readonly Decision[];
}

export interface EvePipelineOptions {
  readonly resolver: VmResolver;
  /** Without one, alerts are counted and mapped but no decisions are made. */
  readonly engine?: ActionEngine;
  readonly metrics?: EveMetrics;
  /**
   * Set to the clock the engine was built with to run the engine on event time
   * (replay: decisions then depend on the capture, not on when it is replayed).
   */
  readonly eventClock?: EventTimeClock;
}

/** A clock that reads the time of the event being handled: pass `now` as the engine's Clock. */
export class EventTimeClock {
  #t = 0;

  readonly now: Clock = () => this.#t;

  /** Move to `t` (ms); ignored when NaN, and never backwards (EVE is not strictly ordered). */
  set(t: number): void {
    if (t > this.#t) this.#t = t;
  }
}

const NO_DECISIONS: readonly Decision[] = Object.freeze([]);
const NOTHING: PipelineResult = Object.freeze({ match: undefined, decisions: NO_DECISIONS });

export class EvePipeline {
  readonly #resolver: VmResolver;
  readonly #engine: ActionEngine | undefined;
  readonly #metrics: EveMetrics | undefined;
  readonly #eventClock: EventTimeClock | undefined;

  constructor(options: EvePipelineOptions) {
    this.#resolver = options.resolver;
    this.#engine = options.engine;
    this.#metrics = options.metrics;
    this.#eventClock = options.eventClock;
  }

  /** Count, map and (for alerts) decide. */
  handle(event: EveEvent): PipelineResult {
    this.#metrics?.event(event);
    const match = vmForEvent(event, this.#resolver);
    if (event.event_type !== 'alert' || this.#engine === undefined)
      return match === undefined ? NOTHING : { match, decisions: NO_DECISIONS };
    this.#eventClock?.set(match?.at ?? eveTimeMs(event.raw.timestamp));
    return { match, decisions: this.#engine.onAlert(alertFacts(event, match)) };
  }
}
