import koffi from 'koffi';
import { PortcullisError } from '../errors.js';

/**
 * The kernel's nftables ruleset generation of this network namespace: a number the
 * kernel increments with every committed transaction (any table, anyone's). Equal
 * generations mean nothing was committed in between, so the table cannot have changed.
 */
export interface NftGeneration {
  /** The current generation. Throws NFT_UNAVAILABLE when it cannot be read. */
  read(): number;
  close(): void;
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;
const MSG_DONTWAIT = 0x40;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
/** (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, and the NFT_MSG_NEWGEN answer. */
const NFT_GETGEN = (10 << 8) | 16;
const NFT_NEWGEN = (10 << 8) | 15;
const NFTA_GEN_ID = 1;
/** nlmsghdr (16 bytes) + nfgenmsg (4 bytes). */
const HEADER = 20;

interface Libc {
  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly send: (fd: number, buf: Buffer, len: number, flags: number) => number;
  readonly recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  readonly close: (fd: number) => number;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  let lib;
  try {
    lib = koffi.load('libc.so.6');
  } catch (cause) {
    throw new PortcullisError('NFT_UNAVAILABLE', 'cannot load libc.so.6 to read the nftables generation', {
      cause,
    });
  }
  libc = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    send: lib.func('intptr_t send(int fd, void *buf, uintptr_t len, int flags)'),
    recv: lib.func('intptr_t recv(int fd, _Out_ void *buf, uintptr_t len, int flags)'),
    close: lib.func('int close(int fd)'),
  };
  return libc;
}

/**
 * Reads the generation with one `NFT_MSG_GETGEN` request on a netfilter netlink socket
 * (what `nft` itself asks before it trusts its cache): a system call's worth of time,
 * against the seconds a listing of a table with a million set elements takes. The
 * socket is opened on the first read, in the network namespace of the process, and
 * kept. Needs CAP_NET_ADMIN, as every nftables request does.
 */
export class NetlinkGeneration implements NftGeneration {
  #fd = -1;
  #seq = 0;
  readonly #buf = Buffer.alloc(4096);

  read(): number {
    const c = loadLibc();
    if (this.#fd < 0) {
      this.#fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      if (this.#fd < 0) throw this.#error(`socket() failed, errno ${koffi.errno()}`);
    }
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    const req = Buffer.alloc(HEADER);
    req.writeUInt32LE(HEADER, 0);
    req.writeUInt16LE(NFT_GETGEN, 4);
    req.writeUInt16LE(NLM_F_REQUEST, 6);
    req.writeUInt32LE(seq, 8);
    // pid 0 (the kernel), nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0
    if (c.send(this.#fd, req, req.length, 0) !== req.length)
      throw this.#error(`send() failed, errno ${koffi.errno()}`);
    // the kernel answers while handling send(): the reply is queued before it returns
    for (;;) {
      const n = c.recv(this.#fd, this.#buf, this.#buf.length, MSG_DONTWAIT);
      if (n < 0) throw this.#error(`recv() failed, errno ${koffi.errno()}`);
      const gen = parseGeneration(this.#buf.subarray(0, n), seq);
      if (gen !== undefined) return gen;
    }
  }

  #error(what: string): PortcullisError {
    this.close();
    return new PortcullisError(
      'NFT_UNAVAILABLE',
      `cannot read the nftables generation (${what}); the service needs CAP_NET_ADMIN`,
    );
  }

  close(): void {
    if (this.#fd >= 0) loadLibc().close(this.#fd);
    this.#fd = -1;
  }
}

/**
 * The generation in a netlink datagram answering request `seq`; undefined when the
 * datagram holds no answer to it. Throws on a netlink error answer.
 */
export function parseGeneration(msg: Buffer, seq: number): number | undefined {
  for (let at = 0; at + 16 <= msg.length;) {
    const len = msg.readUInt32LE(at);
    if (len < 16 || at + len > msg.length) break;
    const type = msg.readUInt16LE(at + 4);
    if (msg.readUInt32LE(at + 8) === seq) {
      if (type === NLMSG_ERROR) {
        const errno = -msg.readInt32LE(at + 16);
        throw new PortcullisError(
          'NFT_UNAVAILABLE',
          `cannot read the nftables generation: the kernel answered errno ${errno}${errno === 1 ? ' (the service needs CAP_NET_ADMIN)' : ''}`,
        );
      }
      if (type === NFT_NEWGEN) {
        for (let a = at + HEADER; a + 4 <= at + len;) {
          const alen = msg.readUInt16LE(a);
          if (alen < 4) break;
          if ((msg.readUInt16LE(a + 2) & 0x3fff) === NFTA_GEN_ID && alen >= 8) return msg.readUInt32BE(a + 4);
          a += (alen + 3) & ~3;
        }
      }
    }
    at += (len + 3) & ~3;
  }
  return undefined;
}
