import { afterEach, describe, expect, it } from 'vitest';
import { STARTED_DIED_RESTARTED } from './test-fakes.js';
import { ChildSupervisor, type ChildState, type ChildSupervisorOptions } from './supervisor.js';

/**
 * The supervisor with real processes (`sleep`, `sh`): restart after kill -9, SIGKILL at
 * the shutdown deadline. Needs no root.
 */

const live: ChildSupervisor[] = [];

function supervise(
  args: readonly string[],
  overrides: Partial<ChildSupervisorOptions> = {},
): {
  supervisor: ChildSupervisor;
  states: ChildState[];
} {
  const states: ChildState[] = [];
  const supervisor = new ChildSupervisor({
    name: 'sleeper',
    command: args[0]!,
    args: () => args.slice(1),
    probeIntervalMs: 50,
    backoff: { initialMs: 100 },
    onStatus: (s) => states.push(s),
    ...overrides,
  });
  live.push(supervisor);
  return { supervisor, states };
}

/** Whether a process with this pid exists (and is not a zombie we have not reaped). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `sleep` with SIGTERM ignored (an ignored signal stays ignored across exec). */
const STUBBORN = ['sh', '-c', "trap '' TERM; exec sleep 30"];

describe('ChildSupervisor with real processes', () => {
  afterEach(async () => {
    await Promise.all(live.splice(0).map((s) => s.stop({ deadline: Date.now() })));
  });

  it('restarts a child killed with SIGKILL', async () => {
    const { supervisor, states } = supervise(['sleep', '30']);
    await supervisor.start();
    await supervisor.waitUntilRunning(5000);
    const first = supervisor.status().pid!;
    expect(exists(first)).toBe(true);
    const killedAt = Date.now();
    process.kill(first, 'SIGKILL');
    await until(
      'a restart',
      () => supervisor.status().status === 'running' && supervisor.status().pid !== first,
    );
    const restartMs = Date.now() - killedAt;
    const second = supervisor.status().pid!;
    expect(exists(second)).toBe(true);
    expect(exists(first)).toBe(false);
    expect(states.map((s) => s.status)).toEqual(STARTED_DIED_RESTARTED);
    expect(states[3]).toMatchObject({ reason: 'sleeper was killed by SIGKILL', retryInMs: 100, failures: 1 });
    // backoff 100 ms + settle 50 ms, on a loaded machine well under a second
    expect(restartMs).toBeGreaterThanOrEqual(150);
    expect(restartMs).toBeLessThan(2000);
  });

  it('sends SIGKILL at the deadline to children that ignore SIGTERM, all within one budget', async () => {
    const a = supervise(STUBBORN, { stopTimeoutMs: 15_000 });
    const b = supervise(STUBBORN, { stopTimeoutMs: 15_000 });
    await Promise.all([a.supervisor.start(), b.supervisor.start()]);
    await Promise.all([a.supervisor.waitUntilRunning(5000), b.supervisor.waitUntilRunning(5000)]);
    const pids = [a.supervisor.status().pid!, b.supervisor.status().pid!];
    const t0 = Date.now();
    const deadline = { deadline: t0 + 600 };
    // awaited one after the other, as a service stops its parts
    await a.supervisor.stop(deadline);
    await b.supervisor.stop(deadline);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(1500);
    for (const pid of pids) expect(exists(pid)).toBe(false);
    expect(a.supervisor.status().status).toBe('stopped');
    expect(b.supervisor.status().status).toBe('stopped');
  });

  it('control: a child that honours SIGTERM is gone long before the deadline', async () => {
    const { supervisor } = supervise(['sleep', '30'], { stopTimeoutMs: 15_000 });
    await supervisor.start();
    await supervisor.waitUntilRunning(5000);
    const pid = supervisor.status().pid!;
    const t0 = Date.now();
    await supervisor.stop({ deadline: t0 + 600 });
    expect(Date.now() - t0).toBeLessThan(400);
    expect(exists(pid)).toBe(false);
  });
});
