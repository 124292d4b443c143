import { describe, expect, it } from 'vitest';
import {
  BLOCKED_PATH,
  blockPageReply,
  checksum,
  isBlockPageAlert,
  parseTcpPacket,
  redirectResponse,
  replySegment,
  TCP,
} from './block-response.js';
import type { AlertRaw } from './eve/types.js';
import { BLOCK_PAGE_METADATA } from './names.js';

const REQUEST = 'GET /page HTTP/1.1\r\nHost: games.example\r\n\r\n';

/** A client's TCP segment as the kernel would send it (checksums left zero: the parser does not read them). */
function clientPacket(
  options: {
    family?: 4 | 6;
    flags?: number;
    payload?: string;
    seq?: number;
    ack?: number;
    tcpOptions?: number;
    protocol?: number;
  } = {},
): Uint8Array {
  const family = options.family ?? 4;
  const payload = new TextEncoder().encode(options.payload ?? REQUEST);
  const ipLen = family === 4 ? 20 : 40;
  const tcpLen = 20 + (options.tcpOptions ?? 0);
  const out = new Uint8Array(ipLen + tcpLen + payload.length);
  const v = new DataView(out.buffer);
  if (family === 4) {
    out[0] = 0x45;
    v.setUint16(2, out.length);
    out[8] = 64;
    out[9] = options.protocol ?? 6;
    out.set([10, 20, 0, 10], 12);
    out.set([203, 0, 113, 7], 16);
  } else {
    out[0] = 0x60;
    v.setUint16(4, tcpLen + payload.length);
    out[6] = options.protocol ?? 6;
    out[7] = 64;
    out.set([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10], 8);
    out.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07], 24);
  }
  v.setUint16(ipLen, 43_210);
  v.setUint16(ipLen + 2, 80);
  v.setUint32(ipLen + 4, options.seq ?? 1_000_000);
  v.setUint32(ipLen + 8, options.ack ?? 4_000_000_000);
  out[ipLen + 12] = (tcpLen / 4) << 4;
  out[ipLen + 13] = options.flags ?? TCP.ACK | TCP.PSH;
  out.set(payload, ipLen + tcpLen);
  return out;
}

/** The sum over the pseudo-header and segment that a receiver checks: 0 when the checksum is right. */
function tcpCheck(packet: Uint8Array): number {
  const v4 = packet[0]! >> 4 === 4;
  const ipLen = v4 ? 20 : 40;
  const addrs = v4 ? packet.subarray(12, 20) : packet.subarray(8, 40);
  const seg = packet.subarray(ipLen);
  let sum = 6 + seg.length;
  for (let i = 0; i < addrs.length; i += 2) sum += (addrs[i]! << 8) | addrs[i + 1]!;
  return checksum(seg, sum);
}

function alert(fields: Partial<AlertRaw> & { packet?: string }): AlertRaw {
  return {
    timestamp: '2026-12-04T10:00:00.000000+0000',
    event_type: 'alert',
    src_ip: '10.20.0.10',
    dest_ip: '203.0.113.7',
    alert: {
      action: 'blocked',
      signature_id: 4_000_010,
      severity: 3,
      metadata: { portcullis: [BLOCK_PAGE_METADATA] },
    },
    http: { hostname: 'Games.Example' },
    ...fields,
  } as AlertRaw;
}

describe('checksum', () => {
  it("is RFC 1071's example", () => {
    expect(checksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
  });
});

describe('parseTcpPacket', () => {
  it('reads an IPv4 request: addresses, ports, sequence numbers, payload length', () => {
    expect(parseTcpPacket(clientPacket())).toEqual({
      family: 4,
      src: '10.20.0.10',
      dst: '203.0.113.7',
      srcPort: 43_210,
      dstPort: 80,
      seq: 1_000_000,
      ack: 4_000_000_000,
      payload: REQUEST.length,
      flags: TCP.ACK | TCP.PSH,
    });
  });

  it('reads IPv6, TCP options, and an Ethernet frame (linktype 1)', () => {
    const six = parseTcpPacket(clientPacket({ family: 6, tcpOptions: 12 }));
    expect(six).toMatchObject({ family: 6, src: 'fd00:20::10', dst: '2001:db8::7', payload: REQUEST.length });
    const frame = new Uint8Array(14 + clientPacket().length);
    frame.set([0x08, 0x00], 12);
    frame.set(clientPacket(), 14);
    expect(parseTcpPacket(frame, 1)).toEqual(parseTcpPacket(clientPacket()));
  });

  it('gives nothing for UDP, a truncated packet or a frame that is not IP', () => {
    expect(parseTcpPacket(clientPacket({ protocol: 17 }))).toBeUndefined();
    expect(parseTcpPacket(clientPacket().subarray(0, 30))).toBeUndefined();
    expect(parseTcpPacket(new Uint8Array(60), 1)).toBeUndefined();
    expect(parseTcpPacket(new Uint8Array(0))).toBeUndefined();
  });
});

describe('replySegment', () => {
  it("answers in the server's place: addresses and ports swapped, the request acknowledged, FIN", () => {
    const req = parseTcpPacket(clientPacket())!;
    const body = new TextEncoder().encode('HTTP/1.1 302 Found\r\n\r\n');
    const out = replySegment(req, body, { ipId: 7 });
    const back = parseTcpPacket(out)!;
    expect(back).toEqual({
      family: 4,
      src: '203.0.113.7',
      dst: '10.20.0.10',
      srcPort: 80,
      dstPort: 43_210,
      seq: 4_000_000_000,
      ack: 1_000_000 + REQUEST.length,
      payload: body.length,
      flags: TCP.ACK | TCP.PSH | TCP.FIN,
    });
    expect(checksum(out.subarray(0, 20))).toBe(0); // the IPv4 header's checksum
    expect(tcpCheck(out)).toBe(0);
    expect(new TextDecoder().decode(out.subarray(40))).toBe('HTTP/1.1 302 Found\r\n\r\n');
  });

  it('wraps the acknowledgement number at 2^32 and counts a FIN the request carried', () => {
    const req = parseTcpPacket(clientPacket({ seq: 0xffff_fff0, flags: TCP.ACK | TCP.FIN }))!;
    const back = parseTcpPacket(replySegment(req, new Uint8Array(3)))!;
    expect(back.ack).toBe((0xffff_fff0 + REQUEST.length + 1) % 2 ** 32);
  });

  it('builds IPv6 with a correct TCP checksum', () => {
    const out = replySegment(parseTcpPacket(clientPacket({ family: 6 }))!, new Uint8Array([1, 2, 3]));
    expect(parseTcpPacket(out)).toMatchObject({
      family: 6,
      src: '2001:db8::7',
      dst: 'fd00:20::10',
      payload: 3,
    });
    expect(tcpCheck(out)).toBe(0);
  });
});

describe('blockPageReply', () => {
  const packet = Buffer.from(clientPacket()).toString('base64');

  it('redirects the guest to the block page naming the site, sent to the guest', () => {
    const r = blockPageReply(alert({ packet }), 'http://10.20.0.1');
    if (typeof r === 'string') throw new Error(r);
    expect(r.to).toBe('10.20.0.10');
    expect(r.host).toBe('games.example');
    const text = new TextDecoder().decode(r.packet.subarray(40));
    expect(text).toBe(redirectResponse(`http://10.20.0.1${BLOCKED_PATH}?host=games.example`));
    expect(text).toMatch(
      /^HTTP\/1\.1 302 Found\r\nLocation: http:\/\/10\.20\.0\.1\/\.portcullis\/blocked\?host=/,
    );
  });

  it('leaves out a Host that is not a domain name', () => {
    const r = blockPageReply(alert({ packet, http: { hostname: '<x>"' } }), 'http://10.20.0.1');
    if (typeof r === 'string') throw new Error(r);
    expect(r.host).toBeUndefined();
    expect(new TextDecoder().decode(r.packet.subarray(40))).toContain(
      `Location: http://10.20.0.1${BLOCKED_PATH}\r\n`,
    );
  });

  it('says why when there is nothing to answer', () => {
    const allowed = alert({ packet });
    const passive = { ...allowed, alert: { ...allowed.alert, action: 'allowed' } } as AlertRaw;
    expect(blockPageReply(passive, 'http://x')).toBe('not_dropped');
    expect(blockPageReply(alert({}), 'http://x')).toBe('no_packet');
    const syn = Buffer.from(clientPacket({ flags: TCP.SYN, payload: '' })).toString('base64');
    expect(blockPageReply(alert({ packet: syn }), 'http://x')).toBe('not_tcp_to_server');
    expect(blockPageReply(alert({ packet: 'AAAA' }), 'http://x')).toBe('not_tcp_to_server');
  });
});

describe('isBlockPageAlert', () => {
  it("is true only for the rules' metadata", () => {
    expect(isBlockPageAlert(alert({}))).toBe(true);
    const other = alert({});
    expect(isBlockPageAlert({ ...other, alert: { ...other.alert, metadata: { portcullis: ['x'] } } })).toBe(
      false,
    );
    expect(isBlockPageAlert({ ...other, alert: { action: 'blocked', signature_id: 1, severity: 3 } })).toBe(
      false,
    );
  });
});
