/** A lease of the unknown-device pool, as dnsmasq's lease file has it. */
export interface PoolLease {
  readonly mac: string;
  readonly ipv4: string;
  /** When the lease ends, ISO 8601 (UTC). */
  readonly expires: string;
}

/**
 * The leases of the unknown-device pool to give back so that one address stays free
 * for the next new device: none while an address is free, else the oldest. Every lease
 * of the pool has the same length, so the one that ends first is the one granted (or
 * renewed) longest ago. Pure.
 *
 * @param leases the pool's current leases (unknown devices only)
 * @param poolSize how many addresses the pool has (≥ 1)
 */
export function leasesToReclaim<L extends PoolLease>(leases: readonly L[], poolSize: number): L[] {
  const over = leases.length - (poolSize - 1);
  if (over <= 0) return [];
  return [...leases]
    .sort((a, b) => (a.expires < b.expires ? -1 : a.expires > b.expires ? 1 : a.ipv4 < b.ipv4 ? -1 : 1))
    .slice(0, over);
}
