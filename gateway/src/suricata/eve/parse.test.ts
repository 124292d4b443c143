import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  KNOWN_EVENT_TYPES,
  eveTimeMs,
  isKnownEventType,
  parseEveLine,
  serializeEve,
  type EveParseResult,
} from './parse.js';
import type { EveEvent } from './types.js';

const fixture = readFileSync(
  new URL('../../../../test/fixtures/eve/suricata-7.0.10.eve.jsonl', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter((l) => l.length > 0);

/** Every event type Suricata 7.0.10 wrote over the suricata-verify corpus. */
const CORPUS_TYPES = [
  'alert',
  'anomaly',
  'dcerpc',
  'dhcp',
  'dns',
  'fileinfo',
  'flow',
  'ftp',
  'ftp_data',
  'http',
  'ike',
  'mqtt',
  'packet',
  'pgsql',
  'quic',
  'rfb',
  'sip',
  'smb',
  'smtp',
  'ssh',
  'stats',
  'template',
  'tftp',
  'tls',
];

const ALERT = {
  timestamp: '2022-01-07T10:16:40.480073+0000',
  flow_id: 91575193099554,
  event_type: 'alert',
  src_ip: '10.0.0.2',
  src_port: 40000,
  dest_ip: '192.0.2.7',
  dest_port: 80,
  proto: 'TCP',
  alert: { action: 'allowed', gid: 1, signature_id: 20, rev: 1, signature: 'x', category: '', severity: 3 },
};

function line(overrides: Record<string, unknown> = {}, base: Record<string, unknown> = ALERT): string {
  return JSON.stringify({ ...base, ...overrides });
}

function ok(r: EveParseResult): EveEvent {
  if (!r.ok) throw new Error(`expected an event, got ${r.error.reason}: ${r.error.message}`);
  return r.event;
}

function err(r: EveParseResult): { reason: string; path: string; message: string } {
  if (r.ok) throw new Error(`expected an error, got a ${r.event.event_type} event`);
  return r.error;
}

describe('parseEveLine', () => {
  it('parses every fixture line from Suricata 7.0.10 into its own type', () => {
    for (const l of fixture) {
      const ev = ok(parseEveLine(l));
      const type = (JSON.parse(l) as { event_type: string }).event_type;
      expect(ev.event_type).toBe(type);
    }
  });

  it('knows every event type the corpus produces', () => {
    const seen = new Set(fixture.map((l) => (JSON.parse(l) as { event_type: string }).event_type));
    expect([...seen].sort()).toEqual(CORPUS_TYPES);
    for (const t of CORPUS_TYPES) expect(isKnownEventType(t), t).toBe(true);
  });

  it('knows the Suricata 7 event types beyond the corpus', () => {
    for (const t of [
      'drop',
      'netflow',
      'nfs',
      'krb5',
      'rdp',
      'snmp',
      'http2',
      'dnp3',
      'modbus',
      'bittorrent_dht',
      'frame',
      'engine',
      'metadata',
    ]) {
      expect(KNOWN_EVENT_TYPES).toContain(t);
    }
  });

  it("keeps every field: the raw object serialises back to Suricata's line byte for byte", () => {
    for (const l of fixture) expect(serializeEve(ok(parseEveLine(l)))).toBe(l);
  });

  it("exposes the common fields and the alert in Suricata's names", () => {
    const ev = ok(parseEveLine(line()));
    if (ev.event_type !== 'alert') throw new Error('not an alert');
    expect(ev.raw.timestamp).toBe('2022-01-07T10:16:40.480073+0000');
    expect(ev.raw.flow_id).toBe(91575193099554);
    expect([ev.raw.src_ip, ev.raw.src_port, ev.raw.dest_ip, ev.raw.dest_port, ev.raw.proto]).toEqual([
      '10.0.0.2',
      40000,
      '192.0.2.7',
      80,
      'TCP',
    ]);
    expect([ev.raw.alert.signature_id, ev.raw.alert.severity, ev.raw.alert.action]).toEqual([
      20,
      3,
      'allowed',
    ]);
  });

  it('passes an unknown event type through whole, as unknown', () => {
    const l = line(
      { event_type: 'websocket', websocket: { opcode: 'text', fin: true }, extra: [1, 2] },
      { timestamp: ALERT.timestamp },
    );
    const ev = ok(parseEveLine(l));
    expect(ev.event_type).toBe('unknown');
    expect(ev.raw.event_type).toBe('websocket');
    expect(ev.raw.websocket).toEqual({ opcode: 'text', fin: true });
    expect(serializeEve(ev)).toBe(l);
  });

  it('keeps fields newer than the schema', () => {
    const ev = ok(
      parseEveLine(
        line({ ja4: 't13d1516h2_8daaf6152771_02713d6af862', alert: { ...ALERT.alert, future: { x: 1 } } }),
      ),
    );
    if (ev.event_type !== 'alert') throw new Error('not an alert');
    expect(ev.raw.ja4).toBe('t13d1516h2_8daaf6152771_02713d6af862');
    expect(ev.raw.alert.future).toEqual({ x: 1 });
  });

  it.each([
    ['not JSON', '{"timestamp": ', 'not-json', ''],
    ['empty', '   ', 'empty', ''],
    ['a JSON array', '[1,2]', 'not-object', ''],
    ['JSON null', 'null', 'not-object', ''],
    ['no timestamp', line({ timestamp: undefined }), 'bad-envelope', '/timestamp'],
    ["a timestamp that is not Suricata's", line({ timestamp: 'yesterday' }), 'bad-envelope', '/timestamp'],
    ['a numeric timestamp', line({ timestamp: 1700000000 }), 'bad-envelope', '/timestamp'],
    ['no event_type', line({ event_type: undefined }), 'bad-envelope', '/event_type'],
    ['an empty event_type', line({ event_type: '' }), 'bad-envelope', '/event_type'],
    ['a string port', line({ src_port: '80' }), 'bad-envelope', '/src_port'],
    ['a port above 65535', line({ dest_port: 70000 }), 'bad-envelope', '/dest_port'],
    ['a numeric address', line({ src_ip: 167772162 }), 'bad-envelope', '/src_ip'],
    ['a negative flow_id', line({ flow_id: -1 }), 'bad-envelope', '/flow_id'],
    ['a fractional tx_id', line({ tx_id: 1.5 }), 'bad-envelope', '/tx_id'],
    ['an alert without its alert object', line({ alert: undefined }), 'bad-body', '/alert'],
    [
      'an alert without signature_id',
      line({ alert: { ...ALERT.alert, signature_id: undefined } }),
      'bad-body',
      '/alert/signature_id',
    ],
    [
      'a string signature_id',
      line({ alert: { ...ALERT.alert, signature_id: '20' } }),
      'bad-body',
      '/alert/signature_id',
    ],
    [
      'an alert without severity',
      line({ alert: { ...ALERT.alert, severity: undefined } }),
      'bad-body',
      '/alert/severity',
    ],
    ['an alert without action', line({ alert: { ...ALERT.alert, action: 1 } }), 'bad-body', '/alert/action'],
    [
      'an anomaly without type',
      line({ event_type: 'anomaly', alert: undefined, anomaly: { event: 'x' } }),
      'bad-body',
      '/anomaly/type',
    ],
    [
      'a flow event whose flow is an array',
      line({ event_type: 'flow', alert: undefined, flow: [] }),
      'bad-body',
      '/flow',
    ],
    [
      'a packet event without the packet',
      line({ event_type: 'packet', alert: undefined }),
      'bad-body',
      '/packet',
    ],
    ['a dns event without dns', line({ event_type: 'dns', alert: undefined }), 'bad-body', '/dns'],
  ])('rejects %s with a precise reason', (_what, l, reason, path) => {
    const e = err(parseEveLine(l));
    expect(e.reason).toBe(reason);
    expect(e.path).toBe(path);
    expect(e.message.length).toBeGreaterThan(0);
  });

  it('keeps only a short sample of a bad line', () => {
    const e = parseEveLine(`{${'x'.repeat(10_000)}`);
    expect(e.ok).toBe(false);
    if (!e.ok) expect(e.error.sample.length).toBeLessThanOrEqual(161);
  });

  it('never throws, whatever the input', () => {
    const inputs: string[] = ['', '\u0000', '{}', '"str"', '1e400', '{"__proto__": {"polluted": 1}}'];
    for (const l of fixture)
      for (let cut = 0; cut < l.length; cut += 37) inputs.push(l.slice(0, cut), l.slice(cut));
    for (const i of inputs) expect(() => parseEveLine(i)).not.toThrow();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('eveTimeMs', () => {
  it("reads Suricata's timestamp, offset included", () => {
    expect(eveTimeMs('2022-01-07T10:16:40.480073+0000')).toBe(Date.UTC(2022, 0, 7, 10, 16, 40, 480));
    expect(eveTimeMs('2022-01-07T12:16:40.480073+0200')).toBe(Date.UTC(2022, 0, 7, 10, 16, 40, 480));
    expect(eveTimeMs('2022-01-07T05:46:40.000001-0430')).toBe(Date.UTC(2022, 0, 7, 10, 16, 40, 0));
    expect(eveTimeMs('2022-01-07T10:16:40+00:00')).toBe(Date.UTC(2022, 0, 7, 10, 16, 40));
  });

  it('is NaN for anything else', () => {
    for (const t of [
      '',
      'now',
      '2022-01-07 10:16:40.48+0000',
      '2022-01-07T10:16:40.48Z',
      '2022-01-07T10:16:40.48+000',
      '2022-01-07T1x:16:40.48+0000',
    ]) {
      expect(eveTimeMs(t), t).toBeNaN();
    }
  });
});
