import type { Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import type { LineSink } from './ingest.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './lines.js';
import { eveParseError } from './parse.js';

/**
 * Follows Suricata's `eve.json` like `tail -F`: polls the file, reads what was appended,
 * and delivers complete lines to a {@link LineSink}.
 *
 * - Rotation (logrotate moves the file, Suricata reopens a new one on SIGHUP): the path
 *   now names another inode. The old file is read to its end first, then the new one
 *   from its start.
 * - Truncation (`copytruncate`): the file is shorter than the read position. Reading
 *   restarts at 0 and an unfinished line is dropped (counted as truncated).
 * - The file may not exist yet (Suricata not started): the reader waits for it.
 *
 * Polling rather than fs.watch: it sees every rotation scheme the same way, on every
 * file system. A file truncated and then grown past the read position between two polls
 * cannot be told from appends (the `copytruncate` race logrotate documents).
 */

export interface EveFileTailOptions {
  /** The file to follow, e.g. /var/log/suricata/eve.json. */
  readonly path: string;
  readonly sink: LineSink;
  readonly log?: Logger;
  /** Poll interval in ms. Default 250. */
  readonly pollMs?: number;
  /** Read a file that exists at start() from its start instead of from its end. Default false. */
  readonly fromStart?: boolean;
  /** Longest line accepted, in bytes. Default 16 MiB. */
  readonly maxLineBytes?: number;
  /** Read size in bytes. Default 1 MiB. */
  readonly chunkBytes?: number;
  /** Most bytes read per poll, so one poll never monopolises the event loop. Default 16 MiB. */
  readonly maxBytesPerPoll?: number;
}

export interface EveFileTailStatus {
  readonly following: boolean;
  readonly inode: number | undefined;
  /** Byte offset read up to, in the current file. */
  readonly position: number;
  readonly rotations: number;
  readonly truncations: number;
  readonly bytes: number;
}

export class EveFileTailReader {
  readonly #options: EveFileTailOptions;
  readonly #log: Logger;
  readonly #splitter: LineSplitter;
  readonly #buffer: Buffer;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #fh: FileHandle | undefined;
  #ino: number | undefined;
  #dev: number | undefined;
  #position = 0;
  /** Only a file that exists at start() is skipped to its end (unless `fromStart`); any later one is new. */
  #skipToEnd: boolean;
  #rotations = 0;
  #truncations = 0;
  #bytes = 0;

  constructor(options: EveFileTailOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    const { sink } = options;
    this.#splitter = new LineSplitter(
      {
        line: (line) => sink.pushLine(line),
        overlong: (bytes) =>
          sink.reject(eveParseError('too-long', '', `line of ${bytes} bytes exceeds the limit`, '')),
      },
      options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    );
    this.#buffer = Buffer.allocUnsafe(options.chunkBytes ?? 1024 * 1024);
    this.#skipToEnd = options.fromStart !== true;
  }

  /** Start following: one poll now, then every `pollMs`. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#skipToEnd = this.#options.fromStart !== true;
    await this.poll();
    this.#skipToEnd = false;
    this.#schedule();
  }

  /** Stop polling, wait for a poll in flight, close the file. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#polling;
    await this.#close();
  }

  /** The file followed, the read position and the rotation/truncation counters. */
  status(): EveFileTailStatus {
    return {
      following: this.#fh !== undefined,
      inode: this.#ino,
      position: this.#position,
      rotations: this.#rotations,
      truncations: this.#truncations,
      bytes: this.#bytes,
    };
  }

  /** One poll: read what is new, handle rotation and truncation. Polls never overlap. */
  poll(): Promise<void> {
    if (this.#polling === undefined) {
      this.#polling = this.#pollOnce()
        .catch((err: unknown) => this.#log.warn({ err, path: this.#options.path }, 'EVE file poll failed'))
        .finally(() => {
          this.#polling = undefined;
        });
    }
    return this.#polling;
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      void this.poll().then(() => this.#schedule());
    }, this.#options.pollMs ?? 250);
  }

  async #pollOnce(): Promise<void> {
    const { path } = this.#options;
    if (this.#fh === undefined && !(await this.#open())) return;
    let budget = this.#options.maxBytesPerPoll ?? 16 * 1024 * 1024;
    budget -= await this.#readAvailable(budget);
    if (budget <= 0) return; // more to read: next poll

    let current: Stats;
    try {
      current = await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // moved away, new file not created yet
      throw err;
    }
    if (current.ino !== this.#ino || current.dev !== this.#dev) {
      // Rotated: finish the old file (Suricata may have written to it until it reopened).
      await this.#readAvailable(Number.POSITIVE_INFINITY);
      this.#endOfFile('file rotated in the middle of a line');
      await this.#close();
      this.#rotations += 1;
      this.#log.info({ path, rotations: this.#rotations }, 'EVE file rotated');
      if (await this.#open()) await this.#readAvailable(budget);
      return;
    }
    if (current.size < this.#position) {
      this.#truncations += 1;
      this.#log.info(
        { path, size: current.size, position: this.#position },
        'EVE file truncated; reading from its start',
      );
      this.#endOfFile('file truncated in the middle of a line');
      this.#position = 0;
      await this.#readAvailable(budget);
    }
  }

  async #open(): Promise<boolean> {
    let fh: FileHandle;
    try {
      fh = await open(this.#options.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const st = await fh.stat();
    this.#fh = fh;
    this.#ino = st.ino;
    this.#dev = st.dev;
    this.#position = this.#skipToEnd ? st.size : 0;
    this.#splitter.reset();
    return true;
  }

  async #close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) await fh.close().catch(() => undefined);
  }

  /** Reads from the position to the current end, at most `budget` bytes; returns bytes read. */
  async #readAvailable(budget: number): Promise<number> {
    const fh = this.#fh;
    if (!fh) return 0;
    let total = 0;
    while (total < budget) {
      const want = Math.min(this.#buffer.length, budget - total);
      const { bytesRead } = await fh.read(this.#buffer, 0, want, this.#position);
      if (bytesRead === 0) break;
      this.#position += bytesRead;
      this.#bytes += bytesRead;
      total += bytesRead;
      this.#splitter.push(this.#buffer.subarray(0, bytesRead));
    }
    return total;
  }

  #endOfFile(why: string): void {
    const rest = this.#splitter.end();
    if (rest !== undefined) this.#options.sink.reject(eveParseError('truncated', '', why, rest));
  }
}
