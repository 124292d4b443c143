import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isPortcullisError } from '../errors.js';
import {
  ChildSupervisor,
  replaceStaleProcess,
  type ChildState,
  type ChildSupervisorOptions,
  type PidTable,
} from './supervisor.js';
import { FakeChild, FakeSpawner } from './test-fakes.js';

function makeSupervisor(overrides: Partial<ChildSupervisorOptions> = {}): {
  supervisor: ChildSupervisor;
  spawner: FakeSpawner;
  states: ChildState[];
} {
  const spawner = new FakeSpawner();
  const states: ChildState[] = [];
  const supervisor = new ChildSupervisor({
    name: 'worker',
    command: '/usr/bin/worker',
    args: () => ['--foreground'],
    spawner,
    onStatus: (s) => states.push(s),
    ...overrides,
  });
  return { supervisor, spawner, states };
}

describe('ChildSupervisor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('goes stopped → starting → running, and publishes every change as a frozen snapshot', async () => {
    const { supervisor, spawner, states } = makeSupervisor({ probeIntervalMs: 300 });
    expect(supervisor.status()).toMatchObject({ status: 'stopped', failures: 0 });
    await supervisor.start();
    expect(spawner.calls).toEqual([{ command: '/usr/bin/worker', args: ['--foreground'] }]);
    expect(supervisor.status()).toMatchObject({ status: 'starting', pid: 100 });
    // without a probe: running once still alive at the first probe
    await vi.advanceTimersByTimeAsync(299);
    expect(supervisor.status().status).toBe('starting');
    await vi.advanceTimersByTimeAsync(1);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 100, reason: 'started' });
    await supervisor.stop();
    expect(states.map((s) => s.status)).toEqual(['starting', 'starting', 'running', 'stopped']);
    expect(states.every((s) => Object.isFrozen(s))).toBe(true);
    expect(states.at(-1)).toEqual(supervisor.status());
  });

  it('kills a child that is alive but hung (failed liveness checks in a row) and restarts it', async () => {
    let answers = true;
    const checked: number[] = [];
    const { supervisor, spawner, states } = makeSupervisor({
      probeIntervalMs: 100,
      backoff: { initialMs: 1000 },
      liveness: {
        intervalMs: 1000,
        failures: 3,
        check: async (pid) => {
          checked.push(pid);
          return answers ? undefined : 'the command socket does not answer';
        },
      },
    });
    await supervisor.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 100 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(checked).toEqual([100, 100, 100, 100, 100]);
    // one failed check, then it answers again: no restart (the control)
    answers = false;
    await vi.advanceTimersByTimeAsync(1000);
    answers = true;
    await vi.advanceTimersByTimeAsync(3000);
    expect(spawner.last.signals).toEqual([]);
    // three in a row: SIGKILL (a stopped process acts on nothing else), then a restart
    answers = false;
    await vi.advanceTimersByTimeAsync(3000);
    expect(spawner.children[0]!.signals).toEqual(['SIGKILL']);
    expect(supervisor.status()).toMatchObject({
      status: 'backoff',
      failures: 1,
      reason: expect.stringMatching(
        /^worker is hung \(the command socket does not answer; 3 checks in a row/,
      ),
    });
    answers = true;
    await vi.advanceTimersByTimeAsync(1000 + 100);
    expect(spawner.children).toHaveLength(2);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 101 });
    await supervisor.stop();
    expect(states.map((s) => s.status)).toEqual([
      'starting',
      'starting',
      'running',
      'backoff',
      'starting',
      'starting',
      'running',
      'stopped',
    ]);
  });

  it('counts a liveness check that does not finish in time as failed', async () => {
    const { supervisor, spawner } = makeSupervisor({
      probeIntervalMs: 100,
      liveness: { intervalMs: 500, failures: 2, check: () => new Promise(() => undefined) },
    });
    await supervisor.start();
    await vi.advanceTimersByTimeAsync(100 + 4 * 500);
    expect(spawner.children[0]!.signals).toEqual(['SIGKILL']);
    expect(supervisor.status().reason).toMatch(/the check did not finish within 500 ms/);
    await supervisor.stop();
  });

  it('restarts a crashed child with capped exponential backoff', async () => {
    const { supervisor, spawner } = makeSupervisor({ backoff: { initialMs: 500, maxMs: 3000 } });
    await supervisor.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      spawner.last.exit(1);
      await vi.advanceTimersByTimeAsync(0);
      const state = supervisor.status();
      expect(state).toMatchObject({
        status: 'backoff',
        failures: i + 1,
        reason: 'worker exited with code 1',
      });
      delays.push(state.retryInMs!);
      await vi.advanceTimersByTimeAsync(state.retryInMs! - 1);
      expect(spawner.children).toHaveLength(i + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(spawner.children).toHaveLength(i + 2);
    }
    expect(delays).toEqual([500, 1000, 2000, 3000, 3000, 3000]);
    await supervisor.stop();
  });

  it('explains a crash with the last error line of the output', async () => {
    const { supervisor, spawner } = makeSupervisor();
    await supervisor.start();
    spawner.last.stderr.write('listening\ndnsmasq: failed to bind DHCP server socket: Address in use\nbye\n');
    await vi.advanceTimersByTimeAsync(0);
    spawner.last.exit(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.status().reason).toBe(
      'worker exited with code 2 (last output: dnsmasq: failed to bind DHCP server socket: Address in use)',
    );
    await supervisor.stop();
  });

  it('stops with SIGTERM, then SIGKILL after the stop timeout', async () => {
    const { supervisor, spawner } = makeSupervisor({ stopTimeoutMs: 4000 });
    spawner.next = () => new FakeChild(7, ['SIGKILL']);
    await supervisor.start();
    let stopped = false;
    const stopping = supervisor.stop().then(() => (stopped = true));
    expect(supervisor.shuttingDown).toBe(true);
    await vi.advanceTimersByTimeAsync(3999);
    expect(spawner.last.signals).toEqual(['SIGTERM']);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopping;
    expect(spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(supervisor.status()).toMatchObject({ status: 'stopped', reason: 'stopped' });
  });

  it('gives children stopped with one deadline one budget, however they are awaited', async () => {
    const a = makeSupervisor({ stopTimeoutMs: 15_000 });
    const b = makeSupervisor({ stopTimeoutMs: 15_000 });
    for (const h of [a, b]) h.spawner.next = () => new FakeChild(9, ['SIGKILL']);
    await a.supervisor.start();
    await b.supervisor.start();
    const t0 = Date.now();
    const deadline = { deadline: t0 + 8000 };
    // one after the other: b's grace is what a left of the budget
    const stopping = a.supervisor.stop(deadline).then(() => b.supervisor.stop(deadline));
    await vi.advanceTimersByTimeAsync(7999);
    expect(a.spawner.last.signals).toEqual(['SIGTERM']);
    await vi.advanceTimersByTimeAsync(1);
    // nothing left of the budget for b: SIGKILL at once
    await vi.advanceTimersByTimeAsync(0);
    await stopping;
    expect(Date.now() - t0).toBe(8000);
    expect(a.spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(b.spawner.last.signals).toEqual(['SIGKILL']);
    // control: without the deadline the stop timeout alone applies
    const c = makeSupervisor({ stopTimeoutMs: 15_000 });
    c.spawner.next = () => new FakeChild(10, ['SIGKILL']);
    await c.supervisor.start();
    const t1 = Date.now();
    const stoppingC = c.supervisor.stop();
    await vi.advanceTimersByTimeAsync(15_000);
    await stoppingC;
    expect(Date.now() - t1).toBe(15_000);
  });

  it('does not restart a child that exits while shutting down, and start() clears the flag', async () => {
    const { supervisor, spawner } = makeSupervisor();
    await supervisor.start();
    await supervisor.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(spawner.children).toHaveLength(1);
    expect(supervisor.status().status).toBe('stopped');
    await supervisor.start();
    expect(supervisor.shuttingDown).toBe(false);
    expect(spawner.children).toHaveLength(2);
    await supervisor.stop();
  });

  it('cancels a scheduled restart on stop', async () => {
    const { supervisor, spawner } = makeSupervisor();
    await supervisor.start();
    spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.status().status).toBe('backoff');
    await supervisor.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(spawner.children).toHaveLength(1);
  });

  it('signals the current child, and says when there is none', async () => {
    const { supervisor, spawner } = makeSupervisor();
    expect(supervisor.signal('SIGHUP')).toBe(false);
    await supervisor.start();
    expect(supervisor.signal('SIGHUP')).toBe(true);
    expect(spawner.last.signals).toEqual(['SIGHUP']);
    spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.signal('SIGHUP')).toBe(false);
    await supervisor.stop();
  });

  it('gives up after maxFailures and rejects waiters with its error code', async () => {
    const { supervisor, spawner } = makeSupervisor({ maxFailures: 2, errorCode: 'SPAWN_FAILED' });
    await supervisor.start();
    const waiting = supervisor.waitUntilRunning(60_000).catch((err: unknown) => err);
    spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(1000);
    spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.status()).toMatchObject({ status: 'failed', failures: 2 });
    const err = await waiting;
    expect(isPortcullisError(err, 'SPAWN_FAILED')).toBe(true);
    expect((err as Error).message).toBe('worker failed 2 times in a row: worker exited with code 1');
  });

  it('counts a failing prepare step as a failed run', async () => {
    const { supervisor, spawner } = makeSupervisor({
      prepare: async () => {
        throw new Error('disk full');
      },
    });
    await supervisor.start();
    expect(spawner.children).toHaveLength(0);
    expect(supervisor.status()).toMatchObject({
      status: 'backoff',
      reason: 'cannot start worker: disk full',
    });
    await supervisor.stop();
  });
});

/** An in-memory pid table. */
function pidTable(o: {
  files?: Record<string, number>;
  live?: number[];
  stubborn?: number[];
  immortal?: number[];
}): PidTable & {
  signals: Array<[number, NodeJS.Signals]>;
  files: Map<string, number>;
} {
  const files = new Map(Object.entries(o.files ?? {}));
  const live = new Set(o.live ?? []);
  const signals: Array<[number, NodeJS.Signals]> = [];
  return {
    signals,
    files,
    readPidFile: async (path) => files.get(path),
    removeFile: async (path) => void files.delete(path),
    alive: async (pid) => live.has(pid),
    signal: (pid, signal) => {
      signals.push([pid, signal]);
      if (!live.has(pid)) return false;
      if (o.immortal?.includes(pid)) return true;
      if (signal === 'SIGKILL' || !o.stubborn?.includes(pid)) live.delete(pid);
      return true;
    },
  };
}

describe('replaceStaleProcess', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const base = { pidFile: '/run/x.pid', name: 'worker', stopTimeoutMs: 1000 };

  it('stops a live process of ours named in the pid file and removes the file', async () => {
    const processes = pidTable({ files: { '/run/x.pid': 42 }, live: [42] });
    await replaceStaleProcess({ ...base, processes, isOurs: async () => true });
    expect(processes.signals).toEqual([[42, 'SIGTERM']]);
    expect(processes.files.size).toBe(0);
  });

  it('leaves a process that is not ours alone, and still removes the stale file', async () => {
    const processes = pidTable({ files: { '/run/x.pid': 42 }, live: [42] });
    await replaceStaleProcess({ ...base, processes, isOurs: async () => false });
    expect(processes.signals).toEqual([]);
    expect(processes.files.size).toBe(0);
  });

  it('sends SIGKILL to one that ignores SIGTERM', async () => {
    const processes = pidTable({ files: { '/run/x.pid': 42 }, live: [42], stubborn: [42] });
    const replacing = replaceStaleProcess({ ...base, processes, isOurs: async () => true });
    await vi.advanceTimersByTimeAsync(1100);
    await replacing;
    expect(processes.signals).toEqual([
      [42, 'SIGTERM'],
      [42, 'SIGKILL'],
    ]);
  });

  it('says to stop it by hand when it survives SIGKILL', async () => {
    const processes = pidTable({ files: { '/run/x.pid': 42 }, live: [42], immortal: [42] });
    const replacing = replaceStaleProcess({ ...base, processes, isOurs: async () => true }).catch(
      (err: unknown) => err,
    );
    await vi.advanceTimersByTimeAsync(7000);
    const err = await replacing;
    expect(isPortcullisError(err, 'SPAWN_FAILED')).toBe(true);
    expect((err as Error).message).toBe(
      'the worker from a previous run (pid 42, /run/x.pid) does not exit; stop it by hand',
    );
  });
});
