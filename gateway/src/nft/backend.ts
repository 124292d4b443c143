import type { NftCommand, NftObject } from './types.js';

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

/** The JSON text of a batch (`{"nftables": [...]}`). */
export function toNftJson(commands: readonly NftCommand[]): string {
  let out = '';
  for (const piece of nftJsonPieces(commands)) out += piece;
  return out;
}

/**
 * The JSON text of a batch in pieces, one a command, packed elements written out as
 * numbers: a writer can put a million-element transaction into a file a piece at a
 * time instead of building one string of it.
 */
export function* nftJsonPieces(commands: readonly NftCommand[]): Generator<string> {
  yield '{"nftables":[';
  for (let i = 0; i < commands.length; i++) yield (i === 0 ? '' : ',') + commandJson(commands[i]!);
  yield ']}';
}

function commandJson(command: NftCommand): string {
  const [verb, object] = Object.entries(command)[0] as [string, NftObject];
  if (!('element' in object) || !ArrayBuffer.isView(object.element.elem)) return JSON.stringify(command);
  const { elem, ...rest } = object.element;
  const head = JSON.stringify({ ...rest, elem: 0 });
  return `{${JSON.stringify(verb)}:{"element":${head.slice(0, -2)}[${elem.join(',')}]}}}`;
}
