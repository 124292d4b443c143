import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus, type PortcullisEvents } from './events.js';
import { silentLogger } from './log.js';
import { Store } from './store/store.js';
import { subscribeServices } from './subscribers.js';

/** Every event of the service. The type below fails to compile when one is missing. */
const EVENTS = [
  'policy.applied',
  'vm.quarantined',
  'vm.released',
  'audit',
  'bundle.status',
  'bundle.progress',
  'bundle.result',
  'ips.alert',
  'ips.decision',
  'ips.action',
  'dns.blocked',
  'suricata.status',
  'dhcp.status',
] as const satisfies readonly (keyof PortcullisEvents)[];
type Unlisted = Exclude<keyof PortcullisEvents, (typeof EVENTS)[number]>;
const everyEventListed: [Unlisted] extends [never] ? true : Unlisted = true;

describe('subscribeServices', () => {
  let dir: string;
  let store: Store;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sp-subscribers-'));
    store = Store.open({ path: join(dir, 'state.db') });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives every event of the service a subscriber, and removes them all at stop', () => {
    expect(everyEventListed).toBe(true);
    const bus = new EventBus();
    // control: a bus without the subscribers has none
    for (const event of EVENTS) expect(bus.listenerCount(event), event).toBe(0);
    const off = subscribeServices(bus, { store, registry: new Registry(), log: silentLogger });
    for (const event of EVENTS) expect(bus.listenerCount(event), event).toBeGreaterThan(0);
    off();
    for (const event of EVENTS) expect(bus.listenerCount(event), event).toBe(0);
  });
});
