import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALERT } from '../actions/test-fixtures.js';
import { EventBus } from '../events.js';
import { subscribeAlertLog } from './alert-log.js';
import { Store } from './store.js';

describe('subscribeAlertLog', () => {
  let dir: string;
  let store: Store;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sp-alert-log-'));
    store = Store.open({ path: join(dir, 'state.db') });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every ips.alert published on the bus in the alert log, until unsubscribed', () => {
    const bus = new EventBus();
    const off = subscribeAlertLog(bus, store);
    bus.emit('ips.alert', ALERT);
    bus.emit('ips.alert', { ...ALERT, vm: null, src: null, sid: 7, signature: 'other' });
    const rows = store.alerts.recent(10);
    expect(rows.map((a) => [a.signatureId, a.vm ?? null])).toEqual([
      [7, null],
      [2_100_498, 'kid'],
    ]);
    expect(rows[1]).toMatchObject({
      at: ALERT.timestamp,
      src: '192.0.2.7',
      dest: '10.20.0.11',
      signature: ALERT.signature,
      category: ALERT.category,
      severity: 2,
      action: 'allowed',
    });
    off();
    bus.emit('ips.alert', ALERT);
    expect(store.alerts.recent(10)).toHaveLength(2);
  });

  it("keeps the flow's protocol and ports the IPS adds to an alert", () => {
    const bus = new EventBus();
    const off = subscribeAlertLog(bus, store);
    bus.emit('ips.alert', { ...ALERT, proto: 'TCP', srcPort: 40000, destPort: 80 });
    const [row] = store.alerts.recent(1);
    expect(row).toMatchObject({ proto: 'TCP', data: { srcPort: 40000, destPort: 80 } });
    expect(store.alerts.get(row!.id)).toEqual(row);
    off();
  });
});
