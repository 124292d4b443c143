/**
 * A small POSIX ustar writer: the archives `portcullis bundle build` writes are plain
 * ustar (no pax or GNU extensions), deterministic (sorted by the caller, fixed owner,
 * mode and time), so the same source tree and time give the same bytes. Pure.
 */

/** One archive entry. */
export interface TarEntry {
  /** Path inside the archive; `/`-separated, at most 255 bytes (split into prefix and name). */
  readonly path: string;
  /** File content (regular files). */
  readonly data?: Uint8Array;
  /**
   * ustar type flag: `0` file (default), `5` directory. Others (`1` hard link, `2` symlink,
   * `3`/`4` devices, `6` FIFO) exist so tests can build hostile archives.
   */
  readonly type?: '0' | '1' | '2' | '3' | '4' | '5' | '6';
  /** Link target (types 1 and 2). */
  readonly linkname?: string;
  /** Permission bits. Default 0o644 for files, 0o755 for directories. */
  readonly mode?: number;
  /** Modification time, seconds since the epoch. Default 0. */
  readonly mtime?: number;
  /** Device numbers (types 3 and 4). */
  readonly devmajor?: number;
  readonly devminor?: number;
}

const BLOCK = 512;

function writeString(h: Buffer, value: string, offset: number, length: number, what: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > length) throw new RangeError(`tar: ${what} "${value}" is longer than ${length} bytes`);
  b.copy(h, offset);
}

function writeOctal(h: Buffer, value: number, offset: number, length: number): void {
  // length-1 octal digits, then NUL
  const s = value.toString(8).padStart(length - 1, '0');
  if (s.length > length - 1) throw new RangeError(`tar: ${value} does not fit ${length - 1} octal digits`);
  h.write(`${s}\0`, offset, 'ascii');
}

function splitPath(path: string): [prefix: string, name: string] {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) {
      return [prefix, name];
    }
  }
  throw new RangeError(`tar: path "${path}" does not fit a ustar header`);
}

/** One 512-byte ustar header. */
export function tarHeader(entry: TarEntry): Buffer {
  const type = entry.type ?? '0';
  const size = type === '0' ? (entry.data?.length ?? 0) : 0;
  const h = Buffer.alloc(BLOCK);
  const [prefix, name] = splitPath(entry.path);
  writeString(h, name, 0, 100, 'name');
  writeOctal(h, entry.mode ?? (type === '5' ? 0o755 : 0o644), 100, 8);
  writeOctal(h, 0, 108, 8);
  writeOctal(h, 0, 116, 8);
  writeOctal(h, size, 124, 12);
  writeOctal(h, entry.mtime ?? 0, 136, 12);
  h.write(type, 156, 'ascii');
  writeString(h, entry.linkname ?? '', 157, 100, 'link name');
  h.write('ustar\u000000', 257, 'ascii');
  writeString(h, 'root', 265, 32, 'user');
  writeString(h, 'root', 297, 32, 'group');
  writeOctal(h, entry.devmajor ?? 0, 329, 8);
  writeOctal(h, entry.devminor ?? 0, 337, 8);
  writeString(h, prefix, 345, 155, 'prefix');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A whole ustar archive: each entry's header and data padded to 512 bytes, then two zero blocks. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    if ((e.type ?? '0') === '0' && e.data && e.data.length > 0) {
      parts.push(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length));
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
