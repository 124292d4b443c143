import type { EveEnvelope, EveEvent, KnownEventType } from './types.js';

/**
 * The EVE line parser: one line of Suricata EVE JSON in, one typed event or one typed
 * error out. Pure, never throws, and cheap on top of `JSON.parse`: it checks the
 * envelope and the few fields the rest of the service relies on, then hands back
 * Suricata's own object unchanged inside an {@link EveEvent}.
 */

/** Why a line was rejected. */
export type EveParseReason =
  /** Nothing but whitespace. */
  | 'empty'
  /** Longer than the reader's limit; dropped unparsed. */
  | 'too-long'
  /** The stream ended (connection closed, file rotated) in the middle of a line. */
  | 'truncated'
  /** Not JSON. */
  | 'not-json'
  /** JSON, but not an object. */
  | 'not-object'
  /** A common field (timestamp, event_type, ports, ...) is missing or has the wrong type. */
  | 'bad-envelope'
  /** The type's own part (`alert.signature_id`, ...) is missing or has the wrong type. */
  | 'bad-body';

/** A rejected line: why, where in the object, and a short sample of the line. */
export interface EveParseError {
  readonly code: 'EVE_MALFORMED';
  readonly reason: EveParseReason;
  /** JSON-pointer-like path of the offending field (`/alert/signature_id`); `''` for the line. */
  readonly path: string;
  readonly message: string;
  /** The first {@link SAMPLE_CHARS} characters of the line. */
  readonly sample: string;
}

/** The outcome of parsing one line. */
export type EveParseResult =
  { readonly ok: true; readonly event: EveEvent } | { readonly ok: false; readonly error: EveParseError };

/** How much of a bad line an error keeps. */
export const SAMPLE_CHARS = 160;

/** Build a parse error; exported for the readers, which reject lines before parsing. */
export function eveParseError(
  reason: EveParseReason,
  path: string,
  message: string,
  line: string,
): EveParseError {
  return {
    code: 'EVE_MALFORMED',
    reason,
    path,
    message,
    sample: line.length > SAMPLE_CHARS ? `${line.slice(0, SAMPLE_CHARS)}…` : line,
  };
}

function fail(reason: EveParseReason, path: string, message: string, line: string): EveParseResult {
  return { ok: false, error: eveParseError(reason, path, message, line) };
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${typeof v === 'object' ? '' : String(v)}`.trim();
}

/**
 * Suricata's timestamp: `YYYY-MM-DDTHH:MM:SS.ffffff+hhmm` (schema pattern
 * `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d+$`). Checked by character class at the
 * fixed positions, which is several times cheaper than the regular expression.
 */
function isEveTimestamp(ts: string): boolean {
  const n = ts.length;
  if (n < 22 || ts.charCodeAt(4) !== 45 || ts.charCodeAt(7) !== 45 || ts.charCodeAt(10) !== 84) return false;
  if (ts.charCodeAt(13) !== 58 || ts.charCodeAt(16) !== 58 || ts.charCodeAt(19) !== 46) return false;
  const sign = ts.charCodeAt(n - 5);
  return sign === 43 || sign === 45;
}

function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return Number.NaN;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Milliseconds since the epoch of an EVE timestamp (`2022-01-07T10:16:40.480073+0000`;
 * the fraction is optional and the offset may be written `+00:00`), or NaN if it is not
 * one. Sub-millisecond digits are truncated. Hand-rolled: it runs once per mapped event.
 */
export function eveTimeMs(timestamp: string): number {
  const s = timestamp;
  if (s.length < 24 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84)
    return Number.NaN;
  if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return Number.NaN;
  let i = 19;
  let ms = 0;
  if (s.charCodeAt(i) === 46) {
    i += 1;
    let scale = 100;
    while (i < s.length) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      ms += c * scale;
      scale /= 10;
      i += 1;
    }
    ms = Math.floor(ms);
  }
  const sign = s.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return Number.NaN;
  const oh = digits(s, i + 1, 2);
  const om = s.charCodeAt(i + 3) === 58 ? digits(s, i + 4, 2) : digits(s, i + 3, 2);
  const end = s.charCodeAt(i + 3) === 58 ? i + 6 : i + 5;
  if (end !== s.length) return Number.NaN;
  const utc = Date.UTC(
    digits(s, 0, 4),
    digits(s, 5, 2) - 1,
    digits(s, 8, 2),
    digits(s, 11, 2),
    digits(s, 14, 2),
    digits(s, 17, 2),
    ms,
  );
  const offset = (oh * 60 + om) * 60_000;
  return sign === 43 ? utc - offset : utc + offset;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** Check the common envelope; returns the failing result, or undefined when it is fine. */
function checkEnvelope(o: Obj, line: string): EveParseResult | undefined {
  const ts = o.timestamp;
  if (typeof ts !== 'string' || !isEveTimestamp(ts)) {
    return fail(
      'bad-envelope',
      '/timestamp',
      `timestamp must be a string like 2024-01-31T12:00:00.000000+0000, got ${show(ts)}`,
      line,
    );
  }
  const et = o.event_type;
  if (typeof et !== 'string' || et.length === 0) {
    return fail(
      'bad-envelope',
      '/event_type',
      `event_type must be a non-empty string, got ${show(et)}`,
      line,
    );
  }
  const sp = o.src_port;
  if (sp !== undefined && !(isUint(sp) && sp <= 65535)) {
    return fail('bad-envelope', '/src_port', `src_port must be an integer 0-65535, got ${show(sp)}`, line);
  }
  const dp = o.dest_port;
  if (dp !== undefined && !(isUint(dp) && dp <= 65535)) {
    return fail('bad-envelope', '/dest_port', `dest_port must be an integer 0-65535, got ${show(dp)}`, line);
  }
  const si = o.src_ip;
  if (si !== undefined && typeof si !== 'string')
    return fail('bad-envelope', '/src_ip', `src_ip must be a string, got ${show(si)}`, line);
  const di = o.dest_ip;
  if (di !== undefined && typeof di !== 'string')
    return fail('bad-envelope', '/dest_ip', `dest_ip must be a string, got ${show(di)}`, line);
  const pr = o.proto;
  if (pr !== undefined && typeof pr !== 'string')
    return fail('bad-envelope', '/proto', `proto must be a string, got ${show(pr)}`, line);
  const fi = o.flow_id;
  if (fi !== undefined && !isUint(fi))
    return fail('bad-envelope', '/flow_id', `flow_id must be a non-negative integer, got ${show(fi)}`, line);
  const pc = o.pcap_cnt;
  if (pc !== undefined && !isUint(pc))
    return fail(
      'bad-envelope',
      '/pcap_cnt',
      `pcap_cnt must be a non-negative integer, got ${show(pc)}`,
      line,
    );
  const tx = o.tx_id;
  if (tx !== undefined && !isUint(tx))
    return fail('bad-envelope', '/tx_id', `tx_id must be a non-negative integer, got ${show(tx)}`, line);
  return undefined;
}

/** A body check: undefined when fine, else the failing result. */
type BodyCheck = (o: Obj, line: string) => EveParseResult | undefined;

/** The type's body must be an object under the key named like the type. */
function objectBody(key: string): BodyCheck {
  return (o, line) =>
    isObject(o[key])
      ? undefined
      : fail('bad-body', `/${key}`, `${key} must be an object, got ${show(o[key])}`, line);
}

const noBody: BodyCheck = () => undefined;

const checkAlert: BodyCheck = (o, line) => {
  const a = o.alert;
  if (!isObject(a)) return fail('bad-body', '/alert', `alert must be an object, got ${show(a)}`, line);
  if (!isUint(a.signature_id)) {
    return fail(
      'bad-body',
      '/alert/signature_id',
      `alert.signature_id must be a non-negative integer, got ${show(a.signature_id)}`,
      line,
    );
  }
  if (!isUint(a.severity))
    return fail(
      'bad-body',
      '/alert/severity',
      `alert.severity must be a non-negative integer, got ${show(a.severity)}`,
      line,
    );
  if (typeof a.action !== 'string')
    return fail('bad-body', '/alert/action', `alert.action must be a string, got ${show(a.action)}`, line);
  if (a.gid !== undefined && !isUint(a.gid))
    return fail(
      'bad-body',
      '/alert/gid',
      `alert.gid must be a non-negative integer, got ${show(a.gid)}`,
      line,
    );
  return undefined;
};

const checkAnomaly: BodyCheck = (o, line) => {
  const a = o.anomaly;
  if (!isObject(a)) return fail('bad-body', '/anomaly', `anomaly must be an object, got ${show(a)}`, line);
  if (typeof a.type !== 'string')
    return fail('bad-body', '/anomaly/type', `anomaly.type must be a string, got ${show(a.type)}`, line);
  return undefined;
};

const checkPacket: BodyCheck = (o, line) =>
  typeof o.packet === 'string'
    ? undefined
    : fail('bad-body', '/packet', `packet must be a base64 string, got ${show(o.packet)}`, line);

const checkHttp2: BodyCheck = (o, line) =>
  isObject(o.http2) || isObject(o.http)
    ? undefined
    : fail('bad-body', '/http2', `an http2 event needs an http2 or http object, got ${show(o.http2)}`, line);

/** Per known type, what its body must look like. */
const BODY_CHECKS: { readonly [T in KnownEventType]: BodyCheck } = {
  alert: checkAlert,
  drop: objectBody('drop'),
  anomaly: checkAnomaly,
  flow: objectBody('flow'),
  netflow: objectBody('netflow'),
  stats: objectBody('stats'),
  fileinfo: objectBody('fileinfo'),
  packet: checkPacket,
  metadata: noBody,
  http: objectBody('http'),
  http2: checkHttp2,
  dns: objectBody('dns'),
  tls: objectBody('tls'),
  quic: objectBody('quic'),
  ssh: objectBody('ssh'),
  smtp: objectBody('smtp'),
  dhcp: objectBody('dhcp'),
  ftp: objectBody('ftp'),
  ftp_data: objectBody('ftp_data'),
  smb: objectBody('smb'),
  nfs: objectBody('nfs'),
  krb5: objectBody('krb5'),
  ike: objectBody('ike'),
  rdp: objectBody('rdp'),
  sip: objectBody('sip'),
  snmp: objectBody('snmp'),
  tftp: objectBody('tftp'),
  mqtt: objectBody('mqtt'),
  rfb: objectBody('rfb'),
  pgsql: objectBody('pgsql'),
  dcerpc: objectBody('dcerpc'),
  modbus: objectBody('modbus'),
  dnp3: objectBody('dnp3'),
  bittorrent_dht: objectBody('bittorrent_dht'),
  frame: objectBody('frame'),
  engine: objectBody('engine'),
  template: objectBody('template'),
};

const KNOWN = new Map<string, BodyCheck>(Object.entries(BODY_CHECKS));

/** The event types this parser knows by name, in no particular order. */
export const KNOWN_EVENT_TYPES: readonly KnownEventType[] = Object.keys(BODY_CHECKS) as KnownEventType[];

/** True when `t` is an event type this parser knows. */
export function isKnownEventType(t: string): t is KnownEventType {
  return KNOWN.has(t);
}

/**
 * Parse one EVE line (without its newline). Never throws.
 *
 * - Not JSON, not an object, a bad envelope or a bad body: `{ok: false, error}` with the
 *   reason, the path of the offending field and a sample of the line.
 * - A known `event_type`: `{ok: true, event: {event_type, raw}}`, `raw` narrowed to it.
 * - Any other `event_type`: `{ok: true, event: {event_type: 'unknown', raw}}`, whole.
 */
export function parseEveLine(line: string): EveParseResult {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    if (line.trim().length === 0) return fail('empty', '', 'empty line', line);
    return fail('not-json', '', `not JSON: ${(err as Error).message}`, line);
  }
  return checkEveObject(value, line);
}

/**
 * Check an already parsed value as an EVE event (what {@link parseEveLine} does after
 * `JSON.parse`). `line` only feeds the error sample.
 */
export function checkEveObject(value: unknown, line = ''): EveParseResult {
  if (!isObject(value))
    return fail('not-object', '', `an EVE line must be a JSON object, got ${show(value)}`, line);
  const bad = checkEnvelope(value, line);
  if (bad !== undefined) return bad;
  const type = value.event_type as string;
  const check = KNOWN.get(type);
  if (check === undefined) return { ok: true, event: { event_type: 'unknown', raw: value as EveEnvelope } };
  const badBody = check(value, line);
  if (badBody !== undefined) return badBody;
  return { ok: true, event: { event_type: type, raw: value } as EveEvent };
}

/** Suricata's line for a parsed event: its own object, serialised. */
export function serializeEve(event: EveEvent): string {
  return JSON.stringify(event.raw);
}
