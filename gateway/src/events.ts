import type { Decision, RecordDecision } from './actions/engine.js';
import type { Logger } from './log.js';
import type { Policy } from './policy/model.js';
import type { AuditRecord, Bundle } from './store/types.js';

/** An action the engine decided on an alert: everything but recording the alert. */
export type ActionDecision = Exclude<Decision, RecordDecision>;

/**
 * The events parts of the service publish for each other. Add an event by adding a
 * property here (or, from another module, by declaration merging:
 * `declare module '../events.js' { interface PortcullisEvents { 'x.y': Payload } }`).
 */
export interface PortcullisEvents {
  /** A new policy is in force: applied to the kernel and stored. */
  'policy.applied': {
    readonly policy: Policy;
    readonly previous: Policy;
    readonly actor: string;
    /** The mutation that produced it, e.g. `vm.add`, `policy.import`. */
    readonly action: string;
  };
  /** A VM was put into quarantine. */
  'vm.quarantined': {
    readonly vm: string;
    readonly reason: string;
    readonly since: string;
    readonly actor: string;
  };
  /** A VM left quarantine. */
  'vm.released': { readonly vm: string; readonly actor: string };
  /** An audit log entry was written (after its transaction committed). */
  audit: AuditRecord;
  /** A rule bundle was recorded or changed status (after its transaction committed). */
  'bundle.status': Bundle;
  /**
   * An IPS alert, mapped to its VM (the engine's `record` decision). Subscribers: the
   * alert log (store), metrics. Published after the kernel block for the alert started.
   */
  'ips.alert': RecordDecision;
  /**
   * An action the engine decided on an alert (block, quarantine, notify), before it is
   * carried out. The IPS itself blocks and quarantines; webhooks carry out `notify`.
   */
  'ips.decision': ActionDecision;
  /**
   * A guest's DNS query answered blocked by policy (the dashboard's live feed). Many per
   * second are possible: listeners must be cheap.
   */
  'dns.blocked': {
    readonly vm: string;
    readonly name: string;
    /** The list or reason that blocked it (`blockCategory`). */
    readonly category: string;
    /** ms since the epoch. */
    readonly at: number;
  };
  /** An action was carried out (`ok`) or failed (`error` says why). */
  'ips.action': { readonly decision: ActionDecision; readonly ok: boolean; readonly error?: string };
}

/** Anything that identifies who registered a listener: a part of the service or a string. */
export type Owner = object | string;

type Listener<P> = (payload: P) => void;

/**
 * A small typed, synchronous event bus. Listeners are registered per owner so a part
 * can drop all of its listeners at `stop()` with `off(owner)`. A throwing listener is
 * logged and does not keep the event from the other listeners or the emitter.
 */
export class EventBus<E extends object = PortcullisEvents> {
  readonly #listeners = new Map<keyof E, Map<Owner, Listener<never>[]>>();
  readonly #logger: Logger | undefined;

  /** @param logger where listener failures are reported; default: nowhere. */
  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Call `cb` on every `event` until `off(owner)`. */
  on<K extends keyof E>(owner: Owner, event: K, cb: Listener<E[K]>): void {
    let byOwner = this.#listeners.get(event);
    if (!byOwner) {
      byOwner = new Map();
      this.#listeners.set(event, byOwner);
    }
    const list = byOwner.get(owner) ?? [];
    list.push(cb as Listener<never>);
    byOwner.set(owner, list);
  }

  /** Remove every listener `owner` registered, on every event. */
  off(owner: Owner): void {
    for (const byOwner of this.#listeners.values()) byOwner.delete(owner);
  }

  /** Deliver `payload` to the listeners of `event`, in registration order. */
  emit<K extends keyof E>(event: K, payload: E[K]): void {
    const byOwner = this.#listeners.get(event);
    if (!byOwner) return;
    for (const list of [...byOwner.values()]) {
      for (const cb of [...list]) {
        try {
          (cb as Listener<E[K]>)(payload);
        } catch (err) {
          this.#logger?.error({ err, event: String(event) }, 'event listener failed');
        }
      }
    }
  }

  /** How many listeners `event` has (for tests and leak checks). */
  listenerCount(event: keyof E): number {
    let n = 0;
    for (const list of this.#listeners.get(event)?.values() ?? []) n += list.length;
    return n;
  }
}
