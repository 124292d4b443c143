import type { RecordDecision } from '../actions/engine.js';
import type { EventBus } from '../events.js';
import type { Store } from './store.js';
import type { AlertInput } from './types.js';

/** The alert log's row for an alert (`ips.alert`). */
export function alertInput(d: RecordDecision): AlertInput {
  return {
    at: d.timestamp,
    ...(d.vm ? { vm: d.vm } : {}),
    ...(d.src ? { src: d.src } : {}),
    ...(d.dest ? { dest: d.dest } : {}),
    ...(d.proto ? { proto: d.proto } : {}),
    signatureId: d.sid,
    signature: d.signature,
    category: d.category,
    severity: d.severity,
    action: d.action,
    ...(d.srcPort !== undefined || d.destPort !== undefined
      ? { data: { srcPort: d.srcPort, destPort: d.destPort } }
      : {}),
  };
}

/**
 * The alert log as a subscriber of the event bus: every `ips.alert` becomes a row of
 * `store.alerts`. Returns the unsubscribe function; call it before the store closes.
 */
export function subscribeAlertLog(events: EventBus, store: Store): () => void {
  const owner = { subscriber: 'alert-log' };
  events.on(owner, 'ips.alert', (d) => void store.alerts.add(alertInput(d)));
  return () => events.off(owner);
}
