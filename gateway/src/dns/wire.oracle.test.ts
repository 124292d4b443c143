import dnsPacket, { type Answer, type DecodedPacket, type RecordType } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import {
  buildQuery,
  buildResponse,
  CLASS_IN,
  decodeName,
  decodeRecord,
  encodeName,
  FLAG,
  ipv4Rdata,
  ipv6Rdata,
  parseQuery,
  RCODE,
  rdataAddress,
  scanResponse,
  soaMinimum,
  syntheticSoa,
  type ParsedQuery,
  type RecordData,
} from './wire.js';

/**
 * Our DNS codec (wire.ts, kept for its measured speed) cross-checked against the
 * dns-packet library on seeded random messages: what dns-packet writes we read the
 * same, what we write dns-packet reads as meant, and malformed bytes (cut short,
 * bytes changed, pointer loops, names too long) give our answer for them (FORMERR,
 * or undefined for what must be dropped), never an exception. A failure prints the
 * seed and the case number.
 */

const SEED = 0x5eed_d115;

/** dns-packet's name codec (exported, but not in its type definitions). */
const names = (
  dnsPacket as unknown as { name: { decode: ((buf: Buffer, offset?: number) => string) & { bytes: number } } }
).name;

/** mulberry32: small, fast, good enough to pick test cases. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = random(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  bool(p = 0.5): boolean {
    return this.#next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T;
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }

  /** A host name of letters, digits, '-' and '_', mixed case; wire length up to `max` (≤ 255). */
  name(max = 255): string {
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
    // mostly short names, sometimes right at the limit
    const target = this.bool(0.15) ? max : 2 + this.int(Math.min(60, max - 1));
    const labels: string[] = [];
    let wire = 1;
    while (wire < target) {
      const room = Math.min(63, target - wire - 1);
      if (room < 1) break;
      const len = this.bool(0.1) ? room : 1 + this.int(Math.min(room, 12));
      labels.push(Array.from({ length: len }, () => this.pick([...chars])).join(''));
      wire += len + 1;
    }
    return labels.join('.');
  }

  ipv4(): string {
    return [this.int(256), this.int(256), this.int(256), this.int(256)].join('.');
  }

  /** An IPv6 address with runs of zero groups, so that text forms differ in compression. */
  ipv6(): string {
    const groups = Array.from({ length: 8 }, () => (this.bool(0.4) ? 0 : this.int(0x10000)));
    return groups.map((g) => g.toString(16)).join(':');
  }
}

const QUESTION_TYPES: readonly [RecordType, number][] = [
  ['A', 1],
  ['NS', 2],
  ['CNAME', 5],
  ['SOA', 6],
  ['PTR', 12],
  ['MX', 15],
  ['TXT', 16],
  ['AAAA', 28],
  ['SRV', 33],
];

const RCODE_NAMES: Record<number, string> = {
  [RCODE.NOERROR]: 'NOERROR',
  [RCODE.SERVFAIL]: 'SERVFAIL',
  [RCODE.NXDOMAIN]: 'NXDOMAIN',
  [RCODE.REFUSED]: 'REFUSED',
};

/** A random query as dns-packet writes it, with what it means. */
function randomQuery(g: Gen) {
  const [typeName, type] = g.pick(QUESTION_TYPES);
  const meant = {
    id: g.int(0x10000),
    rd: g.bool(0.9),
    cd: g.bool(0.2),
    name: g.name(),
    typeName,
    type,
    edns: g.bool(0.7) ? g.int(0x10000) : undefined,
    dnssecOk: g.bool(0.3),
  };
  const wire = dnsPacket.encode({
    type: 'query',
    id: meant.id,
    flags: (meant.rd ? dnsPacket.RECURSION_DESIRED : 0) | (meant.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ type: typeName, name: meant.name, class: 'IN' }],
    additionals:
      meant.edns === undefined
        ? []
        : [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: meant.edns,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: meant.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
              flag_do: meant.dnssecOk,
              options: [],
            },
          ],
  });
  return { meant, wire };
}

/** A random resource record of the types the filter looks into, as dns-packet takes it. */
function randomAnswer(g: Gen): Answer {
  const name = g.name(120);
  const ttl = g.int(0x80000000);
  switch (g.int(9)) {
    case 0:
      return { type: 'A', name, ttl, data: g.ipv4() };
    case 1:
      return { type: 'AAAA', name, ttl, data: g.ipv6() };
    case 2:
      return { type: g.pick(['CNAME', 'NS', 'PTR', 'DNAME'] as const), name, ttl, data: g.name(120) };
    case 3:
      return { type: 'MX', name, ttl, data: { preference: g.int(0x10000), exchange: g.name(120) } };
    case 4:
      return {
        type: 'SRV',
        name,
        ttl,
        data: { priority: g.int(0x10000), weight: g.int(0x10000), port: g.int(0x10000), target: g.name(120) },
      };
    case 5:
      return {
        type: 'SOA',
        name,
        ttl,
        data: {
          mname: g.name(100),
          rname: g.name(100),
          serial: g.int(0x100000000),
          refresh: g.int(0x100000000),
          retry: g.int(0x100000000),
          expire: g.int(0x100000000),
          minimum: g.int(0x100000000),
        },
      };
    case 6:
      return {
        type: 'TXT',
        name,
        ttl,
        data: Array.from({ length: 1 + g.int(3) }, () =>
          g
            .bytes(g.int(80))
            .toString('latin1')
            .replace(/[^ -~]/g, 'x'),
        ),
      };
    default:
      return { type: 'NULL', name, ttl, data: g.bytes(g.int(40)) };
  }
}

/** A random response as dns-packet writes it. */
function randomResponse(g: Gen) {
  const [typeName] = g.pick(QUESTION_TYPES);
  const section = (): Answer[] => Array.from({ length: g.int(4) }, () => randomAnswer(g));
  const packet = {
    type: 'response' as const,
    id: g.int(0x10000),
    flags:
      (g.bool() ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
      (g.bool(0.1) ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      (g.bool() ? dnsPacket.RECURSION_DESIRED : 0) |
      (g.bool() ? dnsPacket.RECURSION_AVAILABLE : 0) |
      (g.bool(0.2) ? dnsPacket.AUTHENTIC_DATA : 0) |
      g.pick([0, 2, 3, 5]),
    questions: [{ type: typeName, name: g.name(), class: 'IN' as const }],
    answers: section(),
    authorities: section(),
    additionals: section(),
  };
  return { packet, wire: dnsPacket.encode(packet) };
}

const lower = (name: string): string => (name === '.' ? '' : name.toLowerCase());

/** Runs `check` on `count` seeded cases; a failure names its case. */
function forCases(count: number, seed: number, check: (g: Gen, i: number) => void): void {
  const g = new Gen(seed);
  for (let i = 0; i < count; i++) {
    try {
      check(g, i);
    } catch (err) {
      (err as Error).message = `case ${i} (seed ${seed.toString(16)}): ${(err as Error).message}`;
      throw err;
    }
  }
}

function parsed(wire: Buffer): ParsedQuery {
  const q = parseQuery(wire);
  if (q === undefined) throw new Error('query dropped');
  return q;
}

/** The name-bearing rdata of our decodeRecord, read back by dns-packet. */
function nameAt(rdata: Buffer, offset: number): string {
  return lower(names.decode(rdata, offset));
}

// thousands of seeded messages each: a few hundred ms alone, seconds on a loaded CI machine
describe('wire.ts against dns-packet (seeded random messages)', { timeout: 60_000 }, () => {
  it('reads every query dns-packet writes as meant', () => {
    forCases(3000, SEED, (g) => {
      const { meant, wire } = randomQuery(g);
      expect(parseQuery(wire)).toEqual({
        id: meant.id,
        flags: (meant.rd ? FLAG.RD : 0) | (meant.cd ? FLAG.CD : 0),
        rcode: 0,
        name: meant.name.toLowerCase(),
        type: meant.type,
        qclass: CLASS_IN,
        questionEnd: 12 + encodeName(meant.name).length + 4,
        ednsUdp: meant.edns === undefined ? 0 : Math.max(512, meant.edns),
        dnssecOk: meant.edns !== undefined && meant.dnssecOk,
      });
    });
  });

  it('writes upstream queries dns-packet reads as meant', () => {
    forCases(1000, SEED + 1, (g) => {
      const [typeName, type] = g.pick(QUESTION_TYPES);
      const id = g.int(0x10000);
      const name = g.name().toLowerCase();
      const udp = 512 + g.int(65536 - 512);
      const d = dnsPacket.decode(buildQuery(id, name, type, udp));
      expect(d).toMatchObject({
        id,
        type: 'query',
        flag_rd: true,
        flag_cd: false,
        answers: [],
        authorities: [],
      });
      expect(d.questions).toEqual([{ name: name === '' ? '.' : name, type: typeName, class: 'IN' }]);
      expect(d.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: udp, flag_do: false }]);
    });
  });

  it('scans every response dns-packet writes, records and names as meant', () => {
    forCases(1000, SEED + 2, (g) => {
      const { packet, wire } = randomResponse(g);
      const scan = scanResponse(wire);
      if (scan === undefined) throw new Error('response refused');
      const question = packet.questions[0]!;
      expect(scan).toMatchObject({
        id: packet.id,
        flags: packet.flags | FLAG.QR,
        rcode: packet.flags & 0xf,
        name: lower(question.name),
        type: QUESTION_TYPES.find(([n]) => n === question.type)![1],
        qclass: CLASS_IN,
      });
      const sections = [packet.answers, packet.authorities, packet.additionals];
      const meant = sections.flatMap((list, s) => list.map((a) => ({ s, a })));
      expect(scan.records.map((r) => r.section)).toEqual(meant.map(({ s }) => s));
      scan.records.forEach((ref, i) => {
        const a = meant[i]!.a as Answer & { ttl: number; data: unknown };
        expect(ref.ttl).toBe(a.ttl);
        expect(ref.rclass).toBe(CLASS_IN);
        const rec = decodeRecord(wire, ref);
        if (rec === undefined) throw new Error(`record ${i} (${a.type}) not decoded`);
        expect(rec.name).toBe(lower(a.name));
        const data = a.data as never;
        switch (a.type) {
          case 'A':
            expect(rdataAddress(wire, ref)).toBe(data);
            break;
          case 'AAAA': {
            // RFC 5952 text, as the WHATWG URL serialiser writes it
            expect(rdataAddress(wire, ref)).toBe(new URL(`http://[${data as string}]`).hostname.slice(1, -1));
            break;
          }
          case 'CNAME':
          case 'NS':
          case 'PTR':
          case 'DNAME':
            expect(nameAt(rec.rdata, 0)).toBe(lower(data));
            break;
          case 'MX': {
            const mx = data as { preference: number; exchange: string };
            expect(rec.rdata.readUInt16BE(0)).toBe(mx.preference);
            expect(nameAt(rec.rdata, 2)).toBe(lower(mx.exchange));
            break;
          }
          case 'SRV': {
            const srv = data as { priority: number; weight: number; port: number; target: string };
            expect([0, 2, 4].map((o) => rec.rdata.readUInt16BE(o))).toEqual([
              srv.priority,
              srv.weight,
              srv.port,
            ]);
            expect(nameAt(rec.rdata, 6)).toBe(lower(srv.target));
            break;
          }
          case 'SOA': {
            const soa = data as { mname: string; rname: string; minimum: number };
            expect(soaFrom(rec.rdata)).toEqual({ ...soa, mname: lower(soa.mname), rname: lower(soa.rname) });
            expect(soaMinimum(wire, ref)).toBe(soa.minimum);
            break;
          }
          case 'TXT':
            // dns-packet's encode turned the strings into Buffers in place
            expect(txtStrings(rec.rdata)).toEqual(
              (data as Buffer[]).map((b) => Buffer.from(b).toString('latin1')),
            );
            break;
          default:
            expect(rec.rdata).toEqual(data);
        }
      });
    });
  });

  it('builds responses dns-packet reads as meant: question echoed, records, EDNS, truncation', () => {
    forCases(1000, SEED + 3, (g) => {
      const { meant, wire } = randomQuery(g);
      const query = parsed(wire);
      const answers: { record: RecordData; as: Answer }[] = Array.from({ length: g.int(5) }, () => {
        const owner = g.bool() ? undefined : g.name(100);
        const ttl = g.int(0x80000000);
        const name = owner ?? meant.name;
        switch (g.int(4)) {
          case 0: {
            const ip = g.ipv4();
            return {
              record: { name: owner, type: 1, ttl, rdata: ipv4Rdata(ip) },
              as: { type: 'A', name, ttl, data: ip },
            };
          }
          case 1: {
            const ip = g.ipv6();
            return {
              record: { name: owner, type: 28, ttl, rdata: ipv6Rdata(ip) },
              as: { type: 'AAAA', name, ttl, data: ip },
            };
          }
          case 2: {
            const target = g.name(100);
            return {
              record: { name: owner, type: 5, ttl, rdata: encodeName(target) },
              as: { type: 'CNAME', name, ttl, data: target },
            };
          }
          default: {
            const text = g
              .bytes(g.int(100))
              .toString('latin1')
              .replace(/[^ -~]/g, 'y');
            const rdata = Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'latin1')]);
            return {
              record: { name: owner, type: 16, ttl, rdata },
              as: { type: 'TXT', name, ttl, data: [text] },
            };
          }
        }
      });
      const minimum = g.int(0x100000000);
      const authority = g.bool(0.3) ? [{ type: 6, ttl: minimum, rdata: syntheticSoa(minimum) }] : [];
      const rcode = g.pick([RCODE.NOERROR, RCODE.NXDOMAIN, RCODE.SERVFAIL, RCODE.REFUSED]);
      const udpSize = 512 + g.int(4096);
      const maxSize = g.bool(0.8) ? 65535 : 12 + g.int(600);
      const out = buildResponse(wire, query, {
        rcode,
        answers: answers.map((a) => a.record),
        authority,
        flags: g.bool() ? FLAG.AA : 0,
        udpSize,
        maxSize,
      });
      const d: DecodedPacket = dnsPacket.decode(out);
      const cut = d.flag_tc;
      expect(d).toMatchObject({
        id: meant.id,
        type: 'response',
        flag_rd: meant.rd,
        flag_cd: meant.cd,
        flag_ra: true,
        rcode: cut ? 'NOERROR' : RCODE_NAMES[rcode],
      });
      expect(d.questions).toEqual([{ name: meant.name || '.', type: meant.typeName, class: 'IN' }]);
      if (cut) {
        expect(out.length).toBeGreaterThan(0);
        expect([d.answers, d.authorities]).toEqual([[], []]);
      } else {
        expect(out.length).toBeLessThanOrEqual(maxSize);
        expect(d.answers!.map(normalise)).toEqual(answers.map((a) => normalise(a.as)));
        expect(d.authorities!.map((a) => (a as { data: { minimum: number } }).data.minimum)).toEqual(
          authority.map(() => minimum),
        );
      }
      expect(d.additionals).toEqual(
        meant.edns === undefined
          ? []
          : [expect.objectContaining({ type: 'OPT', udpPayloadSize: udpSize, flag_do: meant.dnssecOk })],
      );
    });
  });

  describe('malformed input: our answer for it, never an exception', () => {
    it('refuses every message cut short (dns-packet refuses every query cut short too)', () => {
      forCases(300, SEED + 4, (g) => {
        const { wire: query } = randomQuery(g);
        const { wire: response } = randomResponse(g);
        // one assertion per message: an expect per cut would dominate the run time
        const accepted: string[] = [];
        for (let len = 0; len < query.length; len++) {
          const part = query.subarray(0, len);
          const q = parseQuery(part);
          if (q !== undefined && q.rcode !== RCODE.FORMERR) accepted.push(`query cut at ${len}`);
          try {
            dnsPacket.decode(part);
            accepted.push(`dns-packet: query cut at ${len}`);
          } catch {
            // refused, as it should be
          }
        }
        // no cross-check here: dns-packet reads rdata without a bounds check (a missing
        // byte of an AAAA record comes out as 0), so it takes some cut responses as whole
        for (let len = 0; len < response.length; len++) {
          if (scanResponse(response.subarray(0, len)) !== undefined) accepted.push(`response cut at ${len}`);
        }
        expect(accepted).toEqual([]);
      });
    });

    it('refuses pointer loops, forward pointers and names over 255 bytes, as dns-packet does', () => {
      const header = (flags: number): Buffer => {
        const h = Buffer.alloc(12);
        h.writeUInt16BE(flags, 2);
        h.writeUInt16BE(1, 4);
        return h;
      };
      const tail = Buffer.from([0, 1, 0, 1]);
      const longName = Buffer.concat([
        ...Array.from({ length: 4 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])),
        Buffer.from([0]),
      ]);
      expect(longName.length).toBe(257);
      const okName = Buffer.concat([
        longName.subarray(0, 192),
        Buffer.from([61, ...Buffer.alloc(61, 0x61), 0]),
      ]);
      expect(okName.length).toBe(255);
      const oneOver = Buffer.concat([
        longName.subarray(0, 192),
        Buffer.from([62, ...Buffer.alloc(62, 0x61), 0]),
      ]);
      expect(oneOver.length).toBe(256);
      const cases: [string, Buffer][] = [
        ['name of 256 bytes', oneOver],
        ['pointer to itself', Buffer.from([0xc0, 12])],
        ['forward pointer', Buffer.from([0xc0, 14, 0, 0])],
        ['name of 257 bytes', longName],
      ];
      for (const [what, name] of cases) {
        for (const flags of [0, FLAG.QR]) {
          const msg = Buffer.concat([header(flags), name, tail]);
          expect(() => dnsPacket.decode(msg), `dns-packet: ${what}`).toThrow();
          expect(decodeName(msg, 12), what).toBeUndefined();
          if (flags === 0) expect(parseQuery(msg)?.rcode, what).toBe(RCODE.FORMERR);
          else expect(scanResponse(msg), what).toBeUndefined();
        }
      }
      // the positive control: 255 bytes is the longest name, and both read it
      const longest = Buffer.concat([header(0), okName, tail]);
      expect(dnsPacket.decode(longest).questions![0]!.name).toHaveLength(253);
      expect(parsed(longest)).toMatchObject({
        rcode: 0,
        name: dnsPacket.decode(longest).questions![0]!.name,
      });
      expect(decodeName(longest, 12)?.name).toHaveLength(253);
    });

    it('never throws on changed bytes or garbage, and what it returns stays inside the message', () => {
      forCases(1500, SEED + 5, (g) => {
        const base = g.bool() ? randomQuery(g).wire : randomResponse(g).wire;
        const msg = g.bool(0.2) ? g.bytes(g.int(300)) : Buffer.from(base);
        for (let k = 1 + g.int(4); k > 0 && msg.length > 0; k--) msg[g.int(msg.length)] = g.int(256);
        const q = parseQuery(msg);
        if (q !== undefined) {
          expect([RCODE.NOERROR, RCODE.FORMERR, RCODE.NOTIMP, RCODE.REFUSED]).toContain(q.rcode);
          expect(q.questionEnd).toBeLessThanOrEqual(msg.length);
          expect(q.name.length).toBeLessThanOrEqual(253);
        }
        const scan = scanResponse(msg);
        for (const ref of scan?.records ?? []) {
          expect(ref.rdOffset + ref.rdLength).toBe(ref.end);
          expect(ref.end).toBeLessThanOrEqual(msg.length);
          decodeRecord(msg, ref);
          rdataAddress(msg, ref);
          if (ref.type === 6) soaMinimum(msg, ref);
        }
        for (let p = 0; p < msg.length; p += 1 + g.int(8)) {
          const n = decodeName(msg, p);
          if (n !== undefined) expect(n.end).toBeLessThanOrEqual(msg.length);
        }
      });
    });
  });
});

/** SOA rdata (uncompressed names) as dns-packet's SOA data. */
function soaFrom(rdata: Buffer): Record<string, string | number> {
  const mname = nameAt(rdata, 0);
  let p = names.decode.bytes;
  const rname = nameAt(rdata, p);
  p += names.decode.bytes;
  const [serial, refresh, retry, expire, minimum] = [0, 4, 8, 12, 16].map((o) => rdata.readUInt32BE(p + o));
  return {
    mname,
    rname,
    serial: serial!,
    refresh: refresh!,
    retry: retry!,
    expire: expire!,
    minimum: minimum!,
  };
}

/** The character-strings of TXT rdata. */
function txtStrings(rdata: Buffer): string[] {
  const out: string[] = [];
  for (let p = 0; p < rdata.length; p += 1 + (rdata[p] as number))
    out.push(rdata.toString('latin1', p + 1, p + 1 + (rdata[p] as number)));
  return out;
}

/** An answer as comparable data: names in lower case, addresses as bytes, TXT as strings. */
function normalise(a: Answer): unknown {
  const { type, name } = a;
  const data = (a as { data: unknown }).data;
  const ttl = (a as { ttl?: number }).ttl;
  const value =
    type === 'AAAA'
      ? ipv6Rdata(data as string).toString('hex')
      : type === 'CNAME'
        ? lower(data as string)
        : type === 'TXT'
          ? (data as (string | Buffer)[]).map((s) => s.toString())
          : data;
  return { type, name: lower(name), ttl, value };
}
