import {
  decodeName,
  FLAG,
  optRecord,
  rdataAddress,
  RCODE,
  scanResponse,
  soaMinimum,
  truncated,
  TYPE,
  type ParsedQuery,
  type RecordRef,
  type ScannedResponse,
} from './wire.js';

/**
 * Upstream answers, ready to serve: the bytes as received (minus the OPT record) with
 * TTLs clamped, the offsets of every TTL field, and what the filter needs to know
 * about the answer (addresses, CNAME chain). A cached answer is served by copying the
 * bytes, patching the ID, flags and TTLs, and appending an OPT record when the client
 * used EDNS.
 */

export interface TtlOptions {
  /** Shortest TTL kept and served, in seconds. Default 0. */
  readonly minTtl?: number;
  /** Longest TTL kept and served, in seconds. Default 86,400. */
  readonly maxTtl?: number;
  /** Longest negative (NXDOMAIN/NODATA) TTL, in seconds (RFC 2308). Default 3,600. */
  readonly negativeMaxTtl?: number;
}

export interface CacheOptions extends TtlOptions {
  /** Most answers kept; the least recently used goes first. Default 10,000. */
  readonly maxEntries?: number;
}

/** An upstream answer prepared for serving (and caching when `ttl` > 0). */
export interface Prepared {
  /** Response bytes: ID 0, no OPT record, TTLs clamped. */
  readonly buf: Buffer;
  readonly flags: number;
  readonly rcode: number;
  /** Offsets of the TTL fields in `buf`, with the TTL each holds (seconds). */
  readonly ttlOffsets: Uint32Array;
  readonly ttls: Uint32Array;
  /** When the answer was received, ms since the epoch. */
  readonly storedAt: number;
  /** Seconds the answer may be cached; 0 = not cacheable. */
  readonly ttl: number;
  /** A/AAAA addresses of the question's name (following its CNAME chain). */
  readonly v4: readonly string[];
  readonly v6: readonly string[];
  /** CNAME targets on the way to the answer, in order. */
  readonly cnames: readonly string[];
  /** A short text of the answer, for the query log. */
  readonly answers: readonly string[];
  readonly scanned: ScannedResponse;
  /** Upstream that answered, and how long it took (ms). */
  readonly upstream: string;
  readonly upstreamMs: number;
}

const clampInt = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/**
 * Prepare an upstream response. Returns undefined when it cannot be served (malformed).
 * Cacheable: NOERROR with answers (TTL = the smallest record TTL, clamped), and
 * NXDOMAIN/NODATA with an SOA (TTL = min(SOA TTL, SOA MINIMUM), RFC 2308). Other
 * responses are served once and not kept.
 */
export function prepare(
  raw: Buffer,
  now: number,
  o: TtlOptions,
  upstream = '',
  upstreamMs = 0,
): Prepared | undefined {
  const scannedRaw = scanResponse(raw);
  if (scannedRaw === undefined) return undefined;
  const minTtl = o.minTtl ?? 0;
  const maxTtl = o.maxTtl ?? 86_400;
  const negMax = o.negativeMaxTtl ?? 3_600;

  // drop OPT (and TSIG) records; only when they are last, so no compression pointer moves
  let buf = Buffer.from(raw);
  let scanned = scannedRaw;
  let records = scannedRaw.records;
  let cacheable = true;
  const extra = records.filter((r) => r.section === 2 && (r.type === TYPE.OPT || r.type === 250));
  if (extra.length > 0) {
    const firstExtra = extra[0] as RecordRef;
    const tailOnly = records
      .slice(records.indexOf(firstExtra))
      .every((r) => r.type === TYPE.OPT || r.type === 250);
    if (tailOnly) {
      buf = buf.subarray(0, firstExtra.start);
      buf.writeUInt16BE(buf.readUInt16BE(10) - extra.length, 10);
      records = records.filter((r) => !extra.includes(r));
      scanned = { ...scannedRaw, records };
    } else {
      cacheable = false;
    }
  }
  buf.writeUInt16BE(0, 0);

  const rcode = scanned.rcode;
  const answers = records.filter((r) => r.section === 0);
  const negative = rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && answers.length === 0);
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) cacheable = false;
  if ((scanned.flags & FLAG.TC) !== 0) cacheable = false;

  const ttlOffsets = new Uint32Array(records.length);
  const ttls = new Uint32Array(records.length);
  let min = Infinity;
  let haveSoa = false;
  records.forEach((r, i) => {
    let ttl = r.ttl > 0x7fffffff ? 0 : r.ttl; // RFC 2181: a TTL with the top bit set means 0
    if (r.type === TYPE.SOA && r.section === 1) {
      const m = soaMinimum(buf, r);
      if (m !== undefined) {
        haveSoa = true;
        ttl = Math.min(ttl, m, negMax);
      }
    }
    ttl = clampInt(ttl, minTtl, maxTtl);
    ttlOffsets[i] = r.ttlOffset;
    ttls[i] = ttl;
    buf.writeUInt32BE(ttl, r.ttlOffset);
    min = Math.min(min, ttl);
  });
  if (negative && !haveSoa) cacheable = false;
  if (!Number.isFinite(min)) cacheable = false;

  // follow the CNAME chain from the question's name
  const chain = new Set([scanned.name]);
  const cnames: string[] = [];
  const text: string[] = [];
  const v4: string[] = [];
  const v6: string[] = [];
  const owners = answers.map((r) => decodeName(buf, r.start)?.name);
  for (let pass = 0, grew = true; grew && pass < 16; pass++) {
    grew = false;
    answers.forEach((r, i) => {
      if (r.type !== TYPE.CNAME || !chain.has(owners[i] ?? '\0')) return;
      const target = decodeName(buf, r.rdOffset)?.name;
      if (target !== undefined && !chain.has(target)) {
        chain.add(target);
        cnames.push(target);
        text.push(`CNAME ${target}`);
        grew = true;
      }
    });
  }
  answers.forEach((r, i) => {
    if (!chain.has(owners[i] ?? '\0')) return;
    const addr = rdataAddress(buf, r);
    if (addr === undefined) return;
    (r.type === TYPE.A ? v4 : v6).push(addr);
    text.push(addr);
  });
  if (negative) text.push(rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'NODATA');

  return {
    buf,
    flags: scanned.flags,
    rcode,
    ttlOffsets,
    ttls,
    storedAt: now,
    ttl: cacheable ? min : 0,
    v4,
    v6,
    cnames,
    answers: text,
    scanned,
    upstream,
    upstreamMs,
  };
}

/** Seconds of `p` left at `now` (ms). */
export function remainingTtl(p: Prepared, now: number): number {
  return Math.max(0, p.ttl - Math.floor((now - p.storedAt) / 1000));
}

/**
 * Serve a prepared answer to `query` (whose bytes are `raw`): copy, patch ID, flags,
 * question case and TTLs, add OPT for EDNS clients, truncate (TC) above `maxSize`.
 * @param udpSize our EDNS payload size, advertised in the OPT record.
 */
export function serve(
  p: Prepared,
  raw: Buffer,
  query: ParsedQuery,
  now: number,
  udpSize: number,
  maxSize: number,
): Buffer {
  const edns = query.ednsUdp > 0;
  const src = p.buf;
  const size = src.length + (edns ? 11 : 0);
  if (size > maxSize) return truncated(raw, query, udpSize);
  const out = Buffer.allocUnsafe(size);
  src.copy(out, 0);
  out.writeUInt16BE(query.id, 0);
  const keepAd = query.dnssecOk || (query.flags & FLAG.AD) !== 0;
  const flags =
    (p.flags & ~(FLAG.RD | FLAG.CD | FLAG.AD | FLAG.TC)) |
    (query.flags & (FLAG.RD | FLAG.CD)) |
    (keepAd ? p.flags & FLAG.AD : 0) |
    FLAG.RA;
  out.writeUInt16BE(flags, 2);
  // the question as the client spelt it (same length: same name, maybe other case)
  raw.copy(out, 12, 12, query.questionEnd);
  const elapsed = Math.floor((now - p.storedAt) / 1000);
  if (elapsed > 0) {
    const offs = p.ttlOffsets;
    const ttls = p.ttls;
    for (let i = 0; i < offs.length; i++) {
      const t = (ttls[i] as number) - elapsed;
      out.writeUInt32BE(t > 0 ? t : 0, offs[i] as number);
    }
  }
  if (edns) {
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    optRecord(udpSize, query.dnssecOk).copy(out, src.length);
  }
  return out;
}

/**
 * A bounded LRU of prepared answers. Recency is refreshed at most once a second per
 * entry, which keeps hits cheap and the order close to true LRU.
 */
export class DnsCache {
  readonly maxEntries: number;
  readonly #map = new Map<string, { p: Prepared; expiresAt: number; touched: number }>();

  /** @param maxEntries most answers kept (default 10,000; at least 1). */
  constructor(maxEntries = 10_000) {
    this.maxEntries = Math.max(1, Math.floor(maxEntries));
  }

  get size(): number {
    return this.#map.size;
  }

  /** The key for a question. */
  static key(name: string, type: number): string {
    return `${type}/${name}`;
  }

  /** A live answer for `key` at `now` (ms), or undefined. */
  get(key: string, now: number): Prepared | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (now >= e.expiresAt) {
      this.#map.delete(key);
      return undefined;
    }
    if (now - e.touched >= 1000) {
      e.touched = now;
      this.#map.delete(key);
      this.#map.set(key, e);
    }
    return e.p;
  }

  /** Keep `p` under `key` when it is cacheable (ttl > 0). */
  set(key: string, p: Prepared): void {
    if (p.ttl <= 0) return;
    this.#map.delete(key);
    this.#map.set(key, { p, expiresAt: p.storedAt + p.ttl * 1000, touched: p.storedAt });
    while (this.#map.size > this.maxEntries) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#map.delete(oldest.value);
    }
  }

  clear(): void {
    this.#map.clear();
  }
}
