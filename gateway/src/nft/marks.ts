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
} as const;
