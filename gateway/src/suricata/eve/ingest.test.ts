import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BurstReporter, EveIngest } from './ingest.js';
import { EveMetrics } from './metrics.js';
import { eveParseError } from './parse.js';
import type { EveEvent } from './types.js';

function eveLine(i: number, type = 'flow'): string {
  return JSON.stringify({
    timestamp: '2024-01-31T12:00:00.000000+0000',
    event_type: type,
    flow_id: i,
    [type]: {},
  });
}

/** A pino logger that records what it logs. */
function makeLog(): { log: pino.Logger; records: { level: number; msg: string }[] } {
  const records: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => records.push(JSON.parse(s) as { level: number; msg: string }) },
  );
  return { log, records };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('EveIngest', () => {
  it('hands every parsed event to the handler, in order', async () => {
    const seen: number[] = [];
    const ingest = new EveIngest({ handler: (e) => void seen.push(e.raw.flow_id as number) });
    for (let i = 0; i < 1000; i++) ingest.pushLine(eveLine(i));
    await ingest.idle();
    expect(seen).toEqual([...Array(1000).keys()]);
    expect(ingest.stats()).toMatchObject({ received: 1000, events: 1000, malformed: 0, shed: 0, queued: 0 });
  });

  it('sheds and counts lines when the consumer is slower than Suricata, and never queues more than its capacity', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const seen: EveEvent[] = [];
    const ingest = new EveIngest({
      capacity: 5,
      handler: async (e) => {
        seen.push(e);
        await gate;
      },
    });
    for (let i = 0; i < 5; i++) ingest.pushLine(eveLine(i));
    await new Promise((r) => setImmediate(r)); // the consumer takes the first line and blocks
    for (let i = 5; i < 100; i++) ingest.pushLine(eveLine(i));
    const s = ingest.stats();
    // one line with the consumer, five queued, the rest shed
    expect(s.queued).toBe(5);
    expect(s.shed).toBe(100 - 1 - 5);
    release();
    await ingest.idle();
    expect(seen).toHaveLength(6);
    expect(ingest.stats()).toMatchObject({ received: 100, events: 6, shed: 94, queued: 0 });
  });

  it('counts malformed lines by reason and goes on', async () => {
    const seen: EveEvent[] = [];
    const rejected: string[] = [];
    const ingest = new EveIngest({
      handler: (e) => void seen.push(e),
      onReject: (e) => rejected.push(e.reason),
    });
    ingest.pushLine('not json');
    ingest.pushLine(eveLine(1));
    ingest.pushLine('{"timestamp":"2024-01-31T12:00:00.000000+0000","event_type":"alert","alert":{}}');
    ingest.reject(eveParseError('truncated', '', 'connection closed', '{"ti'));
    await ingest.idle();
    expect(seen).toHaveLength(1);
    expect(rejected.sort()).toEqual(['bad-body', 'not-json', 'truncated']);
    expect(ingest.stats()).toMatchObject({
      received: 4,
      events: 1,
      malformed: 3,
      malformedByReason: { 'not-json': 1, 'bad-body': 1, truncated: 1 },
    });
  });

  it('logs a burst of malformed lines once, then its count', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { log, records } = makeLog();
    const ingest = new EveIngest({ handler: () => undefined, log, burstMs: 1000 });
    for (let i = 0; i < 500; i++) ingest.pushLine(`garbage ${i}`);
    await ingest.idle();
    expect(records.filter((r) => r.msg.includes('malformed'))).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    const logged = records.filter((r) => r.msg.includes('malformed'));
    expect(logged).toHaveLength(2);
    expect(logged[1]?.msg).toBe('500 malformed EVE lines in this burst');
  });

  it('keeps going when the handler throws, and counts it', async () => {
    const ingest = new EveIngest({
      handler: (e) => {
        if ((e.raw.flow_id as number) % 2 === 0) throw new Error('boom');
      },
    });
    for (let i = 0; i < 10; i++) ingest.pushLine(eveLine(i));
    await ingest.idle();
    expect(ingest.stats()).toMatchObject({ events: 10, handlerErrors: 5 });
  });

  it('updates the metrics', async () => {
    const registry = new Registry();
    const ingest = new EveIngest({
      handler: () => undefined,
      metrics: new EveMetrics(registry),
      capacity: 2,
    });
    ingest.pushLine(eveLine(1, 'dns'));
    ingest.pushLine('nope');
    ingest.pushLine(eveLine(2));
    await ingest.idle();
    const text = await registry.metrics();
    expect(text).toContain('portcullis_eve_shed_lines_total 1');
    expect(text).toContain('portcullis_eve_malformed_lines_total{reason="not-json"} 1');
  });

  it('drops what is queued when closed without draining', async () => {
    const seen: EveEvent[] = [];
    const ingest = new EveIngest({ handler: (e) => void seen.push(e) });
    for (let i = 0; i < 10; i++) ingest.pushLine(eveLine(i));
    await ingest.close(false);
    ingest.pushLine(eveLine(11));
    expect(seen).toHaveLength(0);
    expect(ingest.stats().shed).toBe(10);
  });
});

describe('BurstReporter', () => {
  it('reports the first hit at once and the count when the window closes', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const first: number[] = [];
    const counts: number[] = [];
    const b = new BurstReporter<number>(
      100,
      (i) => first.push(i),
      (n) => counts.push(n),
    );
    for (let i = 0; i < 7; i++) b.hit(i);
    vi.advanceTimersByTime(100);
    b.hit(42);
    b.flush();
    expect(first).toEqual([0, 42]);
    expect(counts).toEqual([7]);
  });
});
