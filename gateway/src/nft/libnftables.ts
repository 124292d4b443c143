import koffi, { type LibraryHandle } from 'koffi';
import { PortcullisError } from '../errors.js';
import { toNftJson, type NftBackend, type RunOptions } from './backend.js';
import type { NftCommand } from './types.js';
import { Serial } from '../util/serial.js';

/** Output flags of libnftables (nftables/libnftables.h). */
const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
const NFT_CTX_OUTPUT_JSON = 1 << 4;
const NFT_CTX_OUTPUT_TERSE = 1 << 11;

const LIBRARY = 'libnftables.so.1';

interface Bindings {
  ctxNew: (flags: number) => unknown;
  ctxFree: (ctx: unknown) => void;
  setOutputFlags: (ctx: unknown, flags: number) => void;
  bufferOutput: (ctx: unknown) => number;
  bufferError: (ctx: unknown) => number;
  getOutput: (ctx: unknown) => string | null;
  getError: (ctx: unknown) => string | null;
  setDryRun: (ctx: unknown, dry: boolean) => void;
  runCmd: ReturnType<LibraryHandle['func']>;
}

let bindings: Bindings | undefined;

function bind(): Bindings {
  if (bindings) return bindings;
  let lib: LibraryHandle;
  try {
    lib = koffi.load(LIBRARY);
  } catch (cause) {
    throw new PortcullisError(
      'NFT_UNAVAILABLE',
      `cannot load ${LIBRARY}; install Debian's libnftables1 package (apt-get install libnftables1)`,
      { cause },
    );
  }
  koffi.opaque('nft_ctx');
  bindings = {
    ctxNew: lib.func('nft_ctx *nft_ctx_new(uint32_t flags)'),
    ctxFree: lib.func('void nft_ctx_free(nft_ctx *ctx)'),
    setOutputFlags: lib.func('void nft_ctx_output_set_flags(nft_ctx *ctx, unsigned int flags)'),
    bufferOutput: lib.func('int nft_ctx_buffer_output(nft_ctx *ctx)'),
    bufferError: lib.func('int nft_ctx_buffer_error(nft_ctx *ctx)'),
    getOutput: lib.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)'),
    getError: lib.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)'),
    setDryRun: lib.func('void nft_ctx_set_dry_run(nft_ctx *ctx, bool dry)'),
    runCmd: lib.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)'),
  };
  return bindings;
}

/**
 * The in-process binding to libnftables' JSON API. Commands run on a libuv worker
 * thread (koffi async calls), so a large transaction does not stall the event loop;
 * calls are serialised because one nft context is not thread-safe.
 */
export class LibNftables implements NftBackend {
  readonly kind = 'libnftables' as const;
  readonly #b: Bindings;
  #ctx: unknown;
  readonly #queue = new Serial();

  constructor() {
    this.#b = bind();
    this.#ctx = this.#b.ctxNew(0);
    if (!this.#ctx) throw new PortcullisError('NFT_UNAVAILABLE', 'nft_ctx_new failed');
    this.#b.setOutputFlags(this.#ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
    this.#b.bufferOutput(this.#ctx);
    this.#b.bufferError(this.#ctx);
  }

  /** Whether libnftables can be loaded on this machine. */
  static available(): boolean {
    try {
      bind();
      return true;
    } catch {
      return false;
    }
  }

  run(commands: readonly NftCommand[], options?: RunOptions): Promise<string> {
    return this.#exec(toNftJson(commands), options);
  }

  runText(text: string, options?: RunOptions): Promise<string> {
    // Text input is parsed by the bison parser only when it is not JSON, which
    // libnftables decides by trying JSON first; a plain nft script is never valid JSON.
    return this.#exec(text, options);
  }

  #exec(buffer: string, options: RunOptions = {}): Promise<string> {
    return this.#queue.run(() => this.#call(buffer, options.dryRun ?? false, options.terse ?? false));
  }

  #call(buffer: string, dryRun: boolean, terse: boolean): Promise<string> {
    const ctx = this.#ctx;
    if (!ctx) return Promise.reject(new PortcullisError('NFT_UNAVAILABLE', 'nft context is closed'));
    this.#b.setDryRun(ctx, dryRun);
    this.#b.setOutputFlags(
      ctx,
      NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE | (terse ? NFT_CTX_OUTPUT_TERSE : 0),
    );
    return new Promise((resolve, reject) => {
      this.#b.runCmd.async(ctx, buffer, (err: unknown, rc: number) => {
        const out = this.#b.getOutput(ctx) ?? '';
        const errText = (this.#b.getError(ctx) ?? '').trim();
        if (err)
          return reject(new PortcullisError('NFT_APPLY_FAILED', `libnftables call failed: ${String(err)}`));
        if (rc !== 0) {
          return reject(
            new PortcullisError(
              'NFT_APPLY_FAILED',
              `nftables rejected the transaction: ${errText || `error ${rc}`}`,
              {
                context: { nft: errText },
              },
            ),
          );
        }
        resolve(out);
      });
    });
  }

  close(): void {
    if (this.#ctx) this.#b.ctxFree(this.#ctx);
    this.#ctx = undefined;
  }
}
