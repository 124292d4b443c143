import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { PortcullisError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import type { LineSink } from './ingest.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './lines.js';
import { eveParseError } from './parse.js';

/**
 * Receives EVE from Suricata over a unix stream socket. With `filetype: unix_stream`
 * Suricata is the client: it connects to `filename` and writes one event per line, and
 * reconnects after the socket goes away. So this reader is the server: it owns the
 * socket file, listens, and reads every connection line by line into a {@link LineSink}.
 * It never pauses a connection (Suricata must not block on EVE); the sink sheds instead.
 */

export interface EveSocketReaderOptions {
  /** Socket path, the `filename` of Suricata's `eve-log` output. */
  readonly path: string;
  readonly sink: LineSink;
  readonly log?: Logger;
  /** File mode of the socket; Suricata's user must be able to connect. Default 0o660. */
  readonly mode?: number;
  /** Longest line accepted, in bytes. Default 16 MiB. */
  readonly maxLineBytes?: number;
  /** Most simultaneous writers (Suricata uses one per eve-log output). Default 4. */
  readonly maxConnections?: number;
}

export interface EveSocketReaderStatus {
  readonly listening: boolean;
  readonly connections: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  readonly bytes: number;
}

export class EveSocketReader {
  readonly #options: EveSocketReaderOptions;
  readonly #log: Logger;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  #accepted = 0;
  #bytes = 0;

  constructor(options: EveSocketReaderOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
  }

  /**
   * Create the socket and listen. A stale socket file at the path (left by a crash) is
   * replaced; any other kind of file there is an error.
   */
  async start(): Promise<void> {
    if (this.#server) return;
    const { path } = this.#options;
    await removeStaleSocket(path);
    const server = createServer((socket) => this.#accept(socket));
    server.maxConnections = this.#options.maxConnections ?? 4;
    server.on('error', (err) => this.#log.error({ err, path }, 'EVE socket server error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new PortcullisError('SURICATA_SOCKET', `cannot listen on EVE socket ${path}: ${err.message}`, {
            cause: err,
          }),
        );
      server.once('error', onError);
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.#server = server;
    await chmod(path, this.#options.mode ?? 0o660);
    this.#log.info({ path }, 'EVE socket listening');
  }

  /** Close every connection and the server, and remove the socket file. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await closed;
    await unlink(this.#options.path).catch(() => undefined);
  }

  /** Listening state and counters, for health checks and tests. */
  status(): EveSocketReaderStatus {
    return {
      listening: this.#server !== undefined,
      connections: this.#sockets.size,
      accepted: this.#accepted,
      bytes: this.#bytes,
    };
  }

  #accept(socket: Socket): void {
    const { sink } = this.#options;
    this.#accepted += 1;
    this.#sockets.add(socket);
    this.#log.info({ connections: this.#sockets.size }, 'Suricata connected to the EVE socket');
    const splitter = new LineSplitter(
      {
        line: (line) => sink.pushLine(line),
        overlong: (bytes) =>
          sink.reject(eveParseError('too-long', '', `line of ${bytes} bytes exceeds the limit`, '')),
      },
      this.#options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    );
    socket.on('data', (chunk: Buffer) => {
      this.#bytes += chunk.length;
      splitter.push(chunk);
    });
    socket.on('error', (err) => this.#log.warn({ err }, 'EVE socket connection error'));
    socket.on('close', () => {
      this.#sockets.delete(socket);
      const rest = splitter.end();
      if (rest !== undefined)
        sink.reject(eveParseError('truncated', '', 'connection closed in the middle of a line', rest));
      this.#log.info({ connections: this.#sockets.size }, 'Suricata disconnected from the EVE socket');
    });
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new PortcullisError('SURICATA_SOCKET', `cannot inspect ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!isSocket) {
    throw new PortcullisError(
      'SURICATA_SOCKET',
      `${path} exists and is not a socket; remove it or choose another EVE socket path`,
    );
  }
  await unlink(path);
}
