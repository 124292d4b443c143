/**
 * Packet marks the table sets; the xtables compat layer (`queue.ts`) and Suricata
 * (its `nfq` settings) read them.
 */

/** Suricata's repeat mark (its `nfq.repeat-mark`): the packet was judged already. */
export const NFQ_REPEAT_MARK = 0x08000000;

/** The bits of the packet mark (and, for `bypass`, the conntrack mark) the ruleset sets. */
export const MARK = {
  /** Queue this packet, fail-closed. */
  queueClosed: 0x10,
  /** Queue this packet, fail-open (bypass when Suricata is not listening). */
  queueOpen: 0x20,
  /** Suricata is done with this flow: it leaves the queue (saved in the conntrack mark). */
  bypass: 0x40000000,
  /**
   * The bits that say which port a frame came in on: the guest bridge's table sets the
   * whole mark to `portMark(n)` for the port of the n-th VM with a port (the inet table
   * reads it at `priority raw`, before anything of its own sets a bit).
   */
  port: 0x07ff0000,
} as const;

/** Most VMs with a port (the ids that fit in `MARK.port`). */
export const MAX_PORT_IDS = 0x7ff;

/** The packet mark of the n-th (1-based) port: `n << 16`. */
export function portMark(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PORT_IDS) throw new RangeError(`port id ${n} out of range`);
  return n << 16;
}
