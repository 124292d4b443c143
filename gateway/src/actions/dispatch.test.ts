import { describe, expect, it, vi } from 'vitest';
import { EventBus } from '../events.js';
import { silentLogger } from '../log.js';
import { dispatchDecisions, type Enforcer } from './dispatch.js';
import { ALERT, BLOCK, NOTIFY, QUARANTINE } from './test-fixtures.js';

/** An enforcer that records what it was asked, in order, with what had happened by then. */
function makeEnforcer(seen: string[], fail?: 'block' | 'quarantine'): Enforcer {
  return {
    blockHost: async (remote) => {
      seen.push(`block ${remote}`);
      if (fail === 'block') throw new Error('nft: no such set');
    },
    quarantine: async (vm) => {
      seen.push(`quarantine ${vm}`);
      if (fail === 'quarantine') throw new Error('policy busy');
    },
  };
}

describe('dispatchDecisions', () => {
  it('starts the kernel block before any subscriber (the alert log) runs', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.on('store', 'ips.alert', (d) => seen.push(`alert log ${d.sid}`));
    bus.on('webhooks', 'ips.decision', (d) => seen.push(`decision ${d.kind}`));
    const done = dispatchDecisions([ALERT, BLOCK, NOTIFY], makeEnforcer(seen), bus, silentLogger);
    // synchronously, before anything was awaited
    expect(seen).toEqual(['block 192.0.2.7', 'alert log 2100498', 'decision block', 'decision notify']);
    await done;
  });

  it('quarantines after the block, and publishes each outcome as ips.action', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const outcomes: unknown[] = [];
    bus.on('test', 'ips.action', (a) => outcomes.push({ kind: a.decision.kind, ok: a.ok }));
    await dispatchDecisions([ALERT, BLOCK, QUARANTINE, NOTIFY], makeEnforcer(seen), bus, silentLogger);
    expect(seen).toEqual(['block 192.0.2.7', 'quarantine kid']);
    // notify is the webhooks' to carry out, not the IPS's
    expect(outcomes).toEqual([
      { kind: 'block', ok: true },
      { kind: 'quarantine', ok: true },
    ]);
  });

  it('publishes a failed action with its error, goes on with the next, and does not reject', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const outcomes: unknown[] = [];
    bus.on('test', 'ips.action', (a) => outcomes.push(a));
    const log = silentLogger.child({});
    const warn = vi.spyOn(log, 'warn');
    await dispatchDecisions([ALERT, BLOCK, QUARANTINE], makeEnforcer(seen, 'block'), bus, log);
    expect(seen).toEqual(['block 192.0.2.7', 'quarantine kid']);
    expect(outcomes).toEqual([
      { decision: BLOCK, ok: false, error: 'nft: no such set' },
      { decision: QUARANTINE, ok: true },
    ]);
    expect(warn).toHaveBeenCalledOnce();
  });

  it('publishes nothing and calls nothing for an event without decisions', async () => {
    const bus = new EventBus();
    const cb = vi.fn();
    bus.on('test', 'ips.alert', cb);
    bus.on('test', 'ips.decision', cb);
    const seen: string[] = [];
    await dispatchDecisions([], makeEnforcer(seen), bus, silentLogger);
    expect(seen).toEqual([]);
    expect(cb).not.toHaveBeenCalled();
  });
});
