/**
 * Newline framing for byte streams (socket, file tail, replay file): bytes in, complete
 * lines out. A line may arrive in any number of chunks, and a UTF-8 character may be cut
 * between two chunks: lines are cut on the 0x0A byte and decoded whole. Pure (no I/O).
 */

/** Default longest line accepted, in bytes: 16 MiB (EVE lines with payloads can be large). */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Where the splitter delivers its output. */
export interface LineHandler {
  /** A complete line, without its `\n` (and without a trailing `\r`); never empty. */
  line(line: string): void;
  /** A line longer than the limit was dropped; `bytes` is how much of it was seen. */
  overlong(bytes: number): void;
}

const NL = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #out: LineHandler;
  /** Bytes of the current, unfinished line. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Inside an overlong line: drop bytes until the next newline. */
  #discarding = false;
  #discardedBytes = 0;

  /**
   * @param out receives lines and overlong reports.
   * @param maxLineBytes longest line accepted, in bytes; default {@link DEFAULT_MAX_LINE_BYTES}.
   */
  constructor(out: LineHandler, maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    this.#out = out;
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes held for an unfinished line (bounded by the limit). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Feed a chunk; complete lines are delivered before this returns. */
  push(chunk: Buffer): void {
    let start = 0;
    const n = chunk.length;
    while (start < n) {
      const nl = chunk.indexOf(NL, start);
      if (nl === -1) {
        this.#hold(chunk, start, n);
        return;
      }
      if (this.#discarding) {
        this.#out.overlong(this.#discardedBytes + (nl - start));
        this.#discarding = false;
        this.#discardedBytes = 0;
      } else if (this.#pendingBytes > 0) {
        if (this.#pendingBytes + (nl - start) > this.#maxLineBytes) {
          this.#out.overlong(this.#pendingBytes + (nl - start));
        } else {
          this.#pending.push(chunk.subarray(start, nl));
          this.#emit(Buffer.concat(this.#pending), 0, this.#pendingBytes + (nl - start));
        }
        this.#pending = [];
        this.#pendingBytes = 0;
      } else if (nl - start > this.#maxLineBytes) {
        this.#out.overlong(nl - start);
      } else {
        this.#emit(chunk, start, nl);
      }
      start = nl + 1;
    }
  }

  /**
   * The stream ended. Returns the unfinished line held, if any (it was never terminated,
   * so the caller decides: a truncated event or a final line), and resets.
   */
  end(): string | undefined {
    if (this.#discarding) this.#out.overlong(this.#discardedBytes);
    const rest = this.#pendingBytes > 0 ? Buffer.concat(this.#pending).toString('utf8') : undefined;
    this.reset();
    return rest;
  }

  /** Forget any unfinished line (after a truncation). */
  reset(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#discarding = false;
    this.#discardedBytes = 0;
  }

  #hold(chunk: Buffer, start: number, end: number): void {
    const len = end - start;
    if (this.#discarding) {
      this.#discardedBytes += len;
      return;
    }
    if (this.#pendingBytes + len > this.#maxLineBytes) {
      this.#discarding = true;
      this.#discardedBytes = this.#pendingBytes + len;
      this.#pending = [];
      this.#pendingBytes = 0;
      return;
    }
    // Copy: the caller may reuse its buffer (file reads do).
    this.#pending.push(Buffer.from(chunk.subarray(start, end)));
    this.#pendingBytes += len;
  }

  #emit(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === CR) end -= 1;
    if (end > start) this.#out.line(buf.toString('utf8', start, end));
  }
}
