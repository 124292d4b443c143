import { readFile } from 'node:fs/promises';
import { PortcullisError } from '../errors.js';
import type { RulesetStats } from '../suricata/control.js';

/**
 * The health check after a bundle switch: the rules Suricata reports as loaded and failed,
 * whether Suricata stays the same live process for the whole window, and whether packets
 * still flow through its queue (the kernel's view, /proc/net/netfilter/nfnetlink_queue).
 * The decisions are pure ({@link judgeHealth}); the sampling is behind {@link HealthProbe}.
 */

/** One line of /proc/net/netfilter/nfnetlink_queue. */
export interface QueueStats {
  readonly queue: number;
  /** Netlink port of the listener (Suricata); 0 or the line missing: nobody listens. */
  readonly portId: number;
  /** Packets waiting for a verdict. */
  readonly waiting: number;
  /** Dropped because the queue was full. */
  readonly queueDropped: number;
  /** Dropped because the listener's socket buffer was full. */
  readonly userDropped: number;
  /** Packet id sequence: how many packets entered the queue so far. */
  readonly sequence: number;
}

/** Parse /proc/net/netfilter/nfnetlink_queue. Pure. */
export function parseQueueStats(text: string): QueueStats[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length >= 8 && f.every(Number.isFinite))
    .map((f) => ({
      queue: f[0]!,
      portId: f[1]!,
      waiting: f[2]!,
      queueDropped: f[5]!,
      userDropped: f[6]!,
      sequence: f[7]!,
    }));
}

/** Read the kernel's queue stats of one queue; undefined when nobody is bound to it. */
export async function readQueueStats(
  queue: number,
  file = '/proc/net/netfilter/nfnetlink_queue',
): Promise<QueueStats | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return parseQueueStats(text).find((q) => q.queue === queue);
}

/** One sample of the health window. */
export interface HealthSample {
  /** Suricata's pid per its supervisor; undefined when it is not running. */
  readonly pid: number | undefined;
  /** Whether the command socket answered. */
  readonly answers: boolean;
  readonly queue: QueueStats | undefined;
}

/** What the check looks at. */
export interface HealthProbe {
  /** Ruleset stats after the reload (tenant 0 first). */
  rulesetStats(): Promise<readonly RulesetStats[]>;
  sample(): Promise<HealthSample>;
}

/** Bounds of the check. */
export interface HealthLimits {
  /** Rules the enforced file has (in force, not commented): Suricata must report at least these loaded. */
  readonly expectedRules: number;
  /** Packets that may be waiting in the queue at the end of the window. Default 512. */
  readonly maxWaiting?: number;
  /** Packets the kernel may drop from the queue during the window. Default 0. */
  readonly maxDropped?: number;
}

/**
 * Judge a health window. Pure.
 * @returns undefined when healthy, else why not (one sentence).
 */
export function judgeHealth(
  stats: readonly RulesetStats[],
  samples: readonly HealthSample[],
  limits: HealthLimits,
): string | undefined {
  const s = stats[0];
  if (!s) return 'Suricata reported no ruleset after the reload';
  if (s.rules_failed > 0) return `Suricata failed to load ${s.rules_failed} rule(s) of the new bundle`;
  if (s.rules_loaded < limits.expectedRules)
    return `Suricata loaded ${s.rules_loaded} rules, fewer than the ${limits.expectedRules} the bundle enforces`;
  const first = samples[0];
  if (!first) return 'no health sample was taken';
  for (const x of samples) {
    if (x.pid === undefined || !x.answers) return 'Suricata stopped answering after the switch';
    if (x.pid !== first.pid) return `Suricata restarted after the switch (pid ${first.pid} → ${x.pid})`;
    if (!x.queue || x.queue.portId === 0) return `nobody reads the IPS queue any more`;
  }
  const last = samples.at(-1)!;
  const dropped =
    last.queue!.queueDropped +
    last.queue!.userDropped -
    (first.queue!.queueDropped + first.queue!.userDropped);
  if (dropped > (limits.maxDropped ?? 0))
    return `the kernel dropped ${dropped} queued packets during the health check`;
  if (last.queue!.waiting > (limits.maxWaiting ?? 512) && last.queue!.waiting >= first.queue!.waiting)
    return `${last.queue!.waiting} packets wait in the IPS queue: Suricata does not give verdicts`;
  return undefined;
}

/**
 * Run the check: stats, then samples every `intervalMs` for `windowMs`.
 * @throws BUNDLE_UNHEALTHY with the reason.
 */
export async function checkHealth(
  probe: HealthProbe,
  limits: HealthLimits,
  window: { readonly windowMs: number; readonly intervalMs?: number },
): Promise<void> {
  let stats: readonly RulesetStats[];
  try {
    stats = await probe.rulesetStats();
  } catch (err) {
    throw new PortcullisError(
      'BUNDLE_UNHEALTHY',
      `Suricata did not report its ruleset after the reload: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const samples: HealthSample[] = [];
  const until = Date.now() + window.windowMs;
  const step = window.intervalMs ?? 250;
  for (;;) {
    const x = await probe.sample();
    samples.push(x);
    // a dead Suricata will not come back within the window: stop early
    if (x.pid === undefined || !x.answers) break;
    if (Date.now() >= until) break;
    await new Promise((r) => setTimeout(r, step));
  }
  const why = judgeHealth(stats, samples, limits);
  if (why)
    throw new PortcullisError('BUNDLE_UNHEALTHY', `health check after the switch failed: ${why}`, {
      context: { stats, samples: samples.length },
    });
}
