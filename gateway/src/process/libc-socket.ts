import koffi from 'koffi';

/**
 * The three libc socket calls the service makes where Node has no socket of the kind:
 * a unix datagram to systemd (sd-notify.ts) and raw IP (raw-ip.ts). Loaded once, at the
 * first use.
 */
export interface SocketCalls {
  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly sendto: (
    fd: number,
    buf: Uint8Array,
    len: number,
    flags: number,
    addr: Uint8Array,
    alen: number,
  ) => number;
  readonly close: (fd: number) => number;
}

export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;

let calls: SocketCalls | undefined;

/** libc's socket, sendto and close; the errno of a failed call is `koffi.errno()`. */
export function socketCalls(): SocketCalls {
  if (calls) return calls;
  const lib = koffi.load('libc.so.6');
  calls = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    sendto: lib.func(
      'intptr_t sendto(int fd, const void *buf, uintptr_t len, int flags, const void *addr, uint32_t alen)',
    ),
    close: lib.func('int close(int fd)'),
  };
  return calls;
}
