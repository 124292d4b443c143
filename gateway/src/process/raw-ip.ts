import koffi from 'koffi';
import { PortcullisError } from '../errors.js';
import { MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, socketCalls } from './libc-socket.js';

/**
 * Sends whole IP packets (header included) that the service built itself: the block
 * page's answer in a blocked server's place (suricata/block-response.ts). A raw socket
 * (`IPPROTO_RAW`, which implies the header is the caller's) through libc, as Node has
 * none; the service has CAP_NET_RAW for it. The kernel routes the packet like any of
 * its own, so it goes out of the guest's port and never through the forward hook (nor
 * Suricata's queue).
 */

/** Sends one IP packet, header included, to its destination; `to` names it in errors. */
export interface RawIpSender {
  send(packet: Uint8Array, to: string): void;
  close(): void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const IPPROTO_RAW = 255;

/** The sockaddr_in / sockaddr_in6 of the packet's destination, port 0 (a raw socket takes the protocol from the header). */
function sockaddr(bytes: Uint8Array): Buffer {
  if (bytes[0]! >> 4 === 4) {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.set(bytes.subarray(16, 20), 4);
    return sa;
  }
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.set(bytes.subarray(24, 40), 8);
  return sa;
}

/** The real sender: one raw socket per family, opened at the first packet of that family. */
export class LibcRawIpSender implements RawIpSender {
  readonly #fds = new Map<number, number>();

  /**
   * @throws RAW_SEND_FAILED naming the errno when the socket cannot be opened (no
   *   CAP_NET_RAW: run the service with it, as appliance/systemd/portcullis.service does)
   *   or the packet is not sent.
   */
  send(packet: Uint8Array, to: string): void {
    const c = socketCalls();
    const version = packet[0]! >> 4;
    if ((version !== 4 || packet.length < 20) && (version !== 6 || packet.length < 40))
      throw new PortcullisError('RAW_SEND_FAILED', `not an IP packet for ${to}: ${packet.length} bytes`);
    const family = version === 4 ? AF_INET : AF_INET6;
    let fd = this.#fds.get(family);
    if (fd === undefined) {
      fd = c.socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
      if (fd < 0)
        throw new PortcullisError(
          'RAW_SEND_FAILED',
          `cannot open a raw IP socket (errno ${koffi.errno()}): the service needs CAP_NET_RAW`,
        );
      this.#fds.set(family, fd);
    }
    const addr = sockaddr(packet);
    const n = c.sendto(fd, packet, packet.length, MSG_DONTWAIT, addr, addr.length);
    if (n !== packet.length)
      throw new PortcullisError('RAW_SEND_FAILED', `cannot send a packet to ${to}: errno ${koffi.errno()}`);
  }

  close(): void {
    for (const fd of this.#fds.values()) socketCalls().close(fd);
    this.#fds.clear();
  }
}
