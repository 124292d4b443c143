import { PortcullisError } from '../errors.js';

/**
 * The classic pcap file format (what tcpdump `-w` writes): a 24-byte global header,
 * then per packet a 16-byte record header (`incl_len` at offset 8) and the packet's
 * bytes. Pure: works on a buffer.
 */

/** Bytes of the global header. */
export const PCAP_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const MAGICS = new Map<number, 'le' | 'be'>([
  [0xa1b2c3d4, 'le'], // microseconds, read little-endian
  [0xa1b23c4d, 'le'], // nanoseconds
]);

/** What a pcap holds. */
export interface PcapSummary {
  /** Whole packets. */
  readonly packets: number;
  /** Bytes up to the end of the last whole packet (the header alone: 24). */
  readonly bytes: number;
}

function endianOf(buf: Buffer): 'le' | 'be' {
  if (buf.length < PCAP_HEADER_BYTES)
    throw new PortcullisError(
      'CAPTURE_FAILED',
      `not a pcap file: ${buf.length} bytes, shorter than its header`,
    );
  const le = MAGICS.get(buf.readUInt32LE(0));
  if (le) return 'le';
  if (MAGICS.has(buf.readUInt32BE(0))) return 'be';
  throw new PortcullisError(
    'CAPTURE_FAILED',
    `not a pcap file: magic 0x${buf.readUInt32LE(0).toString(16)} (pcapng is not read here)`,
  );
}

/**
 * Count the whole packets of a pcap, at most `limit` bytes of it: a packet that ends
 * past `limit` (or past the buffer: tcpdump was writing it) is not counted.
 * @throws CAPTURE_FAILED when the buffer is no pcap.
 */
export function summarisePcap(buf: Buffer, limit = buf.length): PcapSummary {
  const end = Math.min(limit, buf.length);
  const le = endianOf(buf) === 'le';
  let at = PCAP_HEADER_BYTES;
  let packets = 0;
  while (at + RECORD_HEADER_BYTES <= end) {
    const incl = le ? buf.readUInt32LE(at + 8) : buf.readUInt32BE(at + 8);
    const next = at + RECORD_HEADER_BYTES + incl;
    if (next > end) break;
    packets += 1;
    at = next;
  }
  return { packets, bytes: at };
}
