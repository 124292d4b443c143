/**
 * Is a running Suricata working, or only alive? A Suricata that hangs (stopped,
 * deadlocked, stuck in a rule reload) keeps its NFQUEUE bound, so the kernel keeps
 * queueing the guests' packets to it and nobody gives a verdict: nothing flows, not even
 * for fail-open VMs (their `bypass` only helps when nobody is bound). Two signs, either
 * is enough: its unix command socket does not answer (unless a command such as a
 * blocking rule reload holds it), or packets wait in its queue and none was taken since
 * the last look. The supervisor kills a hung Suricata; from then
 * on the kernel honours fail-open (bypass) and fail-closed (drop) until the restart.
 */

/** One look at a queue in /proc/net/netfilter/nfnetlink_queue. */
export interface QueueSample {
  /** Packets in the queue now, waiting for a verdict (`queue_total`). */
  readonly waiting: number;
  /** Packets ever queued (`id_sequence`), dropped ones included. */
  readonly queued: number;
  /** Packets the kernel dropped because the queue was full (`queue_dropped`). */
  readonly dropped: number;
}

/**
 * The sample of `queue` from the text of /proc/net/netfilter/nfnetlink_queue (one line
 * per bound queue: number, peer port id, total, copy mode, copy range, queue dropped,
 * user dropped, id sequence, 1). Undefined when nobody is bound to it.
 */
export function parseNfQueue(text: string, queue: number): QueueSample | undefined {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || Number(f[0]) !== queue) continue;
    return { waiting: Number(f[2]), queued: Number(f[7]), dropped: Number(f[5]) };
  }
  return undefined;
}

/**
 * Whether the queue's reader took nothing between two samples although packets were
 * waiting at both: packets taken = queued since − dropped since − growth of the queue.
 */
export function queueStalled(before: QueueSample, now: QueueSample): boolean {
  if (before.waiting === 0 || now.waiting === 0) return false;
  const taken = now.queued - before.queued - (now.dropped - before.dropped) - (now.waiting - before.waiting);
  return taken <= 0;
}

export interface SuricataLivenessOptions {
  /** Whether the command socket answers (`SuricataControl.ping`). */
  readonly ping: () => Promise<boolean>;
  /**
   * A command that holds the socket now (`commandsInFlight`: a blocking rule reload),
   * if any: then a silent socket is not a hang, and only the queue is judged.
   */
  readonly busy?: () => string | undefined;
  /** The NFQUEUE Suricata reads; absent for a passive (AF_PACKET) instance. */
  readonly queue?: number;
  /**
   * The text of nfnetlink_queue as `pid` sees it (its network namespace):
   * /proc/<pid>/net/netfilter/nfnetlink_queue. Needed with `queue`.
   */
  readonly readQueues?: (pid: number) => Promise<string>;
}

/** The liveness check of one Suricata, for ChildSupervisor's `liveness.check`. */
export class SuricataLiveness {
  readonly #o: SuricataLivenessOptions;
  #last: { pid: number; sample: QueueSample } | undefined;

  constructor(options: SuricataLivenessOptions) {
    this.#o = options;
  }

  /** Undefined while Suricata works; else why it does not. */
  async check(pid: number): Promise<string | undefined> {
    const stalled = await this.#queueStalled(pid);
    if (stalled) return stalled;
    // a rule reload keeps the socket busy while the packet threads work on: not a hang
    if (this.#o.busy?.() !== undefined) return undefined;
    if (!(await this.#o.ping().catch(() => false))) return 'the command socket does not answer';
    return undefined;
  }

  async #queueStalled(pid: number): Promise<string | undefined> {
    const queue = this.#o.queue;
    const read = this.#o.readQueues;
    if (queue === undefined || !read) return undefined;
    const sample = parseNfQueue(await read(pid).catch(() => ''), queue);
    const last = this.#last?.pid === pid ? this.#last.sample : undefined;
    this.#last = sample ? { pid, sample } : undefined;
    if (!sample || !last || !queueStalled(last, sample)) return undefined;
    return `${sample.waiting} packets wait in NFQUEUE ${queue} and none was taken since the last check`;
  }
}
