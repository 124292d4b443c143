import type { Registry } from 'prom-client';
import { subscribeWebhooks } from './actions/executor.js';
import type { EventBus } from './events.js';
import type { Logger } from './log.js';
import { subscribeMetrics } from './metrics/events.js';
import { subscribeAlertLog } from './store/alert-log.js';
import type { Store } from './store/store.js';

/**
 * The service's subscribers of the event bus, beside the parts that subscribe for
 * themselves (the IPS follows `policy.applied` and `vm.released`): the alert log
 * (store), webhooks and metrics. Returns one function that removes them all (call it
 * at stop, before the store closes).
 */
export function subscribeServices(
  events: EventBus,
  parts: { readonly store: Store; readonly registry: Registry; readonly log: Logger },
): () => void {
  const offs = [
    subscribeAlertLog(events, parts.store),
    subscribeWebhooks(events, { log: parts.log.child({ part: 'ips' }) }),
    subscribeMetrics(events, parts.registry, { bundle: () => parts.store.bundles.active() }),
  ];
  return () => {
    for (const off of offs) off();
  };
}
