import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import koffi from 'koffi';
import { PortcullisError } from '../errors.js';
import { intToIpv4, ipv4ToInt } from '../policy/net.js';

/**
 * A UDP socket that reads and answers datagrams in batches: `recvmmsg(2)` and
 * `sendmmsg(2)` through koffi on a socket that Node's event loop watches.
 *
 * Why: with one `dgram` socket every datagram costs a JavaScript callback, a Buffer, a
 * send request object, a deferred address lookup and two system calls, and that alone
 * holds a DNS responder to about half of what dnsmasq answers on the same core. Here
 * libuv still tells us when the socket is readable (it hands over the first datagram as
 * usual); the rest of the queue is then taken with one `recvmmsg`, and every answer
 * produced meanwhile leaves with one `sendmmsg` when the batch is done. Answers produced
 * later (after an upstream round trip) are gathered until the event loop's next turn.
 *
 * IPv4 only: other addresses use a plain `dgram` socket (see `DnsFilter`).
 */

/** Called for every datagram, in arrival order. `msg` is the caller's to keep. */
export type DatagramHandler = (msg: Buffer, ip: string, port: number) => void;

export interface BatchedUdpOptions {
  /** IPv4 address to bind. */
  readonly address: string;
  /** Port; 0 picks a free one (see `port`). */
  readonly port: number;
  /** Datagrams taken per `recvmmsg` and sent per `sendmmsg`. Default 64, 1 to 1,024. */
  readonly batch?: number;
  /** Most `recvmmsg` calls per readable event, so a flood cannot starve the event loop. Default 8. */
  readonly maxRounds?: number;
  /** SO_RCVBUF / SO_SNDBUF in bytes (capped by net.core.rmem_max / wmem_max). Default 4 MiB. */
  readonly bufferBytes?: number;
  readonly onMessage: DatagramHandler;
  /** A send or receive failed for another reason than a full socket buffer. */
  readonly onError?: (err: Error) => void;
  /** Datagrams dropped: `in` = longer than a receive slot, `out` = an answer not sent (see `BatchedUdpStats`). */
  readonly onDrop?: (direction: 'in' | 'out', count: number) => void;
}

/** Counters since bind. */
export interface BatchedUdpStats {
  readonly received: number;
  readonly sent: number;
  /** Answers not sent: the socket's send buffer stayed full, or the peer address was not IPv4. */
  readonly dropped: number;
  /** Datagrams longer than a receive slot (RX_SLOT bytes), dropped unread. */
  readonly truncated: number;
  /** `recvmmsg` calls that returned datagrams. */
  readonly batches: number;
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const EAGAIN = 11;
const EINTR = 4;

/** struct mmsghdr on 64-bit Linux: msghdr (56 bytes) + msg_len, padded. */
const MMSGHDR = 64;
const IOVEC = 16;
const SOCKADDR_IN = 16;
/** Largest datagram read: a query larger than this is dropped (queries are far smaller). */
export const RX_SLOT = 4_096;
/** Largest answer sent through the batch; longer ones go out on their own. */
const TX_SLOT = 4_096;

interface Libc {
  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly bind: (fd: number, addr: Buffer, len: number) => number;
  readonly close: (fd: number) => number;
  readonly getsockname: (fd: number, addr: Buffer, len: number[]) => number;
  readonly recvmmsg: (fd: number, vec: number, vlen: number, flags: number, timeout: null) => number;
  readonly sendmmsg: (fd: number, vec: number, vlen: number, flags: number) => number;
  readonly sendto: (
    fd: number,
    buf: Buffer,
    len: number,
    flags: number,
    addr: Buffer,
    alen: number,
  ) => number;
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64'))
    return (libc = null);
  try {
    const lib = koffi.load('libc.so.6');
    libc = {
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      bind: lib.func('int bind(int fd, void *addr, uint32_t len)'),
      close: lib.func('int close(int fd)'),
      getsockname: lib.func('int getsockname(int fd, void *addr, _Inout_ uint32_t *len)'),
      // the vectors live in memory we allocated; their addresses are passed as integers
      recvmmsg: lib.func('int recvmmsg(int fd, uintptr_t vec, unsigned int vlen, int flags, void *timeout)'),
      sendmmsg: lib.func('int sendmmsg(int fd, uintptr_t vec, unsigned int vlen, int flags)'),
      sendto: lib.func(
        'intptr_t sendto(int fd, void *buf, uintptr_t len, int flags, void *addr, uint32_t alen)',
      ),
    };
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * `slots` message headers, each with one iovec, a sockaddr_in and a data buffer, in one
 * block of native memory. The pointers inside are written once; per call only lengths
 * and addresses change.
 */
class Arena {
  readonly slots: number;
  readonly slotSize: number;
  readonly base: number;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  readonly #ptr: unknown;
  readonly #iov: number;
  readonly #name: number;
  readonly #data: number;

  constructor(slots: number, slotSize: number) {
    this.slots = slots;
    this.slotSize = slotSize;
    this.#iov = slots * MMSGHDR;
    this.#name = this.#iov + slots * IOVEC;
    this.#data = this.#name + slots * SOCKADDR_IN;
    const size = this.#data + slots * slotSize;
    this.#ptr = koffi.alloc('uint8_t', size);
    const address = koffi.address(this.#ptr);
    // user-space addresses fit in 47 bits, so a Number holds them exactly
    this.base = Number(address);
    const buffer = koffi.view(this.#ptr, size);
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.bytes.fill(0);
    for (let i = 0; i < slots; i++) {
      const h = i * MMSGHDR;
      this.view.setBigUint64(h, address + BigInt(this.nameAt(i)), true); // msg_name
      this.view.setUint32(h + 8, SOCKADDR_IN, true); // msg_namelen
      this.view.setBigUint64(h + 16, address + BigInt(this.#iov + i * IOVEC), true); // msg_iov
      this.view.setBigUint64(h + 24, 1n, true); // msg_iovlen
      this.view.setBigUint64(this.#iov + i * IOVEC, address + BigInt(this.dataAt(i)), true); // iov_base
      this.view.setBigUint64(this.#iov + i * IOVEC + 8, BigInt(slotSize), true); // iov_len
    }
  }

  nameAt(i: number): number {
    return this.#name + i * SOCKADDR_IN;
  }

  dataAt(i: number): number {
    return this.#data + i * this.slotSize;
  }

  /** Bytes received into slot i (`msg_len`). */
  received(i: number): number {
    return this.view.getUint32(i * MMSGHDR + 56, true);
  }

  /** `msg_flags` of slot i after a receive. */
  flags(i: number): number {
    return this.view.getInt32(i * MMSGHDR + 48, true);
  }

  /** Set slot i's iovec length (the low 32 bits; the high ones stay 0). */
  setLength(i: number, len: number): void {
    this.view.setUint32(this.#iov + i * IOVEC + 8, len, true);
  }

  /** Restore msg_namelen after the kernel wrote it. */
  resetName(i: number): void {
    this.view.setUint32(i * MMSGHDR + 8, SOCKADDR_IN, true);
  }

  free(): void {
    koffi.free(this.#ptr);
  }
}

/** Dotted quads for the addresses seen, by their 32-bit value (bounded). */
const MAX_CACHED_ADDRESSES = 65_536;

function sockaddrIn(ip: string, port: number): Buffer {
  const sa = Buffer.alloc(SOCKADDR_IN);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  sa.writeUInt32BE(ipv4ToInt(ip), 4);
  return sa;
}

export class BatchedUdpSocket {
  readonly #o: BatchedUdpOptions;
  readonly #c: Libc;
  readonly #rx: Arena;
  readonly #tx: Arena;
  readonly #maxRounds: number;
  readonly #dgram: UdpSocket;
  readonly #fd: number;
  readonly #names = new Map<number, string>();
  readonly #addrs = new Map<string, number>();
  #queued = 0;
  #draining = false;
  #flushScheduled = false;
  #closed = false;
  #port = 0;
  #received = 0;
  #sent = 0;
  #dropped = 0;
  #truncated = 0;
  #batches = 0;

  /** Whether this machine can use batched sockets (Linux, glibc, x64/arm64). */
  static available(): boolean {
    return loadLibc() !== null;
  }

  /** Create, bind and start reading. Throws `DNS_LISTEN_FAILED` (with the errno) when bind fails. */
  static async bind(options: BatchedUdpOptions): Promise<BatchedUdpSocket> {
    const c = loadLibc();
    if (c === null) {
      throw new PortcullisError('DNS_LISTEN_FAILED', 'batched UDP needs Linux with glibc on x64 or arm64');
    }
    if (!isIPv4(options.address)) {
      throw new PortcullisError(
        'DNS_LISTEN_FAILED',
        `batched UDP: ${options.address} is not an IPv4 address`,
      );
    }
    const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw bindError(options, `socket() failed, errno ${koffi.errno()}`, koffi.errno());
    if (c.bind(fd, sockaddrIn(options.address, options.port), SOCKADDR_IN) !== 0) {
      const errno = koffi.errno();
      c.close(fd);
      throw bindError(options, errno === 98 ? 'address in use' : `bind() failed, errno ${errno}`, errno);
    }
    const sa = Buffer.alloc(SOCKADDR_IN);
    c.getsockname(fd, sa, [SOCKADDR_IN]);
    const sock = new BatchedUdpSocket(options, c, fd, sa.readUInt16BE(2));
    await sock.#open();
    return sock;
  }

  private constructor(options: BatchedUdpOptions, c: Libc, fd: number, port: number) {
    this.#o = options;
    this.#c = c;
    this.#fd = fd;
    this.#port = port;
    const batch = Math.min(1_024, Math.max(1, Math.floor(options.batch ?? 64)));
    this.#maxRounds = Math.max(1, options.maxRounds ?? 8);
    this.#rx = new Arena(batch, RX_SLOT);
    this.#tx = new Arena(batch, TX_SLOT);
    this.#dgram = createSocket('udp4');
  }

  async #open(): Promise<void> {
    const d = this.#dgram;
    await new Promise<void>((resolve, reject) => {
      d.once('error', reject);
      // Node takes the descriptor over: libuv watches it, and close() closes it
      d.bind({ fd: this.#fd }, () => {
        d.off('error', reject);
        resolve();
      });
    });
    const bytes = this.#o.bufferBytes ?? 4 * 1024 * 1024;
    try {
      d.setRecvBufferSize(bytes);
      d.setSendBufferSize(bytes);
    } catch {
      // capped by net.core.rmem_max / wmem_max; the default works too
    }
    d.on('message', (msg, rinfo) => this.#onReadable(msg, rinfo));
    d.on('error', (err) => this.#o.onError?.(err));
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  stats(): BatchedUdpStats {
    return {
      received: this.#received,
      sent: this.#sent,
      dropped: this.#dropped,
      truncated: this.#truncated,
      batches: this.#batches,
    };
  }

  /**
   * Queue an answer to `ip:port`. It leaves with the current batch, or on the event
   * loop's next turn when no batch is being read. Dropped after `close()`.
   */
  send(msg: Buffer, ip: string, port: number): void {
    if (this.#closed) return;
    const addr = this.#address(ip);
    if (addr === undefined) {
      this.#drop(1);
      return;
    }
    if (msg.length > TX_SLOT) {
      this.#flush();
      const n = this.#c.sendto(this.#fd, msg, msg.length, 0, sockaddrIn(ip, port), SOCKADDR_IN);
      if (n < 0) this.#sendFailed(1, koffi.errno());
      else this.#sent++;
      return;
    }
    const tx = this.#tx;
    const i = this.#queued;
    tx.bytes.set(msg, tx.dataAt(i));
    tx.setLength(i, msg.length);
    const name = tx.nameAt(i);
    tx.view.setUint16(name + 2, port, false);
    tx.view.setUint32(name + 4, addr, false);
    tx.view.setUint16(name, AF_INET, true);
    this.#queued = i + 1;
    if (this.#queued === tx.slots) this.#flush();
    else if (!this.#draining && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /** Stop reading, send what is queued, close the socket and free the native memory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    await new Promise<void>((resolve) => this.#dgram.close(() => resolve()));
    this.#rx.free();
    this.#tx.free();
  }

  #onReadable(first: Buffer, rinfo: RemoteInfo): void {
    if (this.#closed) return;
    this.#draining = true;
    try {
      this.#received++;
      this.#deliver(first, rinfo.address, rinfo.port);
      const rx = this.#rx;
      for (let round = 0; round < this.#maxRounds && !this.#closed; round++) {
        const n = this.#c.recvmmsg(this.#fd, rx.base, rx.slots, MSG_DONTWAIT, null);
        if (n <= 0) {
          if (n < 0) {
            const errno = koffi.errno();
            if (errno !== EAGAIN && errno !== EINTR)
              this.#o.onError?.(new Error(`recvmmsg failed, errno ${errno}`));
          }
          break;
        }
        this.#batches++;
        this.#received += n;
        for (let i = 0; i < n; i++) {
          const len = rx.received(i);
          const truncated = (rx.flags(i) & MSG_TRUNC) !== 0;
          rx.resetName(i);
          if (truncated) {
            this.#truncated++;
            this.#o.onDrop?.('in', 1);
            continue;
          }
          const name = rx.nameAt(i);
          const ip = this.#ip(rx.view.getUint32(name + 4, false));
          const port = rx.view.getUint16(name + 2, false);
          const at = rx.dataAt(i);
          const msg = Buffer.allocUnsafe(len);
          msg.set(rx.bytes.subarray(at, at + len));
          this.#deliver(msg, ip, port);
        }
        if (n < rx.slots) break;
      }
    } finally {
      this.#draining = false;
      this.#flush();
    }
  }

  #deliver(msg: Buffer, ip: string, port: number): void {
    try {
      this.#o.onMessage(msg, ip, port);
    } catch (err) {
      this.#o.onError?.(err as Error);
    }
  }

  #flush(): void {
    let from = 0;
    const count = this.#queued;
    this.#queued = 0;
    // a full send buffer takes what fits; one more try for the rest, then they are dropped
    for (let attempt = 0; from < count && attempt < 2; attempt++) {
      const n = this.#c.sendmmsg(this.#fd, this.#tx.base + from * MMSGHDR, count - from, MSG_DONTWAIT);
      if (n < 0) {
        const errno = koffi.errno();
        if (errno !== EAGAIN && errno !== EINTR) {
          this.#sendFailed(count - from, errno);
          return;
        }
        continue;
      }
      this.#sent += n;
      from += n;
    }
    if (from < count) this.#drop(count - from);
  }

  #sendFailed(count: number, errno: number): void {
    this.#drop(count);
    if (errno !== EAGAIN) this.#o.onError?.(new Error(`sendmmsg failed, errno ${errno}`));
  }

  #drop(count: number): void {
    this.#dropped += count;
    this.#o.onDrop?.('out', count);
  }

  #ip(value: number): string {
    let ip = this.#names.get(value);
    if (ip === undefined) {
      ip = intToIpv4(value);
      if (this.#names.size >= MAX_CACHED_ADDRESSES) this.#names.clear();
      this.#names.set(value, ip);
    }
    return ip;
  }

  #address(ip: string): number | undefined {
    let value = this.#addrs.get(ip);
    if (value === undefined) {
      if (!isIPv4(ip)) return undefined;
      value = ipv4ToInt(ip);
      if (this.#addrs.size >= MAX_CACHED_ADDRESSES) this.#addrs.clear();
      this.#addrs.set(ip, value);
    }
    return value;
  }
}

function bindError(o: BatchedUdpOptions, what: string, errno: number): PortcullisError {
  return new PortcullisError(
    'DNS_LISTEN_FAILED',
    `DNS filter: cannot listen on UDP ${o.address}:${o.port}: ${what}`,
    {
      context: { address: o.address, port: o.port, errno },
    },
  );
}
