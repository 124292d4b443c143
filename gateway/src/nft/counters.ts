import { PortcullisError } from '../errors.js';
import type { NftBackend } from './backend.js';
import { TABLE } from './names.js';

/**
 * The listing `readVmCounters` asks nft for, terse (no set elements). Not `list
 * counters table inet portcullis`: for that nft 1.0.6 fetches every set element of
 * the table, 15-30 s and 380 MB of nft with a million-entry deny list, every sample.
 */
export const VM_COUNTERS_LISTING = 'list ruleset';

/**
 * Cumulative bytes of every per-VM counter (`vmCounter(vm)`, named `vm_…`) of the
 * portcullis table in nft's JSON listing, by counter name. Other counters, and other
 * tables' (the listing is of the whole ruleset), are left out. Pure.
 * @throws NFT_APPLY_FAILED when the listing is no nft JSON document.
 */
export function parseVmCounters(listing: string): Map<string, number> {
  const vms = new Map<string, number>();
  for (const [name, c] of parseCounters(listing)) if (name.startsWith('vm_')) vms.set(name, c.bytes);
  return vms;
}

/** A named counter's values. */
export interface CounterValue {
  readonly packets: number;
  readonly bytes: number;
}

/**
 * Every named counter of the portcullis table in nft's JSON listing (packets and
 * bytes), by name; other tables' are left out. Pure.
 * @throws NFT_APPLY_FAILED when the listing is no nft JSON document.
 */
export function parseCounters(listing: string): Map<string, CounterValue> {
  let doc: { nftables?: unknown };
  try {
    doc = JSON.parse(listing) as { nftables?: unknown };
  } catch (cause) {
    throw new PortcullisError(
      'NFT_APPLY_FAILED',
      `nft's counter listing is not JSON: ${listing.slice(0, 80)}`,
      {
        cause,
      },
    );
  }
  if (!Array.isArray(doc.nftables))
    throw new PortcullisError('NFT_APPLY_FAILED', 'nft\'s counter listing has no "nftables" array');
  const counters = new Map<string, CounterValue>();
  for (const o of doc.nftables as Array<{
    counter?: { family?: unknown; table?: unknown; name?: unknown; packets?: unknown; bytes?: unknown };
  }>) {
    const c = o.counter;
    if (c?.family !== 'inet' || c.table !== TABLE || typeof c.name !== 'string') continue;
    counters.set(c.name, {
      packets: typeof c.packets === 'number' ? c.packets : 0,
      bytes: typeof c.bytes === 'number' ? c.bytes : 0,
    });
  }
  return counters;
}

/** Read every named counter of the table from the kernel (see {@link parseCounters}). */
export async function readCounters(nft: NftBackend): Promise<Map<string, CounterValue>> {
  return parseCounters(await nft.runText(VM_COUNTERS_LISTING, { terse: true }));
}

/** Read the per-VM byte counters from the kernel (see {@link parseVmCounters}). */
export async function readVmCounters(nft: NftBackend): Promise<Map<string, number>> {
  return parseVmCounters(await nft.runText(VM_COUNTERS_LISTING, { terse: true }));
}
