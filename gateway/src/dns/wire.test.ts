import { describe, expect, it } from 'vitest';
import {
  buildQuery,
  buildResponse,
  decodeName,
  encodeName,
  FLAG,
  ipv4Rdata,
  ipv6Rdata,
  optRecord,
  parseQuery,
  RCODE,
  rdataAddress,
  scanResponse,
  TYPE,
  type ParsedQuery,
} from './wire.js';

/** A client query as a stub would send it: RD, optional EDNS. */
function makeQuery(
  name: string,
  type: number = TYPE.A,
  opts: { id?: number; edns?: number; wire?: Buffer } = {},
): Buffer {
  const q = opts.wire ?? encodeName(name);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(opts.id ?? 0x1234, 0);
  head.writeUInt16BE(FLAG.RD, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(opts.edns === undefined ? 0 : 1, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([head, q, tail, opts.edns === undefined ? Buffer.alloc(0) : optRecord(opts.edns)]);
}

const parsed = (b: Buffer): ParsedQuery => {
  const q = parseQuery(b);
  if (q === undefined) throw new Error('dropped');
  return q;
};

describe('parseQuery', () => {
  it('reads ID, lower-cased name, type and EDNS', () => {
    const q = parsed(makeQuery('WWW.Example.COM', TYPE.AAAA, { id: 7, edns: 4096 }));
    expect(q).toMatchObject({
      id: 7,
      rcode: 0,
      name: 'www.example.com',
      type: TYPE.AAAA,
      qclass: 1,
      ednsUdp: 4096,
    });
  });

  it('reads the root name as the empty string', () => {
    expect(parsed(makeQuery('', TYPE.NS)).name).toBe('');
  });

  it('drops what is shorter than a header, and responses', () => {
    expect(parseQuery(Buffer.alloc(5))).toBeUndefined();
    const r = makeQuery('a.example');
    r.writeUInt16BE(FLAG.QR, 2);
    expect(parseQuery(r)).toBeUndefined();
  });

  it('answers FORMERR for truncated or inconsistent messages', () => {
    const q = makeQuery('www.example.com');
    expect(parsed(q.subarray(0, q.length - 2)).rcode).toBe(RCODE.FORMERR);
    const two = Buffer.from(q);
    two.writeUInt16BE(2, 4);
    expect(parsed(two).rcode).toBe(RCODE.FORMERR);
    const pointer = makeQuery('', TYPE.A, { wire: Buffer.from([0xc0, 0x0c]) });
    expect(parsed(pointer).rcode).toBe(RCODE.FORMERR);
    const arcount = makeQuery('a.example');
    arcount.writeUInt16BE(1, 10);
    expect(parsed(arcount).rcode).toBe(RCODE.FORMERR);
  });

  it('answers NOTIMP for other opcodes', () => {
    const q = makeQuery('a.example');
    q.writeUInt16BE(FLAG.RD | (5 << 11), 2);
    expect(parsed(q).rcode).toBe(RCODE.NOTIMP);
  });

  it('refuses names it cannot match safely: a dot inside a label, control bytes', () => {
    const dotted = Buffer.concat([
      Buffer.from([9]),
      Buffer.from('a.youtube'),
      Buffer.from([3]),
      Buffer.from('com'),
      Buffer.from([0]),
    ]);
    expect(parsed(makeQuery('', TYPE.A, { wire: dotted })).rcode).toBe(RCODE.REFUSED);
    const nul = Buffer.from([3, 0x61, 0x00, 0x62, 0]);
    expect(parsed(makeQuery('', TYPE.A, { wire: nul })).rcode).toBe(RCODE.REFUSED);
  });
});

describe('names and addresses', () => {
  it('decodes compressed names and refuses pointer loops', () => {
    const msg = Buffer.concat([
      Buffer.alloc(12),
      encodeName('example.com'),
      Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12]),
    ]);
    expect(decodeName(msg, 25)).toEqual({ name: 'www.example.com', end: 31 });
    const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
    expect(decodeName(loop, 12)).toBeUndefined();
  });

  it('round-trips IPv4 and IPv6 rdata', () => {
    expect([...ipv4Rdata('192.0.2.7')]).toEqual([192, 0, 2, 7]);
    for (const a of ['2001:db8::1', '::1', '2001:db8:0:1:1:1:1:1', 'fe80::', '::']) {
      const rdata = ipv6Rdata(a);
      const msg = Buffer.concat([Buffer.alloc(10), rdata]);
      expect(rdataAddress(msg, { type: TYPE.AAAA, rdLength: 16, rdOffset: 10 } as never)).toBe(a);
    }
    expect(ipv6Rdata('::ffff:192.0.2.1').subarray(12).toString('hex')).toBe('c0000201');
  });
});

describe('buildResponse', () => {
  it('echoes the question as asked and points answers at it', () => {
    const raw = makeQuery('Blocked.Example', TYPE.A, { id: 99 });
    const q = parsed(raw);
    const out = buildResponse(raw, q, {
      rcode: 0,
      answers: [{ type: TYPE.A, ttl: 10, rdata: ipv4Rdata('192.0.2.1') }],
      udpSize: 1232,
      maxSize: 512,
    });
    const s = scanResponse(out);
    expect(out.readUInt16BE(0)).toBe(99);
    expect(out.toString('latin1', 13, 20)).toBe('Blocked');
    expect(s?.records).toHaveLength(1);
    expect(rdataAddress(out, s!.records[0]!)).toBe('192.0.2.1');
    expect(decodeName(out, s!.records[0]!.start)?.name).toBe('blocked.example');
    expect(out.readUInt16BE(2) & (FLAG.QR | FLAG.RD | FLAG.RA)).toBe(FLAG.QR | FLAG.RD | FLAG.RA);
  });

  it('adds OPT for EDNS queries and truncates what does not fit', () => {
    const raw = makeQuery('big.example', TYPE.TXT, { edns: 1232 });
    const q = parsed(raw);
    const txt = Buffer.alloc(300, 0x61);
    const small = buildResponse(raw, q, {
      rcode: 0,
      answers: [{ type: TYPE.TXT, ttl: 5, rdata: txt }],
      udpSize: 1232,
      maxSize: 1232,
    });
    expect(small.readUInt16BE(10)).toBe(1);
    const big = buildResponse(raw, q, {
      rcode: 0,
      answers: Array.from({ length: 5 }, () => ({ type: TYPE.TXT, ttl: 5, rdata: txt })),
      udpSize: 1232,
      maxSize: 1232,
    });
    expect(big.readUInt16BE(2) & FLAG.TC).toBe(FLAG.TC);
    expect(big.readUInt16BE(6)).toBe(0);
  });

  it('answers malformed queries with a bare header', () => {
    const raw = Buffer.alloc(12);
    raw.writeUInt16BE(0xabcd, 0);
    raw.writeUInt16BE(1, 4);
    const out = buildResponse(raw, parsed(raw), { rcode: RCODE.FORMERR, udpSize: 1232, maxSize: 512 });
    expect(out.length).toBe(12);
    expect(out.readUInt16BE(0)).toBe(0xabcd);
    expect(out.readUInt16BE(2) & 0xf).toBe(RCODE.FORMERR);
  });
});

describe('buildQuery', () => {
  it('asks with RD and EDNS', () => {
    const q = parsed(buildQuery(5, 'example.com', TYPE.AAAA, 1232));
    expect(q).toMatchObject({ id: 5, name: 'example.com', type: TYPE.AAAA, ednsUdp: 1232 });
    expect(q.flags & FLAG.RD).toBe(FLAG.RD);
  });
});
