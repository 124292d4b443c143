import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortcullisError } from '../errors.js';
import { nftJsonPieces, type NftBackend, type RunOptions } from './backend.js';
import type { NftCommand } from './types.js';

/**
 * The fallback backend: the `nft` binary, fed a private temporary file
 * (`nft -j -f FILE`; stdin is not always openable as /dev/stdin). Same transaction
 * semantics as the library: one file is one transaction. A batch is written to the
 * file a piece at a time, so a million-element transaction never exists as one string.
 */
export class NftCli implements NftBackend {
  readonly kind = 'nft-cli' as const;

  constructor(private readonly binary = 'nft') {}

  run(commands: readonly NftCommand[], options?: RunOptions): Promise<string> {
    return this.#exec(nftJsonPieces(commands), options);
  }

  runText(text: string, options?: RunOptions): Promise<string> {
    return this.#exec([text], options);
  }

  async #exec(input: Iterable<string>, options: RunOptions = {}): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-nft-'));
    const file = join(dir, 'batch');
    try {
      writePieces(file, input);
      return await this.#spawn([
        '-j',
        ...(options.dryRun ? ['-c'] : []),
        ...(options.terse ? ['-t'] : []),
        '-f',
        file,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  #spawn(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.binary, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TZ: 'UTC' },
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (cause) =>
        reject(
          new PortcullisError('NFT_UNAVAILABLE', `cannot run ${this.binary}: install the nftables package`, {
            cause,
          }),
        ),
      );
      child.on('close', (code) => {
        const errText = Buffer.concat(err).toString().trim();
        if (code !== 0) {
          reject(
            new PortcullisError(
              'NFT_APPLY_FAILED',
              `nftables rejected the transaction: ${errText || `exit ${code}`}`,
              { context: { nft: errText } },
            ),
          );
        } else resolve(Buffer.concat(out).toString());
      });
    });
  }

  close(): void {}
}

/** Pieces written per write(2), about. */
const WRITE_BYTES = 256 * 1024;

/** Write text pieces to a new private file, a few hundred kilobytes at a time. */
function writePieces(file: string, pieces: Iterable<string>): void {
  const fd = openSync(file, 'wx', 0o600);
  const write = (text: string): void => {
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at);
  };
  try {
    let pending = '';
    for (const piece of pieces) {
      pending += piece;
      if (pending.length >= WRITE_BYTES) {
        write(pending);
        pending = '';
      }
    }
    if (pending.length > 0) write(pending);
  } finally {
    closeSync(fd);
  }
}

/** The in-process library when it loads, else the nft binary. */
export async function openNftBackend(
  prefer: 'auto' | 'libnftables' | 'nft-cli' = 'auto',
): Promise<NftBackend> {
  if (prefer !== 'nft-cli') {
    const { LibNftables } = await import('./libnftables.js');
    if (prefer === 'libnftables' || LibNftables.available()) return new LibNftables();
  }
  return new NftCli();
}
