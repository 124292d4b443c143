import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { PortcullisError } from '../errors.js';
import { isSafeBundlePath, MANIFEST_PATH } from '../../../rules/src/format.js';

/**
 * Unpack a bundle (gzipped ustar) into an empty folder without trusting it: only regular
 * files and directories with plain relative paths (no `..`, no leading dot, no links,
 * devices, FIFOs, pax or GNU extension headers), each path once, files created with
 * O_EXCL|O_NOFOLLOW; the unpacked total, the entry count and the compression ratio are
 * bounded while decompressing, so a decompression bomb stops after a few megabytes.
 * Every file's size and sha256 are computed while it is written.
 */

/** Bounds on what an archive may unpack to. */
export interface UnpackLimits {
  /** Most bytes unpacked in total (file contents). Default 256 MiB. */
  readonly maxBytes: number;
  /** Most entries. Default 10,000. */
  readonly maxEntries: number;
  /** Highest ratio of decompressed to compressed bytes, checked once 1 MiB is out. Default 100. */
  readonly maxRatio: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = Object.freeze({
  maxBytes: 256 * 1024 * 1024,
  maxEntries: 10_000,
  maxRatio: 100,
});

/** A file the archive held. */
export interface UnpackedFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** What {@link unpackArchive} found. */
export interface UnpackedArchive {
  /** Regular files except the manifest, in archive order. */
  readonly files: readonly UnpackedFile[];
  /** The manifest's bytes, if the archive had one (at most 1 MiB). */
  readonly manifest: Buffer | undefined;
  /** Decompressed tar bytes. */
  readonly tarBytes: number;
}

const BLOCK = 512;
const MAX_MANIFEST = 1024 * 1024;
const RATIO_AFTER = 1024 * 1024;

const unsafe = (message: string, context: Record<string, unknown>): PortcullisError =>
  new PortcullisError('BUNDLE_UNSAFE_ARCHIVE', message, { context });
const corrupt = (message: string): PortcullisError => new PortcullisError('BUNDLE_CORRUPT', message);
const tooLarge = (message: string, context: Record<string, unknown>): PortcullisError =>
  new PortcullisError('BUNDLE_TOO_LARGE', message, { context });

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? length : nul).toString('utf8');
}

function octal(h: Buffer, offset: number, length: number, what: string): number {
  if ((h[offset]! & 0x80) !== 0)
    throw corrupt(`tar header ${what} uses base-256 encoding, which bundles never do`);
  const text = field(h, offset, length).trim();
  if (!/^[0-7]*$/.test(text)) throw corrupt(`tar header ${what} is not octal: "${text}"`);
  return text === '' ? 0 : parseInt(text, 8);
}

const TYPE_NAMES: Record<string, string> = {
  '1': 'hard link',
  '2': 'symbolic link',
  '3': 'character device',
  '4': 'block device',
  '6': 'FIFO',
  '7': 'contiguous file',
  x: 'pax extended header',
  g: 'pax global header',
  L: 'GNU long name',
  K: 'GNU long link name',
};

interface Current {
  readonly path: string;
  readonly size: number;
  remaining: number;
  readonly fh: FileHandle | undefined;
  readonly hash: Hash;
  readonly manifest: Buffer[] | undefined;
}

/** The ustar parser, fed decompressed bytes in order. */
class TarReader {
  readonly #dest: string;
  readonly #limits: UnpackLimits;
  readonly #seen = new Set<string>();
  readonly files: UnpackedFile[] = [];
  manifest: Buffer | undefined;
  #pending: Buffer = Buffer.alloc(0);
  #current: Current | undefined;
  #padding = 0;
  #entries = 0;
  #contentBytes = 0;
  #zeroBlocks = 0;
  ended = false;

  constructor(dest: string, limits: UnpackLimits) {
    this.#dest = dest;
    this.#limits = limits;
  }

  async push(chunk: Buffer): Promise<void> {
    let buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (buf.length > 0) {
      if (this.#current) {
        const n = Math.min(this.#current.remaining, buf.length);
        await this.#data(buf.subarray(0, n));
        buf = buf.subarray(n);
        continue;
      }
      if (this.#padding > 0) {
        const n = Math.min(this.#padding, buf.length);
        this.#padding -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < BLOCK) break;
      const block = buf.subarray(0, BLOCK);
      buf = buf.subarray(BLOCK);
      if (this.ended) {
        if (!block.every((b) => b === 0)) throw corrupt('data after the end of the tar archive');
        continue;
      }
      await this.#header(block);
    }
    this.#pending = Buffer.from(buf);
  }

  async #header(h: Buffer): Promise<void> {
    if (h.every((b) => b === 0)) {
      // two zero blocks end the archive; one is tolerated at the very end
      if (++this.#zeroBlocks >= 2) this.ended = true;
      return;
    }
    if (this.#zeroBlocks > 0) throw corrupt('a tar header after an end-of-archive block');
    const stored = octal(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== stored) throw corrupt('tar header checksum mismatch: the archive is damaged');
    const magic = h.subarray(257, 265).toString('latin1');
    if (magic !== 'ustar\u000000' && magic !== 'ustar  \u0000') {
      throw corrupt('not a ustar archive (old-style tar headers are not accepted)');
    }
    const prefix = field(h, 345, 155);
    const name = field(h, 0, 100);
    let path = prefix ? `${prefix}/${name}` : name;
    const type = String.fromCharCode(h[156]!);
    if (++this.#entries > this.#limits.maxEntries) {
      throw tooLarge(`the archive has more than ${this.#limits.maxEntries} entries`, {
        limit: 'entries',
        maxEntries: this.#limits.maxEntries,
      });
    }
    if (type !== '0' && type !== '\0' && type !== '5') {
      const what = TYPE_NAMES[type] ?? `entry type "${type}"`;
      throw unsafe(`archive entry "${path}" is a ${what}; bundles hold only regular files and directories`, {
        path,
        type,
        linkname: field(h, 157, 100) || undefined,
      });
    }
    if (type === '5' && path.endsWith('/')) path = path.slice(0, -1);
    if (!isSafeBundlePath(path)) {
      throw unsafe(
        `archive entry "${path}" is not a plain relative path (absolute, "..", a leading dot or odd characters)`,
        { path },
      );
    }
    if (this.#seen.has(path)) throw unsafe(`archive entry "${path}" appears twice`, { path });
    this.#seen.add(path);
    const target = join(this.#dest, path);
    if (type === '5') {
      await mkdir(target, { recursive: true, mode: 0o755 });
      return;
    }
    const size = octal(h, 124, 12, 'size');
    if (this.#contentBytes + size > this.#limits.maxBytes) {
      throw tooLarge(`archive entry "${path}" takes the unpacked size over ${this.#limits.maxBytes} bytes`, {
        limit: 'bytes',
        maxBytes: this.#limits.maxBytes,
        path,
        size,
      });
    }
    this.#contentBytes += size;
    const isManifest = path === MANIFEST_PATH;
    if (isManifest && size > MAX_MANIFEST) {
      throw tooLarge(`${MANIFEST_PATH} is ${size} bytes, over ${MAX_MANIFEST}`, { limit: 'manifest', size });
    }
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    const fh = await open(
      target,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    this.#current = {
      path,
      size,
      remaining: size,
      fh,
      hash: createHash('sha256'),
      manifest: isManifest ? [] : undefined,
    };
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) await this.#finish();
  }

  async #data(data: Buffer): Promise<void> {
    const c = this.#current!;
    c.hash.update(data);
    c.manifest?.push(Buffer.from(data));
    await c.fh!.write(data);
    c.remaining -= data.length;
    if (c.remaining === 0) await this.#finish();
  }

  async #finish(): Promise<void> {
    const c = this.#current!;
    this.#current = undefined;
    await c.fh?.close();
    if (c.manifest) this.manifest = Buffer.concat(c.manifest);
    else this.files.push({ path: c.path, size: c.size, sha256: c.hash.digest('hex') });
  }

  /** Close what is open (after an error). */
  async abort(): Promise<void> {
    await this.#current?.fh?.close().catch(() => undefined);
    this.#current = undefined;
  }

  /** Check the archive ended cleanly. */
  finish(): void {
    if (this.#current) {
      throw corrupt(`the archive ends inside "${this.#current.path}": it is truncated`);
    }
    if (!this.ended && this.#zeroBlocks === 0)
      throw corrupt('the archive ends without an end-of-archive block: it is truncated');
    if (this.#pending.some((b) => b !== 0))
      throw corrupt('the archive ends inside a tar header: it is truncated');
  }
}

/**
 * Unpack `archive` (a .tar.gz file) into `dest`, an existing empty folder only this process
 * uses. On an error, what was written stays in `dest` for the caller to remove.
 * @param onProgress called with the decompressed bytes so far.
 * @throws BUNDLE_UNSAFE_ARCHIVE for a link, device, FIFO, extension header, unsafe or repeated path.
 * @throws BUNDLE_TOO_LARGE over `limits` (bytes, entries, ratio: a decompression bomb).
 * @throws BUNDLE_CORRUPT if it is not a complete, well-formed gzipped ustar archive.
 */
export async function unpackArchive(
  archive: string,
  dest: string,
  limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
  onProgress?: (bytes: number) => void,
): Promise<UnpackedArchive> {
  const reader = new TarReader(dest, limits);
  let compressed = 0;
  let out = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      compressed += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(
      createReadStream(archive, { highWaterMark: 16 * 1024 }),
      counter,
      createGunzip({ chunkSize: 16 * 1024 }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          out += chunk.length;
          // tar headers and padding count too: bounded a little above the content limit
          if (out > limits.maxBytes + (limits.maxEntries + 2) * BLOCK * 2) {
            throw tooLarge(`the archive unpacks to more than ${limits.maxBytes} bytes`, {
              limit: 'bytes',
              maxBytes: limits.maxBytes,
            });
          }
          if (out > RATIO_AFTER && out / Math.max(compressed, 1) > limits.maxRatio) {
            throw tooLarge(
              `the archive decompresses more than ${limits.maxRatio} times its size (${out} bytes from ${compressed}): a decompression bomb`,
              { limit: 'ratio', maxRatio: limits.maxRatio, out, compressed },
            );
          }
          await reader.push(chunk);
          onProgress?.(out);
        }
      },
    );
    reader.finish();
  } catch (err) {
    await reader.abort();
    if (err instanceof PortcullisError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ELOOP') {
      // a file where a directory is wanted or the other way round
      throw new PortcullisError(
        'BUNDLE_UNSAFE_ARCHIVE',
        `archive entries overlap (a file and a directory of the same path): ${(err as Error).message}`,
        { cause: err, context: { errno: code } },
      );
    }
    if (
      code.startsWith('Z_') ||
      code === 'ERR_INVALID_ARG_VALUE' ||
      /gzip|zlib|header check|end of file/i.test(code)
    ) {
      throw new PortcullisError(
        'BUNDLE_CORRUPT',
        `the bundle is not a complete gzip stream: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
  return { files: reader.files, manifest: reader.manifest, tarBytes: out };
}
