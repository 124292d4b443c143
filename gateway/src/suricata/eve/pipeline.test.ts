import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ActionEngine } from '../../actions/engine.js';
import { LeaseTable } from './leases.js';
import { EveMetrics } from './metrics.js';
import { parseEveLine } from './parse.js';
import { EvePipeline, EventTimeClock } from './pipeline.js';
import type { EveEvent } from './types.js';

function ev(line: Record<string, unknown>): EveEvent {
  const r = parseEveLine(JSON.stringify(line));
  if (!r.ok) throw new Error(r.error.message);
  return r.event;
}

const alert = (timestamp: string, sid: number, severity = 1): EveEvent =>
  ev({
    timestamp,
    event_type: 'alert',
    src_ip: '10.0.0.2',
    src_port: 40000,
    dest_ip: '192.0.2.7',
    dest_port: 80,
    proto: 'TCP',
    alert: {
      action: 'allowed',
      gid: 1,
      signature_id: sid,
      rev: 1,
      signature: `sig ${sid}`,
      category: '',
      severity,
    },
  });

describe('EvePipeline', () => {
  it('maps events to VMs, decides on alerts on event time, and counts', async () => {
    const leases = new LeaseTable();
    leases.add({ vm: 'kid', address: '10.0.0.2' });
    const clock = new EventTimeClock();
    const registry = new Registry();
    const pipeline = new EvePipeline({
      resolver: leases,
      engine: ActionEngine.withActions({ block: { maxSeverity: 1, duration: 60 } }, clock.now),
      metrics: new EveMetrics(registry),
      eventClock: clock,
    });

    const flow = pipeline.handle(
      ev({
        timestamp: '2020-01-01T00:00:00.000000+0000',
        event_type: 'flow',
        src_ip: '10.0.0.2',
        dest_ip: '192.0.2.7',
        flow: {},
      }),
    );
    expect(flow.match?.vm).toBe('kid');
    expect(flow.decisions).toEqual([]);

    const first = pipeline.handle(alert('2020-01-01T00:00:00.000000+0000', 1));
    expect(first.decisions.map((d) => d.kind)).toEqual(['record', 'block']);
    expect(first.decisions[1]).toMatchObject({ until: Date.UTC(2020, 0, 1, 0, 1, 0), remote: '192.0.2.7' });
    // 10 s later in the capture: still blocked, nothing new
    expect(pipeline.handle(alert('2020-01-01T00:00:10.000000+0000', 1)).decisions.map((d) => d.kind)).toEqual(
      ['record'],
    );
    // 2 minutes later in the capture: blocked again
    expect(pipeline.handle(alert('2020-01-01T00:02:00.000000+0000', 1)).decisions.map((d) => d.kind)).toEqual(
      ['record', 'block'],
    );

    const text = await registry.metrics();
    expect(text).toContain('portcullis_eve_events_total{event_type="alert"} 3');
    expect(text).toContain('portcullis_eve_events_total{event_type="flow"} 1');
    expect(text).toContain('portcullis_eve_alerts_total{severity="1",action="allowed"} 3');
  });

  it('counts unknown event types under one label', async () => {
    const registry = new Registry();
    const pipeline = new EvePipeline({ resolver: new LeaseTable(), metrics: new EveMetrics(registry) });
    pipeline.handle(
      ev({ timestamp: '2020-01-01T00:00:00.000000+0000', event_type: 'websocket', websocket: {} }),
    );
    pipeline.handle(ev({ timestamp: '2020-01-01T00:00:00.000000+0000', event_type: 'ldap', ldap: {} }));
    expect(await registry.metrics()).toContain('portcullis_eve_events_total{event_type="unknown"} 2');
  });
});

describe('EventTimeClock', () => {
  it('follows event time forwards only', () => {
    const c = new EventTimeClock();
    c.set(1000);
    c.set(500);
    c.set(Number.NaN);
    expect(c.now()).toBe(1000);
  });
});
