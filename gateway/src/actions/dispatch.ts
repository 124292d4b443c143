import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { Decision } from './engine.js';
import type { ActionExecutor } from './executor.js';

/** What the IPS carries out itself, on the hot path: the kernel block and the quarantine. */
export type Enforcer = Pick<ActionExecutor, 'blockHost' | 'quarantine'>;

/**
 * Carry out the decisions for one alert and publish them. The enforcement (block, then
 * quarantine) starts before anything is published, so the kernel block never waits
 * for a subscriber (the alert log's store write, a webhook); then the alert goes out as
 * `ips.alert`, every other decision as `ips.decision` (webhooks carry out `notify`),
 * and each enforcement's outcome as `ips.action`. Resolves when the enforcement is done;
 * never rejects (a failed action is logged and published).
 */
export function dispatchDecisions(
  decisions: readonly Decision[],
  enforcer: Enforcer,
  events: EventBus,
  log: Logger,
): Promise<void> {
  // most EVE events are not alerts: nothing to do, not even a promise to make
  if (decisions.length === 0) return DONE;
  // an async function runs up to its first await: the kernel block has started on return
  const enforcing = enforce(decisions, enforcer, events, log);
  for (const d of decisions) {
    if (d.kind === 'record') events.emit('ips.alert', d);
    else events.emit('ips.decision', d);
  }
  return enforcing;
}

const DONE: Promise<void> = Promise.resolve();

async function enforce(
  decisions: readonly Decision[],
  enforcer: Enforcer,
  events: EventBus,
  log: Logger,
): Promise<void> {
  for (const d of decisions) {
    if (d.kind !== 'block' && d.kind !== 'quarantine') continue;
    try {
      if (d.kind === 'block') await enforcer.blockHost(d.remote, d.seconds, d.vm, d.global ?? false);
      else await enforcer.quarantine(d.vm, d.reason);
      log.info({ decision: d }, 'IPS action');
      events.emit('ips.action', { decision: d, ok: true });
    } catch (err) {
      log.warn({ err, decision: d.kind }, 'IPS action failed');
      events.emit('ips.action', { decision: d, ok: false, error: (err as Error).message });
    }
  }
}
