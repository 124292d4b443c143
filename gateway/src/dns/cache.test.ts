import { describe, expect, it } from 'vitest';
import { DnsCache, prepare, remainingTtl, serve } from './cache.js';
import {
  buildQuery,
  buildResponse,
  encodeName,
  FLAG,
  ipv4Rdata,
  ipv6Rdata,
  parseQuery,
  RCODE,
  scanResponse,
  syntheticSoa,
  TYPE,
  type ParsedQuery,
  type RecordData,
} from './wire.js';

const T0 = 1_700_000_000_000;

/** An upstream answer for name/type with the given records (and an OPT record, as resolvers send). */
function makeUpstream(
  name: string,
  type: number,
  o: { rcode?: number; answers?: RecordData[]; authority?: RecordData[] },
): Buffer {
  const raw = buildQuery(0x4242, name, type, 1232);
  const q = parseQuery(raw) as ParsedQuery;
  return buildResponse(raw, q, {
    rcode: o.rcode ?? 0,
    answers: o.answers,
    authority: o.authority,
    udpSize: 1232,
    maxSize: 65535,
  });
}

function clientQuery(name: string, type: number, id: number, edns = false): { raw: Buffer; q: ParsedQuery } {
  const raw = buildQuery(id, name, type, 1232);
  const plain = edns ? raw : raw.subarray(0, raw.length - 11);
  if (!edns) plain.writeUInt16BE(0, 10);
  return { raw: plain, q: parseQuery(plain) as ParsedQuery };
}

const a = (ttl: number, addr: string, name?: string): RecordData => ({
  name,
  type: TYPE.A,
  ttl,
  rdata: ipv4Rdata(addr),
});

describe('prepare', () => {
  it('keeps the smallest TTL, clamped, and the addresses along the CNAME chain', () => {
    const up = makeUpstream('www.example.com', TYPE.A, {
      answers: [
        { type: TYPE.CNAME, ttl: 300, rdata: encodeName('edge.cdn.example') },
        a(60, '203.0.113.5', 'edge.cdn.example'),
        a(60, '198.51.100.9', 'unrelated.example'),
      ],
    });
    const p = prepare(up, T0, { minTtl: 0, maxTtl: 120 })!;
    expect(p.ttl).toBe(60);
    expect(p.v4).toEqual(['203.0.113.5']);
    expect(p.cnames).toEqual(['edge.cdn.example']);
    expect(p.answers).toEqual(['CNAME edge.cdn.example', '203.0.113.5']);
    expect(scanResponse(p.buf)?.records.map((r) => r.ttl)).toEqual([120, 60, 60]);
  });

  it('raises short TTLs to minTtl', () => {
    const p = prepare(makeUpstream('a.example', TYPE.A, { answers: [a(2, '192.0.2.1')] }), T0, {
      minTtl: 30,
    })!;
    expect(p.ttl).toBe(30);
  });

  it('caches NXDOMAIN and NODATA for min(SOA TTL, SOA MINIMUM), capped (RFC 2308)', () => {
    const soa = (ttl: number, min: number): RecordData => ({
      name: 'example',
      type: TYPE.SOA,
      ttl,
      rdata: syntheticSoa(min),
    });
    expect(
      prepare(
        makeUpstream('nx.example', TYPE.A, { rcode: RCODE.NXDOMAIN, authority: [soa(3600, 300)] }),
        T0,
        {},
      )!.ttl,
    ).toBe(300);
    expect(prepare(makeUpstream('nd.example', TYPE.AAAA, { authority: [soa(120, 900)] }), T0, {})!.ttl).toBe(
      120,
    );
    expect(
      prepare(
        makeUpstream('nx.example', TYPE.A, { rcode: RCODE.NXDOMAIN, authority: [soa(86400, 86400)] }),
        T0,
        { negativeMaxTtl: 600 },
      )!.ttl,
    ).toBe(600);
  });

  it('does not cache negative answers without SOA, or SERVFAIL', () => {
    expect(prepare(makeUpstream('nx.example', TYPE.A, { rcode: RCODE.NXDOMAIN }), T0, {})!.ttl).toBe(0);
    expect(prepare(makeUpstream('sf.example', TYPE.A, { rcode: RCODE.SERVFAIL }), T0, {})!.ttl).toBe(0);
  });

  it('strips the upstream OPT record', () => {
    const up = makeUpstream('a.example', TYPE.A, { answers: [a(60, '192.0.2.1')] });
    expect(up.readUInt16BE(10)).toBe(1);
    const p = prepare(up, T0, {})!;
    expect(p.buf.readUInt16BE(10)).toBe(0);
    expect(p.buf.length).toBe(up.length - 11);
    expect(p.ttl).toBe(60);
  });
});

describe('serve', () => {
  const up = makeUpstream('www.example.com', TYPE.AAAA, {
    answers: [{ type: TYPE.AAAA, ttl: 100, rdata: ipv6Rdata('2001:db8::5') }],
  });
  const p = prepare(up, T0, {})!;

  it('patches the ID, keeps the client spelling and counts TTLs down', () => {
    const { raw, q } = clientQuery('WWW.example.com', TYPE.AAAA, 0x0bad);
    const out = serve(p, raw, q, T0 + 42_500, 1232, 512);
    expect(out.readUInt16BE(0)).toBe(0x0bad);
    expect(out.toString('latin1', 13, 16)).toBe('WWW');
    expect(scanResponse(out)?.records[0]?.ttl).toBe(58);
    expect(remainingTtl(p, T0 + 42_500)).toBe(58);
    expect(out.readUInt16BE(2) & FLAG.RA).toBe(FLAG.RA);
  });

  it('adds OPT for EDNS clients', () => {
    const { raw, q } = clientQuery('www.example.com', TYPE.AAAA, 1, true);
    const out = serve(p, raw, q, T0, 1232, 1232);
    expect(out.readUInt16BE(10)).toBe(1);
    expect(out.length).toBe(p.buf.length + 11);
  });

  it('truncates an answer larger than the client takes', () => {
    const { raw, q } = clientQuery('www.example.com', TYPE.AAAA, 1);
    const out = serve(p, raw, q, T0, 1232, 40);
    expect(out.readUInt16BE(2) & FLAG.TC).toBe(FLAG.TC);
  });
});

describe('DnsCache', () => {
  const entry = (name: string, ttl: number, at = T0) =>
    prepare(makeUpstream(name, TYPE.A, { answers: [a(ttl, '192.0.2.1')] }), at, {})!;

  it('serves until the TTL runs out', () => {
    const c = new DnsCache(10);
    c.set('k', entry('a.example', 30));
    expect(c.get('k', T0 + 29_999)).toBeDefined();
    expect(c.get('k', T0 + 30_000)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('evicts the least recently used beyond its size', () => {
    const c = new DnsCache(2);
    c.set('a', entry('a.example', 300));
    c.set('b', entry('b.example', 300));
    expect(c.get('a', T0 + 2000)).toBeDefined();
    c.set('c', entry('c.example', 300));
    expect(c.get('b', T0 + 2000)).toBeUndefined();
    expect(c.get('a', T0 + 2000)).toBeDefined();
    expect(c.get('c', T0 + 2000)).toBeDefined();
  });

  it('does not keep uncacheable answers', () => {
    const c = new DnsCache(2);
    c.set('z', entry('z.example', 0));
    expect(c.size).toBe(0);
  });
});
