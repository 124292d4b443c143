/**
 * A minimal DNS wire codec (RFC 1035, EDNS0 per RFC 6891): just what a forwarding
 * filter needs. Queries are parsed in one pass without allocation beyond the name;
 * upstream responses are scanned into record offsets so cached bytes can be served
 * with a patched ID and TTLs; small answers (block page, negative, CNAME rewrite) are
 * built here. Pure: no I/O.
 */

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  DNAME: 39,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  ANY: 255,
} as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export const CLASS_IN = 1;

/** Header flag bits (in the 16-bit flags word). */
export const FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

/** `A`, `AAAA`, … or `TYPE123` for the rest. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

/** Largest UDP answer without EDNS (RFC 1035). */
export const UDP_CLASSIC = 512;

/** A parsed query. `rcode` other than 0 means the query is answered with that error. */
export interface ParsedQuery {
  readonly id: number;
  readonly flags: number;
  /** 0 when the query is good; FORMERR, NOTIMP or REFUSED otherwise. */
  readonly rcode: number;
  /** Lower-case, without the trailing dot; '' for the root. Empty when the question did not parse. */
  readonly name: string;
  readonly type: number;
  readonly qclass: number;
  /** Offset just past the question (12 when there is no usable question). */
  readonly questionEnd: number;
  /** The client's EDNS UDP payload size; 0 when the query had no OPT record. */
  readonly ednsUdp: number;
  /** The DNSSEC OK bit of the client's OPT record. */
  readonly dnssecOk: boolean;
}

const scratch = Buffer.allocUnsafe(256);

/**
 * Parse a query. Returns undefined for bytes that must not be answered at all (shorter
 * than a header, or a response). Otherwise `rcode` says whether the query is good:
 * FORMERR for malformed messages, NOTIMP for opcodes other than QUERY, REFUSED for
 * names that cannot be matched safely (bytes outside printable ASCII or a dot inside
 * a label).
 */
export function parseQuery(buf: Buffer): ParsedQuery | undefined {
  const len = buf.length;
  if (len < 12) return undefined;
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if ((flags & FLAG.QR) !== 0) return undefined;
  if (((flags >>> 11) & 0xf) !== 0) return bad(id, flags, RCODE.NOTIMP);
  if (buf.readUInt16BE(4) !== 1) return bad(id, flags, RCODE.FORMERR);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);

  // question name: no compression in a question
  let p = 12;
  let n = 0;
  let unsafe = false;
  for (;;) {
    if (p >= len) return bad(id, flags, RCODE.FORMERR);
    const l = buf[p++] as number;
    if (l === 0) break;
    if (l > 63) return bad(id, flags, RCODE.FORMERR);
    // RFC 1035 3.1: at most 255 bytes on the wire; so far n + 1 of them without the root, a dot per label
    if (p + l > len || n + l + 2 > 254) return bad(id, flags, RCODE.FORMERR);
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = 0; i < l; i++) {
      let c = buf[p + i] as number;
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      else if (c <= 0x20 || c >= 0x7f || c === 0x2e) unsafe = true;
      scratch[n++] = c;
    }
    p += l;
  }
  if (p + 4 > len) return bad(id, flags, RCODE.FORMERR);
  const type = buf.readUInt16BE(p);
  const qclass = buf.readUInt16BE(p + 2);
  p += 4;
  const questionEnd = p;
  if (unsafe) return bad(id, flags, RCODE.REFUSED, questionEnd);
  const name = n === 0 ? '' : scratch.toString('latin1', 0, n);

  let ednsUdp = 0;
  let dnssecOk = false;
  const records = an + ns + ar;
  for (let r = 0; r < records; r++) {
    const start = p;
    p = skipName(buf, p);
    if (p < 0 || p + 10 > len) return bad(id, flags, RCODE.FORMERR, questionEnd);
    const rtype = buf.readUInt16BE(p);
    const rdlen = buf.readUInt16BE(p + 8);
    if (r >= an + ns && rtype === TYPE.OPT) {
      if (ednsUdp !== 0 || buf[start] !== 0) return bad(id, flags, RCODE.FORMERR, questionEnd);
      ednsUdp = Math.max(UDP_CLASSIC, buf.readUInt16BE(p + 2));
      dnssecOk = (buf.readUInt16BE(p + 6) & 0x8000) !== 0;
    }
    p += 10 + rdlen;
    if (p > len) return bad(id, flags, RCODE.FORMERR, questionEnd);
  }
  return { id, flags, rcode: 0, name, type, qclass, questionEnd, ednsUdp, dnssecOk };
}

function bad(id: number, flags: number, rcode: number, questionEnd = 12): ParsedQuery {
  return { id, flags, rcode, name: '', type: 0, qclass: 0, questionEnd, ednsUdp: 0, dnssecOk: false };
}

/** Offset after the (possibly compressed) name at `p`; -1 when malformed. */
export function skipName(buf: Buffer, p: number): number {
  const len = buf.length;
  for (;;) {
    if (p >= len) return -1;
    const l = buf[p] as number;
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2 <= len ? p + 2 : -1;
    if ((l & 0xc0) !== 0) return -1;
    p += l + 1;
  }
}

/**
 * Decode the (possibly compressed) name at `p` to lower-case dotted form (no trailing dot).
 * Returns undefined when malformed (bad label, pointer loop, longer than 255 bytes).
 */
export function decodeName(buf: Buffer, p: number): { name: string; end: number } | undefined {
  const len = buf.length;
  let end = -1;
  let n = 0;
  let jumps = 0;
  let out = '';
  for (;;) {
    if (p >= len) return undefined;
    const l = buf[p] as number;
    if (l === 0) {
      if (end < 0) end = p + 1;
      break;
    }
    if ((l & 0xc0) === 0xc0) {
      if (p + 1 >= len || ++jumps > 64) return undefined;
      if (end < 0) end = p + 2;
      const target = ((l & 0x3f) << 8) | (buf[p + 1] as number);
      if (target >= p) return undefined;
      p = target;
      continue;
    }
    if ((l & 0xc0) !== 0 || p + 1 + l > len) return undefined;
    n += l + 1;
    if (n > 254) return undefined; // 255 bytes on the wire with the root label
    const label = buf.toString('latin1', p + 1, p + 1 + l).toLowerCase();
    out = out === '' ? label : `${out}.${label}`;
    p += l + 1;
  }
  return { name: out, end };
}

/** Encode a dotted name (no trailing dot; '' = root) uncompressed. */
export function encodeName(name: string): Buffer {
  if (name === '') return Buffer.from([0]);
  const labels = name.split('.');
  const out = Buffer.allocUnsafe(name.length + 2);
  let p = 0;
  for (const l of labels) {
    out[p++] = l.length;
    p += out.write(l, p, 'latin1');
  }
  out[p++] = 0;
  return out.subarray(0, p);
}

/** One resource record of a scanned message: offsets into the message. */
export interface RecordRef {
  /** 0 answer, 1 authority, 2 additional. */
  readonly section: 0 | 1 | 2;
  readonly start: number;
  readonly type: number;
  readonly rclass: number;
  readonly ttl: number;
  /** Offset of the 32-bit TTL field. */
  readonly ttlOffset: number;
  readonly rdOffset: number;
  readonly rdLength: number;
  /** Offset just past the record. */
  readonly end: number;
}

/** A scanned response. */
export interface ScannedResponse {
  readonly id: number;
  readonly flags: number;
  readonly rcode: number;
  readonly name: string;
  readonly type: number;
  readonly qclass: number;
  readonly questionEnd: number;
  readonly records: readonly RecordRef[];
}

/** Scan a response (from an upstream). Undefined when malformed or not a response. */
export function scanResponse(buf: Buffer): ScannedResponse | undefined {
  if (buf.length < 12) return undefined;
  const flags = buf.readUInt16BE(2);
  if ((flags & FLAG.QR) === 0) return undefined;
  const qd = buf.readUInt16BE(4);
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  if (qd !== 1) return undefined;
  const q = decodeName(buf, 12);
  if (q === undefined || q.end + 4 > buf.length) return undefined;
  let p = q.end + 4;
  const questionEnd = p;
  const records: RecordRef[] = [];
  for (let s = 0; s < 3; s++) {
    const count = counts[s] as number;
    for (let r = 0; r < count; r++) {
      const start = p;
      p = skipName(buf, p);
      if (p < 0 || p + 10 > buf.length) return undefined;
      const rdLength = buf.readUInt16BE(p + 8);
      const end = p + 10 + rdLength;
      if (end > buf.length) return undefined;
      records.push({
        section: s as 0 | 1 | 2,
        start,
        type: buf.readUInt16BE(p),
        rclass: buf.readUInt16BE(p + 2),
        ttl: buf.readUInt32BE(p + 4),
        ttlOffset: p + 4,
        rdOffset: p + 10,
        rdLength,
        end,
      });
      p = end;
    }
  }
  return {
    id: buf.readUInt16BE(0),
    flags,
    rcode: flags & 0xf,
    name: q.name,
    type: buf.readUInt16BE(q.end),
    qclass: buf.readUInt16BE(q.end + 2),
    questionEnd,
    records,
  };
}

/** An IPv4 or IPv6 address from A/AAAA rdata. */
export function rdataAddress(buf: Buffer, ref: RecordRef): string | undefined {
  const o = ref.rdOffset;
  if (ref.type === TYPE.A && ref.rdLength === 4) return `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}`;
  if (ref.type === TYPE.AAAA && ref.rdLength === 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(buf.readUInt16BE(o + i).toString(16));
    return compressV6(parts);
  }
  return undefined;
}

/** RFC 5952 text form from eight hex groups. */
function compressV6(parts: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return parts.join(':');
  return `${parts.slice(0, bestStart).join(':')}::${parts.slice(bestStart + bestLen).join(':')}`;
}

/** A decoded record, names expanded: for building messages from parts of other messages. */
export interface RecordData {
  /** Owner name; undefined = the question's name (written as a pointer). */
  readonly name?: string;
  readonly type: number;
  readonly rclass?: number;
  /** Seconds. */
  readonly ttl: number;
  /** Rdata, uncompressed. */
  readonly rdata: Buffer;
}

/** Decode a scanned record with its names expanded (CNAME, NS, PTR, MX, SOA, SRV rdata too). */
export function decodeRecord(buf: Buffer, ref: RecordRef): RecordData | undefined {
  const owner = decodeName(buf, ref.start);
  if (owner === undefined) return undefined;
  let rdata: Buffer;
  const o = ref.rdOffset;
  const names = (at: number, count: number, tail: number): Buffer | undefined => {
    const parts: Buffer[] = [];
    let p = at;
    for (let i = 0; i < count; i++) {
      const n = decodeName(buf, p);
      if (n === undefined) return undefined;
      parts.push(encodeName(n.name));
      p = n.end;
    }
    parts.push(buf.subarray(p, p + tail));
    return Buffer.concat(parts);
  };
  switch (ref.type) {
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
    case TYPE.DNAME: {
      const r = names(o, 1, 0);
      if (r === undefined) return undefined;
      rdata = r;
      break;
    }
    case TYPE.MX: {
      const n = names(o + 2, 1, 0);
      if (n === undefined) return undefined;
      rdata = Buffer.concat([buf.subarray(o, o + 2), n]);
      break;
    }
    case TYPE.SRV: {
      const n = names(o + 6, 1, 0);
      if (n === undefined) return undefined;
      rdata = Buffer.concat([buf.subarray(o, o + 6), n]);
      break;
    }
    case TYPE.SOA: {
      const r = names(o, 2, 20);
      if (r === undefined) return undefined;
      rdata = r;
      break;
    }
    default:
      rdata = Buffer.from(buf.subarray(o, o + ref.rdLength));
  }
  return { name: owner.name, type: ref.type, rclass: ref.rclass, ttl: ref.ttl, rdata };
}

/** The SOA MINIMUM field of a scanned SOA record; undefined when malformed. */
export function soaMinimum(buf: Buffer, ref: RecordRef): number | undefined {
  let p = skipName(buf, ref.rdOffset);
  if (p < 0) return undefined;
  p = skipName(buf, p);
  if (p < 0 || p + 20 > ref.end) return undefined;
  return buf.readUInt32BE(p + 16);
}

/** An EDNS OPT record advertising `udpSize`, with the DO bit if asked. 11 bytes. */
export function optRecord(udpSize: number, dnssecOk = false): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(udpSize, 3);
  if (dnssecOk) b.writeUInt16BE(0x8000, 7);
  return b;
}

/** Build an upstream query: RD set, EDNS with `udpSize`. */
export function buildQuery(id: number, name: string, type: number, udpSize: number): Buffer {
  const qname = encodeName(name);
  const out = Buffer.alloc(12 + qname.length + 4 + 11);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(FLAG.RD, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  qname.copy(out, 12);
  let p = 12 + qname.length;
  out.writeUInt16BE(type, p);
  out.writeUInt16BE(CLASS_IN, p + 2);
  p += 4;
  optRecord(udpSize).copy(out, p);
  return out;
}

/** Response flags for a query: QR, the query's RD and CD, RA, and `extra`. */
export function responseFlags(query: ParsedQuery, rcode: number, extra = 0): number {
  return FLAG.QR | (query.flags & (FLAG.RD | FLAG.CD)) | FLAG.RA | extra | (rcode & 0xf);
}

export interface BuildOptions {
  readonly rcode: number;
  readonly answers?: readonly RecordData[];
  readonly authority?: readonly RecordData[];
  /** Extra header flags (e.g. AA). */
  readonly flags?: number;
  /** Our EDNS UDP payload size, advertised when the query had EDNS. */
  readonly udpSize: number;
  /** Largest message allowed; a larger one is truncated (TC set, question only). */
  readonly maxSize: number;
}

/**
 * Build a response to `query` (whose bytes are `raw`): the question echoed as asked,
 * the given records, an OPT record when the query had one.
 */
export function buildResponse(raw: Buffer, query: ParsedQuery, o: BuildOptions): Buffer {
  const qlen = query.rcode === 0 || query.questionEnd > 12 ? query.questionEnd - 12 : 0;
  const parts: Buffer[] = [];
  let size = 12 + qlen;
  const encode = (records: readonly RecordData[] | undefined): number => {
    if (records === undefined) return 0;
    for (const r of records) {
      const owner = r.name === undefined ? POINTER_TO_QUESTION : encodeName(r.name);
      const fixed = Buffer.allocUnsafe(10);
      fixed.writeUInt16BE(r.type, 0);
      fixed.writeUInt16BE(r.rclass ?? CLASS_IN, 2);
      fixed.writeUInt32BE(r.ttl >>> 0, 4);
      fixed.writeUInt16BE(r.rdata.length, 8);
      parts.push(owner, fixed, r.rdata);
      size += owner.length + 10 + r.rdata.length;
    }
    return records.length;
  };
  const an = qlen > 0 ? encode(o.answers) : 0;
  const ns = qlen > 0 ? encode(o.authority) : 0;
  const edns = query.ednsUdp > 0;
  if (edns) size += 11;
  if (size > o.maxSize) return truncated(raw, query, o.udpSize);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(responseFlags(query, o.rcode, o.flags ?? 0), 2);
  out.writeUInt16BE(qlen > 0 ? 1 : 0, 4);
  out.writeUInt16BE(an, 6);
  out.writeUInt16BE(ns, 8);
  out.writeUInt16BE(edns ? 1 : 0, 10);
  raw.copy(out, 12, 12, 12 + qlen);
  let p = 12 + qlen;
  for (const b of parts) p += b.copy(out, p);
  if (edns) optRecord(o.udpSize, query.dnssecOk).copy(out, p);
  return out;
}

/** A TC response: header and question only, so the client retries over TCP. */
export function truncated(raw: Buffer, query: ParsedQuery, udpSize: number): Buffer {
  const qlen = query.questionEnd - 12;
  const edns = query.ednsUdp > 0;
  const out = Buffer.allocUnsafe(12 + qlen + (edns ? 11 : 0));
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(responseFlags(query, 0, FLAG.TC), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(edns ? 1 : 0, 10);
  raw.copy(out, 12, 12, 12 + qlen);
  if (edns) optRecord(udpSize, query.dnssecOk).copy(out, 12 + qlen);
  return out;
}

const POINTER_TO_QUESTION = Buffer.from([0xc0, 0x0c]);

/** SOA rdata for synthesised negative answers. `minimum` in seconds. */
export function syntheticSoa(minimum: number): Buffer {
  const mname = encodeName('portcullis.invalid');
  const rname = encodeName('hostmaster.portcullis.invalid');
  const tail = Buffer.alloc(20);
  tail.writeUInt32BE(1, 0); // serial
  tail.writeUInt32BE(3600, 4); // refresh
  tail.writeUInt32BE(600, 8); // retry
  tail.writeUInt32BE(86400, 12); // expire
  tail.writeUInt32BE(minimum, 16);
  return Buffer.concat([mname, rname, tail]);
}

/** Rdata of an IPv4 address (dotted quad). */
export function ipv4Rdata(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  return Buffer.from(parts);
}

/** Rdata of an IPv6 address (any valid text form). */
export function ipv6Rdata(addr: string): Buffer {
  const out = Buffer.alloc(16);
  let text = addr;
  let tail4: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    tail4 = (v4[1] as string).split('.').map(Number);
    text = text.slice(0, -(v4[1] as string).length) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups =
    rest === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail4.length === 4) Buffer.from(tail4).copy(out, 12);
  return out;
}
