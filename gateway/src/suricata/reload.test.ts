import { describe, expect, it } from 'vitest';
import {
  atLowPriority,
  countRules,
  RELOAD_NICE,
  reloadPriority,
  reniceFailure,
  ruleLoadTimeoutMs,
  type ThreadPriority,
} from './reload.js';
import type { IdleCpu } from '../process/idle-cpu.js';

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

  it('says why the thread kept its priority, and runs the reload anyway', async () => {
    const denied = Object.assign(new Error('uv_os_setpriority returned EPERM'), {
      code: 'ERR_SYSTEM_ERROR',
      info: { code: 'EPERM' },
    });
    const heard: unknown[] = [];
    const p: ThreadPriority = {
      get: () => 0,
      set: () => {
        throw denied;
      },
    };
    await expect(
      atLowPriority(100, () => Promise.resolve('reloaded'), {
        priority: p,
        onUnchanged: (e) => heard.push(e),
      }),
    ).resolves.toBe('reloaded');
    expect(heard).toEqual([denied]);
    expect(reniceFailure(denied)).toMatch(/not permitted \(EPERM\).*CAP_SYS_NICE/);
    expect(reniceFailure({ info: { code: 'ESRCH' } })).toMatch(/the thread is gone/);
    expect(reniceFailure(new Error('odd'))).toMatch(/: odd$/);
  });

  it('a renice that works is not reported', async () => {
    const t = threads({ 100: 0 });
    const heard: unknown[] = [];
    await atLowPriority(100, () => Promise.resolve(), { priority: t, onUnchanged: (e) => heard.push(e) });
    expect(heard).toEqual([]);
  });

  it('runs the reload in the idle CPU class for at most idleForMs, then at its nice value', async () => {
    const t = threads({ 100: 0 });
    const events: string[] = [];
    const idle: IdleCpu = {
      enter: async (tid) => {
        events.push(`idle ${tid}`);
        return async () => void events.push(`back ${tid}`);
      },
    };
    await atLowPriority(
      100,
      async () => {
        events.push('reload starts');
        await new Promise((r) => setTimeout(r, 60));
        events.push('reload ends');
      },
      { priority: t, idle, idleForMs: 20 },
    );
    expect(events).toEqual(['idle 100', 'reload starts', 'back 100', 'reload ends']);
    expect(t.log).toEqual(['100=19', '100=0']);
  });

  it('leaves the idle class when the reload ends first, and says when it cannot enter it', async () => {
    const t = threads({ 100: 0 });
    const events: string[] = [];
    const idle: IdleCpu = {
      enter: async () => async () => void events.push('back'),
    };
    await atLowPriority(100, async () => void events.push('reload'), { priority: t, idle });
    expect(events).toEqual(['reload', 'back']);
    const heard: string[] = [];
    const broken: IdleCpu = {
      enter: () => Promise.reject(new Error('cpu.idle: read-only file system')),
    };
    await expect(
      atLowPriority(100, () => Promise.resolve('done'), {
        priority: t,
        idle: broken,
        onUnchanged: (err, how) => heard.push(reniceFailure(err, how)),
      }),
    ).resolves.toBe('done');
    expect(heard).toEqual([
      "Suricata's main thread builds the new engine outside the idle CPU class: cpu.idle: read-only file system",
    ]);
  });

  it('without a thread, only runs the reload', async () => {
    const t = threads({ 1: 0 });
    await atLowPriority(undefined, () => Promise.resolve(), { priority: t });
    expect(t.log).toEqual([]);
  });
});

describe('reloadPriority: whether a reload would yield, asked without changing anything', () => {
  it('sets the nice value the thread has, and says a renice is allowed', () => {
    const t = threads({ 100: 3 });
    expect(reloadPriority(100, { priority: t })).toEqual({ nice: true, idleClass: false });
    expect(t.log).toEqual(['100=3']);
    const idle: IdleCpu = { enter: () => Promise.resolve(() => Promise.resolve()) };
    expect(reloadPriority(100, { priority: t, idle })).toEqual({ nice: true, idleClass: true });
  });

  it('says why when the kernel refuses', () => {
    const p: ThreadPriority = {
      get: () => 0,
      set: () => {
        throw Object.assign(new Error('uv_os_setpriority returned EPERM'), { info: { code: 'EPERM' } });
      },
    };
    const r = reloadPriority(100, { priority: p });
    expect(r.nice).toBe(false);
    expect(r.reason).toMatch(/not permitted \(EPERM\).*CAP_SYS_NICE/);
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
