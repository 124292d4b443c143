import { describe, expect, it } from 'vitest';
import { atLowPriority, countRules, RELOAD_NICE, ruleLoadTimeoutMs, type ThreadPriority } from './reload.js';

/** A fake of the kernel's per-thread nice values. */
function threads(
  initial: Record<number, number>,
): ThreadPriority & { log: string[]; nice: Map<number, number> } {
  const nice = new Map(Object.entries(initial).map(([k, v]) => [Number(k), v]));
  const log: string[] = [];
  return {
    nice,
    log,
    get(tid) {
      const v = nice.get(tid);
      if (v === undefined) throw new Error('ESRCH');
      return v;
    },
    set(tid, n) {
      if (!nice.has(tid)) throw new Error('ESRCH');
      log.push(`${tid}=${n}`);
      nice.set(tid, n);
    },
  };
}

describe('atLowPriority: a reload runs with Suricata main thread reniced', () => {
  it('renices the thread for the reload and puts its priority back after', async () => {
    const t = threads({ 100: 0 });
    let during: number | undefined;
    const r = await atLowPriority(
      100,
      async () => {
        during = t.nice.get(100);
        return 'done';
      },
      { priority: t },
    );
    expect(r).toBe('done');
    expect(during).toBe(RELOAD_NICE);
    expect(t.nice.get(100)).toBe(0);
  });

  it('puts the priority back when the reload fails, and the error goes through', async () => {
    const t = threads({ 100: -2 });
    await expect(
      atLowPriority(100, () => Promise.reject(new Error('reload timed out')), { priority: t, nice: 10 }),
    ).rejects.toThrow('reload timed out');
    expect(t.log).toEqual(['100=10', '100=-2']);
  });

  it('runs the reload anyway when the thread is gone (Suricata restarted)', async () => {
    const t = threads({});
    await expect(atLowPriority(4242, () => Promise.resolve(1), { priority: t })).resolves.toBe(1);
    expect(t.log).toEqual([]);
  });

  it('without a thread, only runs the reload', async () => {
    const t = threads({ 1: 0 });
    await atLowPriority(undefined, () => Promise.resolve(), { priority: t });
    expect(t.log).toEqual([]);
  });
});

describe('rule load timeouts scale with the ruleset', () => {
  it('gives 5 minutes plus 15 ms a rule', () => {
    expect(ruleLoadTimeoutMs(0)).toBe(300_000);
    expect(ruleLoadTimeoutMs(40_000)).toBe(900_000);
    expect(ruleLoadTimeoutMs(-5)).toBe(300_000);
  });

  it('counts rules, not comments or blank lines', () => {
    expect(
      countRules(
        '# header\n\nalert tcp any any -> any any (sid:1;)\n  # off\ndrop ip any any -> any any (sid:2;)\n',
      ),
    ).toBe(2);
    expect(countRules('')).toBe(0);
  });
});
