import type { NftCommand } from './types.js';

/**
 * Runs nftables commands in the current network namespace. Every `run` is one
 * transaction: the kernel applies all of it or none of it.
 */
export interface NftBackend {
  /** `libnftables` (in-process) or `nft-cli` (the nft binary). */
  readonly kind: 'libnftables' | 'nft-cli';
  /**
   * Run a batch of JSON commands as one transaction. Resolves with nft's JSON output
   * (empty string when there is none); rejects with NFT_APPLY_FAILED carrying nft's
   * own error message.
   */
  run(commands: readonly NftCommand[], options?: RunOptions): Promise<string>;
  /** Run commands in nft's text syntax (for listing and debugging). */
  runText(text: string, options?: RunOptions): Promise<string>;
  close(): void;
}

export interface RunOptions {
  /** Check only: parse and evaluate, send nothing to the kernel. Default false. */
  readonly dryRun?: boolean;
  /** Listings without set elements (nft -t). Default false. */
  readonly terse?: boolean;
}

export function toNftJson(commands: readonly NftCommand[]): string {
  return JSON.stringify({ nftables: commands });
}
