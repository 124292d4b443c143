import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import { FakeChild, FakeSpawner } from '../process/test-fakes.js';
import type { SuricataSetup } from './config.js';
import {
  SuricataSupervisor,
  type ProcessTable,
  type SuricataState,
  type SuricataSupervisorOptions,
} from './supervisor.js';

const setup: SuricataSetup = {
  configFile: '/data/suricata/suricata.yaml',
  logDir: '/data/suricata/log',
  pidFile: '/run/portcullis/suricata.pid',
  commandSocket: '/run/portcullis/suricata-command.sock',
  eveSocket: '/run/portcullis/eve.sock',
  ruleFiles: ['/data/rules/suricata.rules'],
  nfq: { queue: 7 },
};

/** An in-memory process table: pid files and the processes they may name. */
function makeProcesses(
  o: { pidFiles?: Record<string, number>; suricatas?: number[]; others?: number[]; stubborn?: number[] } = {},
): ProcessTable & {
  signals: Array<[number, NodeJS.Signals]>;
  pidFiles: Map<string, number>;
} {
  const pidFiles = new Map(Object.entries(o.pidFiles ?? {}));
  const live = new Set([...(o.suricatas ?? []), ...(o.others ?? [])]);
  const suricatas = new Set(o.suricatas ?? []);
  const stubborn = new Set(o.stubborn ?? []);
  const signals: Array<[number, NodeJS.Signals]> = [];
  return {
    signals,
    pidFiles,
    readPidFile: async (path) => pidFiles.get(path),
    removeFile: async (path) => void pidFiles.delete(path),
    alive: async (pid) => live.has(pid),
    isSuricata: async (pid) => suricatas.has(pid),
    signal: (pid, signal) => {
      signals.push([pid, signal]);
      if (!live.has(pid)) return false;
      if (signal === 'SIGKILL' || !stubborn.has(pid)) live.delete(pid);
      return true;
    },
  };
}

interface Harness {
  readonly supervisor: SuricataSupervisor;
  readonly spawner: FakeSpawner;
  readonly processes: ReturnType<typeof makeProcesses>;
  readonly states: SuricataState[];
  readonly bus: EventBus;
  ready: boolean;
}

function makeSupervisor(
  overrides: Partial<SuricataSupervisorOptions> & { processes?: ReturnType<typeof makeProcesses> } = {},
): Harness {
  const spawner = new FakeSpawner(1000);
  const processes = overrides.processes ?? makeProcesses();
  const states: SuricataState[] = [];
  const bus = new EventBus();
  const h: Harness = {
    spawner,
    processes,
    states,
    bus,
    ready: true,
    supervisor: undefined as unknown as SuricataSupervisor,
  };
  (h as { supervisor: SuricataSupervisor }).supervisor = new SuricataSupervisor({
    setup,
    spawner,
    prepare: async () => undefined,
    probe: async () => h.ready,
    events: bus,
    onStatus: (s) => states.push(s),
    ...overrides,
    processes,
  });
  return h;
}

const statuses = (h: Harness): string[] => h.states.map((s) => s.status);

describe('SuricataSupervisor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs Suricata in NFQ mode and reports running once the command socket answers', async () => {
    const h = makeSupervisor();
    h.ready = false;
    await h.supervisor.start();
    expect(h.spawner.calls).toEqual([
      {
        command: 'suricata',
        args: ['-c', '/data/suricata/suricata.yaml', '-q', '7', '--pidfile', '/run/portcullis/suricata.pid'],
      },
    ]);
    expect(h.supervisor.status()).toMatchObject({ status: 'starting', pid: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.supervisor.status().status).toBe('starting');
    h.ready = true;
    await vi.advanceTimersByTimeAsync(250);
    expect(h.supervisor.status()).toMatchObject({ status: 'running', pid: 1000, failures: 0 });
    await h.supervisor.waitUntilRunning(10);
  });

  it('publishes every state change on the event bus and to onStatus', async () => {
    const h = makeSupervisor();
    const published: SuricataState[] = [];
    h.bus.on('test', 'suricata.status', (s) => published.push(s));
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(250);
    h.spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(published.map((s) => s.status)).toEqual(['starting', 'starting', 'running', 'backoff']);
    expect(published).toEqual(h.states);
    expect(published.at(-1)).toMatchObject({
      status: 'backoff',
      retryInMs: 1000,
      failures: 1,
      reason: 'Suricata exited with code 1',
    });
    expect(Object.isFrozen(published[0])).toBe(true);
  });

  it('restarts with backoff after a crash', async () => {
    const h = makeSupervisor();
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(250);
    h.spawner.last.stderr.write('E: detect: something broke\n');
    await vi.advanceTimersByTimeAsync(0);
    h.spawner.last.exit(null, 'SIGSEGV');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status()).toMatchObject({
      status: 'backoff',
      retryInMs: 1000,
      reason: 'Suricata was killed by SIGSEGV (last output: E: detect: something broke)',
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(h.spawner.children).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.spawner.children).toHaveLength(2);
    expect(h.supervisor.status().status).toBe('starting');
    // crashes again while starting: the delay doubles
    h.spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status()).toMatchObject({ status: 'backoff', retryInMs: 2000, failures: 2 });
    await vi.advanceTimersByTimeAsync(2000);
    await vi.advanceTimersByTimeAsync(250);
    expect(h.supervisor.status()).toMatchObject({ status: 'running', pid: 1002 });
  });

  it('caps the backoff at 30 s', async () => {
    const h = makeSupervisor();
    h.ready = false;
    await h.supervisor.start();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.spawner.last.exit(1);
      await vi.advanceTimersByTimeAsync(0);
      const { retryInMs } = h.supervisor.status();
      delays.push(retryInMs!);
      await vi.advanceTimersByTimeAsync(retryInMs!);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('resets the backoff after 60 s of healthy running', async () => {
    const h = makeSupervisor();
    await h.supervisor.start();
    for (const wait of [1000, 2000]) {
      h.spawner.last.exit(1);
      await vi.advanceTimersByTimeAsync(0);
      expect(h.supervisor.status().retryInMs).toBe(wait);
      await vi.advanceTimersByTimeAsync(wait);
    }
    await vi.advanceTimersByTimeAsync(250);
    expect(h.supervisor.status().status).toBe('running');
    // up 59 s: not long enough, the delay keeps growing
    await vi.advanceTimersByTimeAsync(59_000);
    h.spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status()).toMatchObject({ retryInMs: 4000, failures: 3 });
    await vi.advanceTimersByTimeAsync(4000 + 250);
    await vi.advanceTimersByTimeAsync(60_000);
    h.spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status()).toMatchObject({ retryInMs: 1000, failures: 1 });
  });

  it('stops cleanly with SIGTERM', async () => {
    const h = makeSupervisor();
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(250);
    const child = h.spawner.last;
    await h.supervisor.stop();
    expect(child.signals).toEqual(['SIGTERM']);
    expect(h.supervisor.status()).toMatchObject({ status: 'stopped', reason: 'stopped' });
    expect(statuses(h)).toEqual(['starting', 'starting', 'running', 'stopped']);
  });

  it('sends SIGKILL when Suricata ignores SIGTERM for the stop timeout', async () => {
    const h = makeSupervisor({ stopTimeoutMs: 15_000 });
    h.spawner.next = () => new FakeChild(77, ['SIGKILL']);
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(250);
    let stopped = false;
    const stopping = h.supervisor.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(14_999);
    expect(h.spawner.last.signals).toEqual(['SIGTERM']);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopping;
    expect(h.spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(h.supervisor.status().status).toBe('stopped');
  });

  it('does not restart while shutting down', async () => {
    const h = makeSupervisor();
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(250);
    await h.supervisor.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.spawner.children).toHaveLength(1);
    expect(h.supervisor.status().status).toBe('stopped');
  });

  it('cancels a scheduled restart on stop', async () => {
    const h = makeSupervisor();
    await h.supervisor.start();
    h.spawner.last.exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status().status).toBe('backoff');
    await h.supervisor.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.spawner.children).toHaveLength(1);
    expect(h.supervisor.status().status).toBe('stopped');
  });

  it('kills a start that never finishes and counts it as a crash', async () => {
    const h = makeSupervisor({ startTimeoutMs: 5000 });
    h.ready = false;
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.spawner.last.signals).toEqual(['SIGTERM']);
    expect(h.supervisor.status()).toMatchObject({
      status: 'backoff',
      reason: 'Suricata did not finish starting within 5000 ms',
    });
  });

  it('retries when Suricata cannot be run at all', async () => {
    const h = makeSupervisor();
    h.spawner.next = () => {
      const child = new FakeChild(undefined);
      queueMicrotask(() =>
        child.emit('error', Object.assign(new Error('spawn suricata ENOENT'), { code: 'ENOENT' })),
      );
      return child;
    };
    await h.supervisor.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.supervisor.status()).toMatchObject({ status: 'backoff', retryInMs: 1000 });
    expect(h.supervisor.status().reason).toContain('could not be run (suricata): spawn suricata ENOENT');
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.spawner.children).toHaveLength(2);
  });

  it('gives up after maxFailures crashes in a row', async () => {
    const h = makeSupervisor({ maxFailures: 3 });
    h.ready = false;
    await h.supervisor.start();
    const waiting = h.supervisor.waitUntilRunning(60_000).catch((err: unknown) => err);
    for (let i = 0; i < 3; i++) {
      h.spawner.last.exit(1);
      await vi.advanceTimersByTimeAsync(0);
      if (i < 2) await vi.advanceTimersByTimeAsync(h.supervisor.status().retryInMs!);
    }
    expect(h.supervisor.status()).toMatchObject({ status: 'failed', failures: 3 });
    expect(h.supervisor.status().reason).toContain('giving up after 3 failures in a row');
    const err = await waiting;
    expect(isPortcullisError(err, 'SURICATA_FAILED')).toBe(true);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.spawner.children).toHaveLength(3);
    // start() again after giving up
    await h.supervisor.start();
    expect(h.spawner.children).toHaveLength(4);
  });

  it('replaces a Suricata left by a previous run', async () => {
    const processes = makeProcesses({ pidFiles: { [setup.pidFile]: 4242 }, suricatas: [4242] });
    const h = makeSupervisor({ processes });
    await h.supervisor.start();
    expect(processes.signals).toEqual([[4242, 'SIGTERM']]);
    expect(processes.pidFiles.has(setup.pidFile)).toBe(false);
    expect(h.spawner.children).toHaveLength(1);
  });

  it('kills a previous Suricata that ignores SIGTERM', async () => {
    const processes = makeProcesses({
      pidFiles: { [setup.pidFile]: 4242 },
      suricatas: [4242],
      stubborn: [4242],
    });
    const h = makeSupervisor({ processes, stopTimeoutMs: 2000 });
    const starting = h.supervisor.start();
    await vi.advanceTimersByTimeAsync(2100);
    await starting;
    expect(processes.signals).toEqual([
      [4242, 'SIGTERM'],
      [4242, 'SIGKILL'],
    ]);
    expect(h.spawner.children).toHaveLength(1);
  });

  it('leaves a process that is not Suricata alone and removes the stale pid file', async () => {
    const processes = makeProcesses({ pidFiles: { [setup.pidFile]: 999 }, others: [999] });
    const h = makeSupervisor({ processes });
    await h.supervisor.start();
    expect(processes.signals).toEqual([]);
    expect(processes.pidFiles.has(setup.pidFile)).toBe(false);
    expect(h.spawner.children).toHaveLength(1);
  });

  it('backs off when the config cannot be written', async () => {
    const h = makeSupervisor({
      prepare: async () => {
        throw new Error('EROFS: read-only file system');
      },
    });
    await h.supervisor.start();
    expect(h.spawner.children).toHaveLength(0);
    expect(h.supervisor.status()).toMatchObject({
      status: 'backoff',
      reason: 'cannot start Suricata: EROFS: read-only file system',
    });
  });

  it('waitUntilRunning times out with SURICATA_FAILED', async () => {
    const h = makeSupervisor();
    h.ready = false;
    await h.supervisor.start();
    const waiting = h.supervisor.waitUntilRunning(1000).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(1000);
    const err = await waiting;
    expect(isPortcullisError(err, 'SURICATA_FAILED')).toBe(true);
    expect((err as Error).message).toContain('not running after 1000 ms (status starting');
  });
});
