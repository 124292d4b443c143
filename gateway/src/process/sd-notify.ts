import koffi from 'koffi';
import { PortcullisError } from '../errors.js';
import { MSG_DONTWAIT, SOCK_CLOEXEC, socketCalls } from './libc-socket.js';

/**
 * systemd's notification protocol (sd_notify(3)) from the service's own process: one
 * datagram per message on the unix socket in `$NOTIFY_SOCKET`. Sent from the main
 * process itself (not through `systemd-notify`, a child that may exit before systemd
 * has attributed its message), so the unit can say `NotifyAccess=main`. `READY=1` when
 * the policy is in the kernel and the API listens; `WATCHDOG=1` from the event loop
 * every half `WatchdogSec=`: a loop that hangs stops pinging and systemd restarts the
 * service (the kernel keeps enforcing the last ruleset meanwhile).
 */

/** What the service's environment says about systemd. */
export interface NotifyEnv {
  readonly NOTIFY_SOCKET?: string | undefined;
  readonly WATCHDOG_USEC?: string | undefined;
  readonly WATCHDOG_PID?: string | undefined;
}

/**
 * The `sockaddr_un` of a `$NOTIFY_SOCKET` value: a path, or `@name` for an abstract
 * socket (a NUL first byte). Undefined when the variable is unset or empty.
 * @throws CONFIG_INVALID when the address does not fit in `sun_path` (108 bytes).
 */
export function notifyAddress(socket: string | undefined): Buffer | undefined {
  if (!socket) return undefined;
  if (!socket.startsWith('/') && !socket.startsWith('@'))
    throw new PortcullisError('CONFIG_INVALID', `NOTIFY_SOCKET=${socket} is neither a path nor @abstract`);
  const path = Buffer.from(socket, 'utf8');
  if (socket.startsWith('@')) path[0] = 0;
  if (path.length > 107)
    throw new PortcullisError('CONFIG_INVALID', `NOTIFY_SOCKET=${socket} is longer than a unix socket path`);
  // sa_family_t AF_UNIX, then the path (NUL-terminated when it is not abstract)
  const addr = Buffer.alloc(2 + path.length + (socket.startsWith('@') ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  path.copy(addr, 2);
  return addr;
}

/**
 * How often to ping systemd's watchdog, ms: half of `WATCHDOG_USEC` (sd_watchdog_enabled(3)
 * advises less than the full period), when the watchdog is on and meant for `pid`.
 * Undefined when there is no watchdog for this process.
 */
export function watchdogIntervalMs(env: NotifyEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/** Sends datagrams to systemd's notification socket. */
export interface NotifySender {
  send(message: string): void;
  close(): void;
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const MSG_NOSIGNAL = 0x4000;

/** The real sender: an AF_UNIX datagram socket through libc (Node has no unix datagrams). */
export class UnixNotifySender implements NotifySender {
  readonly #addr: Buffer;
  #fd = -1;

  constructor(addr: Buffer) {
    this.#addr = addr;
  }

  /**
   * Send one message (`KEY=value` lines).
   * @throws SYSTEMD_NOTIFY when the socket cannot be opened or the datagram not sent.
   */
  send(message: string): void {
    const c = socketCalls();
    if (this.#fd < 0) {
      this.#fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (this.#fd < 0)
        throw new PortcullisError('SYSTEMD_NOTIFY', `socket(AF_UNIX) failed, errno ${koffi.errno()}`);
    }
    const buf = Buffer.from(message, 'utf8');
    const n = c.sendto(this.#fd, buf, buf.length, MSG_DONTWAIT | MSG_NOSIGNAL, this.#addr, this.#addr.length);
    if (n !== buf.length)
      throw new PortcullisError(
        'SYSTEMD_NOTIFY',
        `cannot notify systemd (${message.split('\n')[0]}): errno ${koffi.errno()}`,
      );
  }

  close(): void {
    if (this.#fd >= 0) socketCalls().close(this.#fd);
    this.#fd = -1;
  }
}

export interface SystemdNotifierOptions {
  readonly env?: NotifyEnv;
  readonly pid?: number;
  /** Default: a {@link UnixNotifySender} on `$NOTIFY_SOCKET`. */
  readonly sender?: NotifySender;
  /** Told when a message could not be sent (the service keeps running). */
  readonly onError?: (err: unknown) => void;
}

/**
 * The service's side of systemd: `ready()` once, then watchdog pings from the event
 * loop until `stop()`. Does nothing when not started by systemd (no `$NOTIFY_SOCKET`).
 */
export class SystemdNotifier {
  readonly #sender: NotifySender | undefined;
  readonly #intervalMs: number | undefined;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SystemdNotifierOptions = {}) {
    const env = options.env ?? process.env;
    const addr = notifyAddress(env.NOTIFY_SOCKET);
    this.#sender = options.sender ?? (addr ? new UnixNotifySender(addr) : undefined);
    this.#intervalMs = this.#sender ? watchdogIntervalMs(env, options.pid ?? process.pid) : undefined;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Whether systemd listens (the service runs under a `Type=notify` unit). */
  get enabled(): boolean {
    return this.#sender !== undefined;
  }

  /** The watchdog period the pings keep, ms; undefined without `WatchdogSec=`. */
  get watchdogIntervalMs(): number | undefined {
    return this.#intervalMs;
  }

  /** `READY=1` and start the watchdog pings. */
  ready(status = 'enforcing'): void {
    this.#send(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`);
    if (this.#intervalMs === undefined || this.#timer) return;
    this.#timer = setInterval(() => this.#send('WATCHDOG=1'), this.#intervalMs);
    this.#timer.unref();
  }

  /** `STOPPING=1`; no more pings. */
  stopping(): void {
    this.stop();
    this.#send('STOPPING=1');
  }

  /** No more pings; close the socket. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    this.stop();
    this.#sender?.close();
  }

  #send(message: string): void {
    if (!this.#sender) return;
    try {
      this.#sender.send(message);
    } catch (err) {
      this.#onError(err);
    }
  }
}
