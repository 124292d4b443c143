import { getPriority, setPriority } from 'node:os';
import type { IdleCpu } from '../process/idle-cpu.js';

/**
 * How a big rule reload shares a small appliance with the traffic. Suricata builds the new
 * detection engine (rule parsing, pattern compilation, datasets) in its main thread
 * (`Suricata-Main`, thread id = pid) while its packet threads keep inspecting with the old
 * one; on 2 cores that build competes with them for seconds to minutes. Lowering the
 * main thread's priority for the reload leaves the cores to the packet threads; the
 * packet threads were created at start and keep their own priority (Linux priorities are
 * per thread). A nice value only orders threads of one scheduling group, though: where
 * the machine offers it, the thread also runs in the idle CPU class for a while
 * (process/idle-cpu.ts), which yields to every thread of every other group.
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

export interface LowPriorityOptions {
  /** Nice value for `fn`'s time. Default `RELOAD_NICE`. */
  readonly nice?: number;
  readonly priority?: ThreadPriority;
  /** The idle CPU class (process/idle-cpu.ts) the thread runs in for `fn`'s first `idleForMs`. */
  readonly idle?: IdleCpu;
  /** How long at most the thread stays in the idle class. Default `RELOAD_IDLE_MS`. */
  readonly idleForMs?: number;
  /** Told when the thread could not be lowered: its nice value (`nice`) or its CPU class (`idle`). */
  readonly onUnchanged?: (err: unknown, what: 'nice' | 'idle') => void;
}

/**
 * How long a reload may run in the idle CPU class, ms: long enough for a 40,000-rule
 * engine built beside a download that keeps both cores busy (49 s measured, bench:bundle);
 * bounded, because a thread that only gets idle time makes no progress while a flood keeps
 * the cores busy, and a reload that never ends would be rolled back. After it, the thread
 * goes on at its nice value in its own group.
 */
export const RELOAD_IDLE_MS = 120_000;

/**
 * Run `fn` with thread `tid` at nice `nice`, and for its first `idleForMs` in the idle CPU
 * class when `idle` is given; then put both back. A thread that is gone (Suricata
 * restarted) or cannot be lowered is left alone: `fn` runs anyway, and `onUnchanged` hears
 * why (EPERM: Suricata runs as another user and the service lacks CAP_SYS_NICE, which its
 * unit grants, so the reload competes with the packet threads at their priority).
 * @param tid the thread (Suricata's pid for its main thread); undefined: just run `fn`.
 */
export async function atLowPriority<T>(
  tid: number | undefined,
  fn: () => Promise<T>,
  options: LowPriorityOptions = {},
): Promise<T> {
  const p = options.priority ?? osPriority;
  let before: number | undefined;
  let restore: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const leaveIdle = async (): Promise<void> => {
    const r = restore;
    restore = undefined;
    if (r) await r().catch((err: unknown) => options.onUnchanged?.(err, 'idle'));
  };
  if (tid !== undefined) {
    try {
      before = p.get(tid);
      p.set(tid, options.nice ?? RELOAD_NICE);
    } catch (err) {
      before = undefined;
      options.onUnchanged?.(err, 'nice');
    }
    if (options.idle) {
      try {
        restore = await options.idle.enter(tid);
        timer = setTimeout(() => void leaveIdle(), options.idleForMs ?? RELOAD_IDLE_MS);
        timer.unref();
      } catch (err) {
        options.onUnchanged?.(err, 'idle');
      }
    }
  }
  try {
    return await fn();
  } finally {
    clearTimeout(timer);
    await leaveIdle();
    if (tid !== undefined && before !== undefined) {
      try {
        p.set(tid, before);
      } catch {
        // the thread is gone: a new Suricata starts at its own priority
      }
    }
  }
}

/** How a reload of one Suricata would build its engine now (`reloadPriority`). */
export interface ReloadPriority {
  /** Its main thread can be reniced to `RELOAD_NICE` for the reload. */
  readonly nice: boolean;
  /** The machine offers the idle CPU class (process/idle-cpu.ts). */
  readonly idleClass: boolean;
  /** Why the thread cannot be reniced (`reniceFailure`), when it cannot. */
  readonly reason?: string;
}

/**
 * Whether this process may lower thread `tid` for a reload, asked of the kernel without
 * changing anything: it sets the thread's nice value to the one it has, which the kernel
 * allows only to whoever may renice the thread at all (its own user, or CAP_SYS_NICE).
 * So an admin sees before any update whether reloads will yield to inspection.
 */
export function reloadPriority(
  tid: number,
  options: { readonly priority?: ThreadPriority; readonly idle?: IdleCpu } = {},
): ReloadPriority {
  const p = options.priority ?? osPriority;
  const idleClass = options.idle !== undefined;
  try {
    p.set(tid, p.get(tid));
    return { nice: true, idleClass };
  } catch (err) {
    return { nice: false, idleClass, reason: reniceFailure(err) };
  }
}

/**
 * What to tell when Suricata's main thread could not be lowered for a reload
 * (`atLowPriority`'s `onUnchanged`), by the error and what failed. Pure.
 */
export function reniceFailure(err: unknown, how: 'nice' | 'idle' = 'nice'): string {
  if (how === 'idle')
    return (
      "Suricata's main thread builds the new engine outside the idle CPU class: " +
      (err instanceof Error ? err.message : String(err))
    );
  const code = (err as { info?: { code?: string }; code?: string } | undefined)?.info?.code;
  const what = "Suricata's main thread kept its priority for the rule reload";
  if (code === 'EPERM' || code === 'EACCES')
    return (
      `${what}: not permitted (${code}). Suricata runs as its own user (processes.runner: systemd) and ` +
      'the service lacks CAP_SYS_NICE (appliance/systemd/portcullis.service grants it), so the new ' +
      'engine is built at the priority of the packet threads'
    );
  if (code === 'ESRCH') return `${what}: the thread is gone (Suricata restarted)`;
  return `${what}: ${err instanceof Error ? err.message : String(err)}`;
}
