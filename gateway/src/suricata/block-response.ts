import { formatIpv6, ipv4ToInt, isIpv4, parseIpv6 } from '../policy/net.js';
import type { AlertRaw } from './eve/types.js';
import { BLOCK_PAGE_METADATA, normalizeName } from './names.js';

/**
 * The block page for plain HTTP that Suricata stops by its Host header (pure).
 *
 * A guest that reaches a blocked site by address (a hosts file, another resolver) has
 * its TCP connection open to the real server before Suricata sees the Host. The rule
 * drops the request and resets the server (`rejectdst`); the service then answers the
 * guest in the server's place with one TCP segment: the acknowledgement of the request,
 * an HTTP 302 to the appliance's block page naming the site, and FIN. The browser
 * follows it and shows what the DNS filter would have shown. This module reads the
 * alert's packet (EVE `packet`, the request as Suricata saw it) and builds that segment;
 * sending it is raw-ip.ts's.
 */

/** The path on the block page's address that shows the page for a name given in the query. */
export const BLOCKED_PATH = '/.portcullis/blocked';

/** Why an alert of a block-page rule got no answer (`portcullis_block_page_replies_total{result}`). */
export type ReplySkip = 'not_dropped' | 'no_packet' | 'not_tcp_to_server';

/**
 * The packet that answers a block-page alert in the server's place, or why there is
 * none. Only for an alert whose packet Suricata dropped (an `ids` instance's alert
 * changed nothing, and the real server may answer). `blockPage` is the page's base URL
 * (`http://192.168.50.1`).
 */
export function blockPageReply(
  raw: AlertRaw,
  blockPage: string,
): { readonly packet: Uint8Array; readonly to: string; readonly host: string | undefined } | ReplySkip {
  if (raw.alert.action !== 'blocked') return 'not_dropped';
  if (typeof raw.packet !== 'string') return 'no_packet';
  const linktype = raw.packet_info?.linktype;
  const request = parseTcpPacket(Buffer.from(raw.packet, 'base64'), linktype);
  // the client's segment of the request: never a handshake or a reset
  if (!request || (request.flags & (TCP.SYN | TCP.RST)) !== 0 || (request.flags & TCP.ACK) === 0)
    return 'not_tcp_to_server';
  const host = typeof raw.http?.hostname === 'string' ? normalizeName(raw.http.hostname) : undefined;
  const location =
    host === undefined ? `${blockPage}${BLOCKED_PATH}` : `${blockPage}${BLOCKED_PATH}?host=${host}`;
  const body = new TextEncoder().encode(redirectResponse(location));
  return { packet: replySegment(request, body), to: request.src, host };
}

/** Whether an alert comes from a rule whose block gets the block page. */
export function isBlockPageAlert(raw: AlertRaw): boolean {
  return raw.alert.metadata?.['portcullis']?.includes(BLOCK_PAGE_METADATA) ?? false;
}

/** What the reply needs of the request: the addresses, ports and sequence numbers. */
export interface TcpSegment {
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  /** Bytes of TCP payload in the segment. */
  readonly payload: number;
  readonly flags: number;
}

/** TCP flags. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** EVE `packet_info.linktype` values the parser reads: raw IP (NFQ) and Ethernet (AF_PACKET). */
const LINKTYPE_ETHERNET = 1;

/**
 * The TCP segment in an EVE alert's `packet` (base64): raw IP as NFQUEUE hands it over,
 * or an Ethernet frame (`linktype` 1). Undefined for anything else (not TCP, an IPv6
 * extension header, a truncated packet): the caller counts it and sends nothing.
 */
export function parseTcpPacket(bytes: Uint8Array, linktype?: number): TcpSegment | undefined {
  let off = 0;
  if (linktype === LINKTYPE_ETHERNET) {
    if (bytes.length < 14) return undefined;
    off = 14;
    let type = (bytes[12]! << 8) | bytes[13]!;
    // one 802.1Q tag at most (a guest's own tags never get this far)
    if (type === 0x8100 && bytes.length >= 18) {
      type = (bytes[16]! << 8) | bytes[17]!;
      off = 18;
    }
    if (type !== 0x0800 && type !== 0x86dd) return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < off + 20) return undefined;
  const version = bytes[off]! >> 4;
  let family: 4 | 6;
  let src: string;
  let dst: string;
  let l4: number;
  let end: number;
  if (version === 4) {
    const ihl = (bytes[off]! & 0x0f) * 4;
    if (ihl < 20 || bytes[off + 9] !== 6) return undefined;
    // a fragment other than the first has no TCP header
    if ((view.getUint16(off + 6) & 0x1fff) !== 0) return undefined;
    family = 4;
    src = bytes.subarray(off + 12, off + 16).join('.');
    dst = bytes.subarray(off + 16, off + 20).join('.');
    l4 = off + ihl;
    end = Math.min(bytes.length, off + view.getUint16(off + 2));
  } else if (version === 6) {
    if (bytes.length < off + 40 || bytes[off + 6] !== 6) return undefined;
    family = 6;
    src = ipv6Text(bytes.subarray(off + 8, off + 24));
    dst = ipv6Text(bytes.subarray(off + 24, off + 40));
    l4 = off + 40;
    end = Math.min(bytes.length, l4 + view.getUint16(off + 4));
  } else return undefined;
  if (end < l4 + 20) return undefined;
  const dataOffset = (bytes[l4 + 12]! >> 4) * 4;
  if (dataOffset < 20 || l4 + dataOffset > end) return undefined;
  return {
    family,
    src,
    dst,
    srcPort: view.getUint16(l4),
    dstPort: view.getUint16(l4 + 2),
    seq: view.getUint32(l4 + 4),
    ack: view.getUint32(l4 + 8),
    payload: end - l4 - dataOffset,
    flags: bytes[l4 + 13]!,
  };
}

/** The HTTP response: a redirect to `location`, nothing to cache, the connection closed. */
export function redirectResponse(location: string): string {
  return (
    'HTTP/1.1 302 Found\r\n' +
    `Location: ${location}\r\n` +
    'Cache-Control: no-store\r\n' +
    'Content-Length: 0\r\n' +
    'Connection: close\r\n\r\n'
  );
}

/**
 * The server's answer to `request` (a client's segment that carried, or followed, the
 * HTTP request): from the server's address and port to the client's, acknowledging
 * everything the segment carried, with `body` and FIN. IP header included (raw IP),
 * checksums filled in.
 */
export function replySegment(
  request: TcpSegment,
  body: Uint8Array,
  options: { ipId?: number } = {},
): Uint8Array {
  const ipLen = request.family === 4 ? 20 : 40;
  const tcpLen = 20 + body.length;
  const out = new Uint8Array(ipLen + tcpLen);
  const view = new DataView(out.buffer);
  const src = addressBytes(request.dst);
  const dst = addressBytes(request.src);
  if (request.family === 4) {
    out[0] = 0x45;
    view.setUint16(2, out.length);
    view.setUint16(4, (options.ipId ?? 0) & 0xffff);
    view.setUint16(6, 0x4000); // don't fragment
    out[8] = 64;
    out[9] = 6;
    out.set(src, 12);
    out.set(dst, 16);
    view.setUint16(10, checksum(out.subarray(0, 20)));
  } else {
    out[0] = 0x60;
    view.setUint16(4, tcpLen);
    out[6] = 6;
    out[7] = 64;
    out.set(src, 8);
    out.set(dst, 24);
  }
  const t = ipLen;
  view.setUint16(t, request.dstPort);
  view.setUint16(t + 2, request.srcPort);
  view.setUint32(t + 4, request.ack);
  // what the request carried is acknowledged (a SYN or FIN counts one)
  const carried = request.payload + (request.flags & TCP.SYN ? 1 : 0) + (request.flags & TCP.FIN ? 1 : 0);
  view.setUint32(t + 8, (request.seq + carried) >>> 0);
  out[t + 12] = 5 << 4;
  out[t + 13] = TCP.ACK | TCP.PSH | TCP.FIN;
  view.setUint16(t + 14, 65_535);
  out.set(body, t + 20);
  view.setUint16(t + 16, tcpChecksum(src, dst, out.subarray(t)));
  return out;
}

/** The Internet checksum (RFC 1071) of `data`, starting from `sum`. */
export function checksum(data: Uint8Array, sum = 0): number {
  let s = sum;
  for (let i = 0; i + 1 < data.length; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) s += data[data.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** TCP's checksum over the pseudo-header (RFC 793 / RFC 8200 §8.1) and `segment` (its checksum field zero). */
function tcpChecksum(src: Uint8Array, dst: Uint8Array, segment: Uint8Array): number {
  let sum = 0;
  for (const a of [src, dst]) for (let i = 0; i < a.length; i += 2) sum += (a[i]! << 8) | a[i + 1]!;
  sum += 6 + segment.length;
  // the length may exceed 16 bits only for jumbograms, which this never builds
  return checksum(segment, sum);
}

function addressBytes(ip: string): Uint8Array {
  if (isIpv4(ip)) {
    const n = ipv4ToInt(ip);
    return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  }
  const groups = parseIpv6(ip);
  if (!groups) throw new Error(`not an IP address: ${ip}`);
  const out = new Uint8Array(16);
  groups.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** RFC 5952 text of 16 bytes. */
function ipv6Text(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  return formatIpv6(groups);
}
