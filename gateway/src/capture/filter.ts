import { isIP } from 'node:net';
import { PortcullisError } from '../errors.js';

/**
 * What a packet capture listens to, built from validated inputs only: the interface
 * where the VM's frames are seen in the security VM and a BPF filter of the VM's MAC
 * (and, for an alert's flow, its addresses, protocol and ports). Pure: no I/O. Nothing
 * a client sends reaches the filter as text: VM names select a VM of the policy, and
 * only its MAC, addresses and ports (each checked here again) are written into it.
 */

/** The VM as the capture needs it (a `Vm` of the policy fits). */
export interface CaptureVm {
  readonly name: string;
  readonly mac: string;
  readonly ipv4: string;
  /** The interface the VM's link ends on in the security VM; absent: the LAN interface. */
  readonly port?: string | undefined;
}

/** One flow: both addresses, and the protocol and a port where they are known. */
export interface CaptureFlow {
  readonly src: string;
  readonly dest: string;
  /** `tcp`, `udp`, `icmp`, `icmp6` or `sctp` (case-insensitive); absent: any. */
  readonly proto?: string | undefined;
  /** A port on either side (the remote's service port), 1 to 65535; absent: any. */
  readonly port?: number | undefined;
}

/** Where and what tcpdump captures. */
export interface CaptureTarget {
  readonly iface: string;
  readonly filter: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** A Linux interface name: at most 15 characters, no spaces, slashes or shell characters. */
const IFACE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,14}$/;
const PROTOS = new Set(['tcp', 'udp', 'icmp', 'icmp6', 'sctp']);

function bad(what: string, value: unknown, how: string, path: string): PortcullisError {
  return new PortcullisError('REQUEST_INVALID', `${what} ${JSON.stringify(value)} is not valid: ${how}`, {
    path,
  });
}

/** A MAC address, lower-cased. @throws REQUEST_INVALID when it is not six hex pairs. */
export function checkMac(mac: string): string {
  const m = mac.toLowerCase();
  if (!MAC.test(m)) throw bad('MAC address', mac, 'give six colon-separated hex pairs', '/mac');
  return m;
}

/** An IPv4 or IPv6 address as written. @throws REQUEST_INVALID when it is neither. */
export function checkAddress(address: string, path = '/address'): string {
  if (isIP(address) === 0)
    throw bad('address', address, 'give an IPv4 or IPv6 address, no prefix or port', path);
  return address;
}

/** An interface name. @throws REQUEST_INVALID when it is not a Linux interface name. */
export function checkIface(iface: string): string {
  if (!IFACE.test(iface))
    throw bad(
      'interface',
      iface,
      'give a Linux interface name of at most 15 letters, digits or ._-',
      '/iface',
    );
  return iface;
}

function checkPort(port: number, path: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw bad('port', port, 'give an integer from 1 to 65535', path);
  return port;
}

/**
 * Where to capture the VM and with which filter: on the VM's port when it has one,
 * else on `lanIface`, always with `ether host <mac>` (a port also floods other guests'
 * broadcasts); with a flow, also both hosts, the protocol and the port.
 * @throws REQUEST_INVALID for a malformed MAC, interface, address, protocol or port.
 */
export function captureTarget(vm: CaptureVm, lanIface: string, flow?: CaptureFlow): CaptureTarget {
  const iface = checkIface(vm.port ?? lanIface);
  const parts = [`ether host ${checkMac(vm.mac)}`];
  if (flow) {
    parts.push(
      `host ${checkAddress(flow.src, '/flow/src')}`,
      `host ${checkAddress(flow.dest, '/flow/dest')}`,
    );
    if (flow.proto !== undefined) {
      const proto = flow.proto.toLowerCase();
      if (!PROTOS.has(proto))
        throw bad('protocol', flow.proto, `give one of ${[...PROTOS].join(', ')}`, '/flow/proto');
      parts.push(proto);
    }
    if (flow.port !== undefined) parts.push(`port ${checkPort(flow.port, '/flow/port')}`);
  }
  return { iface, filter: parts.join(' and ') };
}

/** The limits of captures. */
export interface CaptureLimits {
  /** Longest capture, seconds; 1 to 3,600. Default 300. */
  readonly maxSeconds: number;
  /** Largest capture file, bytes; at least 64 KiB. Default 50 MiB. */
  readonly maxBytes: number;
  /** Captures running at once, 1 to 16. Default 2. */
  readonly concurrent: number;
  /** Capture files kept; the oldest finished one goes when a new one would exceed it. 1 to 1,000. Default 20. */
  readonly keep: number;
}

export const DEFAULT_CAPTURE_LIMITS: CaptureLimits = {
  maxSeconds: 300,
  maxBytes: 50 * 1024 * 1024,
  concurrent: 2,
  keep: 20,
};

/** Smallest size bound of one capture, bytes: room for the pcap header and some packets. */
export const MIN_CAPTURE_BYTES = 64 * 1024;

/**
 * The duration and size of one capture, from the request and the limits.
 * @param seconds 1 to `limits.maxSeconds`
 * @param maxBytes absent: `limits.maxBytes`; else `MIN_CAPTURE_BYTES` to `limits.maxBytes`
 * @throws REQUEST_INVALID naming the bound that was crossed
 */
export function captureBounds(
  request: { readonly seconds: number; readonly maxBytes?: number | undefined },
  limits: CaptureLimits,
): { seconds: number; maxBytes: number } {
  const { seconds } = request;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > limits.maxSeconds)
    throw bad('seconds', seconds, `a capture lasts 1 to ${limits.maxSeconds} whole seconds`, '/body/seconds');
  const maxBytes = request.maxBytes ?? limits.maxBytes;
  if (!Number.isInteger(maxBytes) || maxBytes < MIN_CAPTURE_BYTES || maxBytes > limits.maxBytes)
    throw bad(
      'maxBytes',
      maxBytes,
      `a capture's size bound is ${MIN_CAPTURE_BYTES} to ${limits.maxBytes} bytes`,
      '/body/maxBytes',
    );
  return { seconds, maxBytes };
}

/** How tcpdump runs for one capture. */
export interface TcpdumpOptions extends CaptureTarget {
  /** The pcap file written. */
  readonly file: string;
  /** Bytes kept of each packet; default 262,144 (whole packets). */
  readonly snaplen?: number;
  /** tcpdump drops root to this user after opening the interface (`-Z`); absent: no `-Z`. */
  readonly user?: string | undefined;
  /**
   * The kernel's capture buffer, KiB (`-B`); default 32,768. In immediate mode each
   * packet takes a slot as large as the biggest (64 KiB with the offloads of a veth or
   * virtio port): 32 MiB holds about 500 packets a busy moment of tcpdump's; 2 MiB,
   * libpcap's default, lost bursts of 40 packets in the lab.
   */
  readonly bufferKiB?: number;
}

/**
 * tcpdump's arguments (never a shell): no name resolution, packet-buffered output to
 * the file so that its size is known while it runs, immediate mode, the filter as one
 * last argument after `--`.
 */
export function tcpdumpArgs(o: TcpdumpOptions): string[] {
  const args = [
    '-i',
    checkIface(o.iface),
    '-n',
    '-U',
    '--immediate-mode',
    '-B',
    String(o.bufferKiB ?? 32_768),
    '-s',
    String(o.snaplen ?? 262_144),
    '-w',
    o.file,
  ];
  if (o.user !== undefined) args.push('-Z', o.user);
  args.push('--', o.filter);
  return args;
}
