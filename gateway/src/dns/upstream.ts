import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { connect, type Socket as TcpSocket } from 'node:net';
import { PortcullisError } from '../errors.js';
import { buildQuery, FLAG, RCODE, scanResponse, typeName } from './wire.js';

/**
 * The upstream client: asks the configured resolvers, in order, over UDP from a small
 * pool of sockets with random ports and random IDs; a truncated (TC) answer is asked
 * again over TCP; a timeout, SERVFAIL or REFUSED moves on to the next resolver.
 * An answer is accepted only from the address asked, with the ID and question sent.
 */

export interface UpstreamServer {
  /** IPv4 or IPv6 address of the resolver. */
  readonly address: string;
  /** Port. Default 53. */
  readonly port?: number;
}

export interface UpstreamOptions {
  /** Resolvers, tried in order starting with the last one that answered. At least one. */
  readonly servers: readonly UpstreamServer[];
  /** Time to wait for one resolver, per attempt, in ms. Default 2,000. */
  readonly timeoutMs?: number;
  /** UDP sockets per address family (each with its own random port). Default 4, 1 to 64. */
  readonly sockets?: number;
  /** EDNS UDP payload size we advertise upstream, in bytes. Default 1,232. */
  readonly udpSize?: number;
}

/** One answer from upstream. */
export interface UpstreamAnswer {
  readonly buf: Buffer;
  /** `address:port` (or `[v6]:port`) of the resolver that answered. */
  readonly server: string;
  readonly transport: 'udp' | 'tcp';
  /** Round trip of the successful attempt, in ms. */
  readonly ms: number;
}

interface Pending {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly server: Required<UpstreamServer>;
  readonly started: number;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (buf: Buffer) => void;
  readonly reject: (err: Error) => void;
}

interface Pool {
  readonly sockets: UdpSocket[];
  readonly pending: Map<number, Pending>[];
  next: number;
}

const label = (s: Required<UpstreamServer>): string =>
  isIPv6(s.address) ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;

class AttemptError extends Error {
  constructor(
    message: string,
    readonly kind: 'timeout' | 'rcode' | 'network' | 'stopped',
  ) {
    super(message);
  }
}

export class UpstreamClient {
  readonly #servers: Required<UpstreamServer>[];
  readonly #timeoutMs: number;
  readonly #socketCount: number;
  readonly #udpSize: number;
  readonly #pools = new Map<'udp4' | 'udp6', Pool>();
  readonly #tcp = new Set<TcpSocket>();
  #preferred = 0;
  #running = false;
  #random = Buffer.alloc(0);
  #randomAt = 0;

  constructor(options: UpstreamOptions) {
    this.#servers = options.servers.map((s) => ({ address: s.address, port: s.port ?? 53 }));
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#socketCount = Math.min(64, Math.max(1, options.sockets ?? 4));
    this.#udpSize = options.udpSize ?? 1_232;
  }

  /** Open the UDP socket pools (random ports). */
  async start(): Promise<void> {
    if (this.#running) return;
    if (this.#servers.length === 0) {
      throw new PortcullisError(
        'CONFIG_INVALID',
        'DNS filter: no upstream resolver configured; set at least one in upstreams',
      );
    }
    const families = new Set(
      this.#servers.map((s) => (isIPv6(s.address) ? 'udp6' : 'udp4') as 'udp4' | 'udp6'),
    );
    for (const family of families) {
      const pool: Pool = { sockets: [], pending: [], next: 0 };
      for (let i = 0; i < this.#socketCount; i++) {
        const sock = createSocket({ type: family });
        const pending = new Map<number, Pending>();
        sock.on('message', (msg, rinfo) => this.#onMessage(pending, msg, rinfo.address, rinfo.port));
        sock.on('error', () => {
          // a send error is reported to the attempt; nothing to do for the socket
        });
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          // exclusive: under node:cluster a port-0 bind would otherwise be shared between workers
          sock.bind({ port: 0, exclusive: true }, () => {
            sock.off('error', reject);
            resolve();
          });
        });
        pool.sockets.push(sock);
        pool.pending.push(pending);
      }
      this.#pools.set(family, pool);
    }
    this.#running = true;
  }

  /** Close sockets and fail every pending question. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const pool of this.#pools.values()) {
      for (const pending of pool.pending) {
        for (const p of pending.values()) {
          clearTimeout(p.timer);
          p.reject(new AttemptError('DNS filter stopped', 'stopped'));
        }
        pending.clear();
      }
      await Promise.all(pool.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    }
    this.#pools.clear();
    for (const s of this.#tcp) s.destroy();
    this.#tcp.clear();
  }

  /** Questions waiting for an answer. */
  get pending(): number {
    let n = 0;
    for (const pool of this.#pools.values()) for (const p of pool.pending) n += p.size;
    return n;
  }

  /**
   * Ask the resolvers for `name`/`type`. Resolves with the first usable answer
   * (NOERROR or NXDOMAIN); rejects with `DNS_UPSTREAM_FAILED` when every resolver failed.
   * @param onError called for each failed attempt (for metrics).
   */
  async query(
    name: string,
    type: number,
    onError?: (err: Error, server: string) => void,
  ): Promise<UpstreamAnswer> {
    const errors: string[] = [];
    const n = this.#servers.length;
    const first = this.#preferred;
    for (let k = 0; k < n; k++) {
      if (!this.#running) break;
      const idx = (first + k) % n;
      const server = this.#servers[idx] as Required<UpstreamServer>;
      const started = performance.now();
      try {
        let buf = await this.#udp(server, name, type);
        let transport: 'udp' | 'tcp' = 'udp';
        if ((buf.readUInt16BE(2) & FLAG.TC) !== 0) {
          buf = await this.#tcpQuery(server, name, type);
          transport = 'tcp';
        }
        const rcode = buf.readUInt16BE(2) & 0xf;
        if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
          throw new AttemptError(`answered rcode ${rcode}`, 'rcode');
        }
        this.#preferred = idx;
        return { buf, server: label(server), transport, ms: performance.now() - started };
      } catch (err) {
        const e = err as Error;
        errors.push(`${label(server)}: ${e.message}`);
        if (e instanceof AttemptError && e.kind === 'stopped') break;
        onError?.(e, label(server));
        if (idx === this.#preferred) this.#preferred = (idx + 1) % n;
      }
    }
    throw new PortcullisError(
      'DNS_UPSTREAM_FAILED',
      `no upstream resolver answered ${name} ${typeName(type)}: ${errors.join('; ') || 'filter stopped'}`,
      { context: { name, type, errors } },
    );
  }

  #id(): number {
    if (this.#randomAt + 2 > this.#random.length) {
      this.#random = randomBytes(4096);
      this.#randomAt = 0;
    }
    const id = this.#random.readUInt16BE(this.#randomAt);
    this.#randomAt += 2;
    return id;
  }

  #udp(server: Required<UpstreamServer>, name: string, type: number): Promise<Buffer> {
    const pool = this.#pools.get(isIPv6(server.address) ? 'udp6' : 'udp4');
    if (pool === undefined) return Promise.reject(new AttemptError('DNS filter stopped', 'stopped'));
    const slot = pool.next;
    pool.next = (pool.next + 1) % pool.sockets.length;
    const sock = pool.sockets[slot] as UdpSocket;
    const pending = pool.pending[slot] as Map<number, Pending>;
    let id = this.#id();
    for (let tries = 0; pending.has(id) && tries < 16; tries++) id = this.#id();
    if (pending.has(id)) return Promise.reject(new AttemptError('too many questions in flight', 'network'));
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new AttemptError(`no answer within ${this.#timeoutMs} ms`, 'timeout'));
      }, this.#timeoutMs);
      const p: Pending = { id, name, type, server, started: performance.now(), timer, resolve, reject };
      pending.set(id, p);
      sock.send(buildQuery(id, name, type, this.#udpSize), server.port, server.address, (err) => {
        if (err !== null && pending.get(id) === p) {
          clearTimeout(timer);
          pending.delete(id);
          reject(new AttemptError(`send failed: ${err.message}`, 'network'));
        }
      });
    });
  }

  #onMessage(pending: Map<number, Pending>, msg: Buffer, address: string, port: number): void {
    if (msg.length < 12) return;
    const p = pending.get(msg.readUInt16BE(0));
    if (p === undefined) return;
    if (port !== p.server.port || !sameAddress(address, p.server.address)) return;
    if (!matchesQuestion(msg, p.name, p.type)) return;
    clearTimeout(p.timer);
    pending.delete(p.id);
    p.resolve(msg);
  }

  #tcpQuery(server: Required<UpstreamServer>, name: string, type: number): Promise<Buffer> {
    const id = this.#id();
    const q = buildQuery(id, name, type, this.#udpSize);
    const framed = Buffer.allocUnsafe(q.length + 2);
    framed.writeUInt16BE(q.length, 0);
    q.copy(framed, 2);
    return new Promise<Buffer>((resolve, reject) => {
      const sock = connect({ host: server.address, port: server.port });
      this.#tcp.add(sock);
      let buf = Buffer.alloc(0);
      let settled = false;
      const done = (err: Error | undefined, answer?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#tcp.delete(sock);
        sock.destroy();
        if (err !== undefined) reject(err);
        else resolve(answer as Buffer);
      };
      const timer = setTimeout(
        () => done(new AttemptError(`no TCP answer within ${this.#timeoutMs} ms`, 'timeout')),
        this.#timeoutMs,
      );
      sock.on('connect', () => sock.write(framed));
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) return;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          if (msg.length >= 12 && msg.readUInt16BE(0) === id && matchesQuestion(msg, name, type)) {
            done(undefined, Buffer.from(msg));
            return;
          }
        }
      });
      sock.on('error', (err) => done(new AttemptError(`TCP: ${err.message}`, 'network')));
      sock.on('close', () => done(new AttemptError('TCP connection closed before an answer', 'network')));
    });
  }
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (s: string): string => (s.startsWith('::ffff:') ? s.slice(7) : s).toLowerCase();
  return strip(a) === strip(b);
}

function matchesQuestion(msg: Buffer, name: string, type: number): boolean {
  const s = scanResponse(msg);
  return s !== undefined && s.name === name && s.type === type;
}
