import { getPriority, setPriority } from 'node:os';

/**
 * How a big rule reload shares a small appliance with the traffic. Suricata builds the new
 * detection engine (rule parsing, pattern compilation, datasets) in its main thread
 * (`Suricata-Main`, thread id = pid) while its packet threads keep inspecting with the old
 * one; on 2 cores that build competes with them for seconds to minutes. Lowering the
 * main thread's priority for the reload leaves the cores to the packet threads; the
 * packet threads were created at start and keep their own priority (Linux priorities are
 * per thread).
 */

/** Nice value of Suricata's main thread while it reloads (19: only idle time, mostly). */
export const RELOAD_NICE = 19;

/**
 * How long loading `rules` rules may take (a blocking `reload-rules`, or `suricata -T`),
 * ms: 5 minutes plus 15 ms a rule, so a 40,000-rule bundle gets 15 minutes on a loaded
 * 2-core appliance (measured: README, bench:bundle). Pure.
 * @param rules rules in force (not commented), ≥ 0.
 */
export function ruleLoadTimeoutMs(rules: number): number {
  return 300_000 + 15 * Math.max(0, Math.round(rules));
}

/** Rules (lines that are neither blank nor comments) in a rules file's text. Pure. */
export function countRules(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const s = line.trimStart();
    if (s !== '' && !s.startsWith('#')) n++;
  }
  return n;
}

/** Read and set one thread's nice value (node:os by default). */
export interface ThreadPriority {
  get(tid: number): number;
  set(tid: number, nice: number): void;
}

const osPriority: ThreadPriority = { get: getPriority, set: setPriority };

/**
 * Run `fn` with thread `tid` at nice `nice`, then put its priority back. A thread that
 * is gone (Suricata restarted) or cannot be reniced is left alone: `fn` runs anyway.
 * @param tid the thread (Suricata's pid for its main thread); undefined: just run `fn`.
 */
export async function atLowPriority<T>(
  tid: number | undefined,
  fn: () => Promise<T>,
  options: { readonly nice?: number; readonly priority?: ThreadPriority } = {},
): Promise<T> {
  const p = options.priority ?? osPriority;
  let before: number | undefined;
  if (tid !== undefined) {
    try {
      before = p.get(tid);
      p.set(tid, options.nice ?? RELOAD_NICE);
    } catch {
      before = undefined;
    }
  }
  try {
    return await fn();
  } finally {
    if (tid !== undefined && before !== undefined) {
      try {
        p.set(tid, before);
      } catch {
        // the thread is gone: a new Suricata starts at its own priority
      }
    }
  }
}
