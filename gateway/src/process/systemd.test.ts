import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { ChildRunners, DNSMASQ_UNIT, suricataUnit } from './runner.js';
import { ChildSupervisor, replaceStaleProcess, type ChildState } from './supervisor.js';
import {
  parseUnitExit,
  SystemdUnitSpawner,
  unitEnvironment,
  type Systemctl,
  type SystemctlResult,
} from './systemd.js';
import { STARTED_DIED_RESTARTED } from './test-fakes.js';

/**
 * A systemd with one unit, as far as systemctl shows it: `restart` starts a new main
 * process (the old one ends), `stop` ends it with exit code 0, `kill` with the signal.
 * Processes can also die on their own (`die`), as Suricata does under kill -9.
 */
class FakeSystemd implements Systemctl {
  readonly calls: string[][] = [];
  readonly alive = new Set<number>();
  mainPid = 0;
  exit = { code: 0, status: 0, result: 'success' };
  nextPid = 500;
  /** What `restart` answers; a test makes it fail or hang. */
  onRestart: () => Promise<SystemctlResult | undefined> = async () => undefined;
  /** Whether a started process ends at once (a bad command line). */
  diesAtOnce = false;
  envFiles: { path: string; text: string }[] = [];

  async run(args: readonly string[]): Promise<SystemctlResult> {
    this.calls.push([...args]);
    const [verb] = args;
    if (verb === 'restart') {
      const answer = await this.onRestart();
      if (answer) return answer;
      this.die(0, 'success', 1);
      this.mainPid = this.nextPid++;
      this.alive.add(this.mainPid);
      if (this.diesAtOnce) this.die(2, 'exit-code', 1);
      return ok('');
    }
    if (verb === 'stop') {
      this.die(0, 'success', 1);
      return ok('');
    }
    if (verb === 'kill') {
      const signal = args.find((a) => a.startsWith('--signal='))?.slice('--signal='.length);
      if (signal === 'SIGKILL') this.die(9, 'signal', 2);
      return ok('');
    }
    if (verb === 'show') {
      const lines = [
        `MainPID=${this.mainPid}`,
        `ExecMainCode=${this.exit.code}`,
        `ExecMainStatus=${this.exit.status}`,
        `Result=${this.exit.result}`,
      ];
      return ok(lines.join('\n') + '\n');
    }
    return { code: 1, stdout: '', stderr: `unknown verb ${verb}` };
  }

  /** The main process ends: with `status` (exit code, or signal when `how` is 2). */
  die(status: number, result: string, how: 1 | 2): void {
    if (this.mainPid === 0) return;
    this.alive.delete(this.mainPid);
    this.mainPid = 0;
    this.exit = { code: how, status, result };
  }

  verbs(): string[] {
    return this.calls.filter((c) => c[0] !== 'show').map((c) => c.join(' '));
  }
}

function ok(stdout: string): SystemctlResult {
  return { code: 0, stdout, stderr: '' };
}

function makeSpawner(systemd: FakeSystemd, unit = 'portcullis-suricata@inline.service'): SystemdUnitSpawner {
  return new SystemdUnitSpawner({
    unit,
    envFile: '/var/lib/portcullis/units/suricata-inline.env',
    variable: 'SURICATA_ARGS',
    systemctl: systemd,
    exists: (pid) => systemd.alive.has(pid),
    pollMs: 100,
    writeEnvFile: async (path, text) => {
      systemd.envFiles.push({ path, text });
    },
  });
}

describe('unitEnvironment', () => {
  it('puts the arguments on one line for `ExecStart=… $VAR`', () => {
    expect(
      unitEnvironment('SURICATA_ARGS', ['-c', '/var/lib/portcullis/suricata/suricata.yaml', '-q', '0']),
    ).toMatch(/\nSURICATA_ARGS=-c \/var\/lib\/portcullis\/suricata\/suricata\.yaml -q 0\n$/);
    expect(unitEnvironment('DNSMASQ_ARGS', ['--dhcp-range=10.20.0.0,static,255.255.255.0,12h'])).toContain(
      'DNSMASQ_ARGS=--dhcp-range=10.20.0.0,static,255.255.255.0,12h\n',
    );
  });

  it('refuses an argument systemd would split or unquote, and names it', () => {
    for (const bad of ['/data dir/x', 'a"b', "it's", '$HOME', '%i', 'a\\b', 'two\nlines']) {
      let error: unknown;
      try {
        unitEnvironment('ARGS', ['-c', bad]);
      } catch (err) {
        error = err;
      }
      expect(isPortcullisError(error) && error.code, bad).toBe('SPAWN_FAILED');
      expect((error as Error).message).toContain(JSON.stringify(bad));
    }
    expect(() => unitEnvironment('lower-case', [])).toThrow(/invalid environment variable name/);
  });
});

describe('parseUnitExit', () => {
  it('reads an exit code, a signal and a core dump from systemctl show', () => {
    expect(parseUnitExit('ExecMainCode=1\nExecMainStatus=1\nResult=exit-code\n')).toEqual({
      code: 1,
      signal: null,
      result: 'exit-code',
    });
    expect(parseUnitExit('ExecMainCode=2\nExecMainStatus=9\nResult=signal\n')).toEqual({
      code: null,
      signal: 'SIGKILL',
      result: 'signal',
    });
    expect(parseUnitExit('ExecMainCode=3\nExecMainStatus=11\n')).toEqual({ code: null, signal: 'SIGSEGV' });
    expect(parseUnitExit('')).toEqual({ code: null, signal: null });
  });
});

describe('SystemdUnitSpawner', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes the command line, restarts the unit and hands back its main process', async () => {
    const systemd = new FakeSystemd();
    const child = await makeSpawner(systemd).spawn('suricata', ['-c', '/x/suricata.yaml', '-q', '0']);
    expect(child.pid).toBe(500);
    expect(child.stdout).toBeNull();
    expect(systemd.envFiles).toEqual([
      {
        path: '/var/lib/portcullis/units/suricata-inline.env',
        text: expect.stringContaining('SURICATA_ARGS=-c /x/suricata.yaml -q 0\n') as string,
      },
    ]);
    expect(systemd.verbs()).toEqual(['restart portcullis-suricata@inline.service']);
    // the environment file is written before the restart reads it
    expect(systemd.calls[0]![0]).toBe('restart');
  });

  it('reports the exit systemd saw once the main process is gone', async () => {
    const systemd = new FakeSystemd();
    const child = await makeSpawner(systemd).spawn('suricata', []);
    const exits: unknown[] = [];
    child.on('exit', (code, signal) => exits.push({ code, signal }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(exits).toEqual([]);
    systemd.die(9, 'signal', 2); // kill -9 from outside the service
    await vi.advanceTimersByTimeAsync(150);
    expect(exits).toEqual([{ code: null, signal: 'SIGKILL' }]);
  });

  it('signals through systemd: SIGTERM stops the unit, SIGKILL kills all of it, SIGHUP the main process', async () => {
    const systemd = new FakeSystemd();
    const child = await makeSpawner(systemd, DNSMASQ_UNIT).spawn('dnsmasq', []);
    expect(child.kill('SIGHUP')).toBe(true);
    expect(child.kill('SIGKILL')).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(child.kill('SIGTERM')).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(systemd.verbs().slice(1)).toEqual([
      'kill --kill-whom=main --signal=SIGHUP portcullis-dnsmasq.service',
      'kill --kill-whom=all --signal=SIGKILL portcullis-dnsmasq.service',
      'stop --no-block portcullis-dnsmasq.service',
    ]);
    await vi.advanceTimersByTimeAsync(150);
    // gone: nothing more is sent
    expect(child.kill('SIGTERM')).toBe(false);
  });

  it('fails with SPAWN_FAILED naming the polkit rule when systemd refuses the user', async () => {
    const systemd = new FakeSystemd();
    systemd.onRestart = async () => ({
      code: 4,
      stdout: '',
      stderr: 'Failed to restart portcullis-dnsmasq.service: Access denied',
    });
    const err = await makeSpawner(systemd, DNSMASQ_UNIT)
      .spawn('dnsmasq', [])
      .catch((e: unknown) => e);
    expect(isPortcullisError(err) && err.code).toBe('SPAWN_FAILED');
    expect((err as Error).message).toMatch(/Access denied.*50-portcullis\.rules/);
  });

  it('fails with SPAWN_FAILED when the process ended right after its start', async () => {
    const systemd = new FakeSystemd();
    systemd.diesAtOnce = true;
    const err = await makeSpawner(systemd)
      .spawn('suricata', [])
      .catch((e: unknown) => e);
    expect(isPortcullisError(err) && err.code).toBe('SPAWN_FAILED');
    expect((err as Error).message).toMatch(
      /ended right after its start \(exit code 2, result exit-code\); see journalctl -u portcullis-suricata@inline/,
    );
  });
});

describe('ChildSupervisor over a systemd unit', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function supervise(
    systemd: FakeSystemd,
    check?: () => Promise<string | undefined>,
  ): {
    supervisor: ChildSupervisor;
    states: ChildState[];
  } {
    const states: ChildState[] = [];
    const supervisor = new ChildSupervisor({
      name: 'Suricata',
      command: 'suricata',
      args: () => ['-q', '0'],
      spawner: makeSpawner(systemd),
      probeIntervalMs: 50,
      backoff: { initialMs: 1000 },
      stopTimeoutMs: 5000,
      onStatus: (s) => states.push(s),
      ...(check ? { liveness: { check, intervalMs: 1000, failures: 2 } } : {}),
    });
    return { supervisor, states };
  }

  it('restarts the unit with backoff after its process dies, and learns the new pid', async () => {
    const systemd = new FakeSystemd();
    const { supervisor, states } = supervise(systemd);
    await supervisor.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 500 });
    systemd.die(9, 'signal', 2);
    await vi.advanceTimersByTimeAsync(150);
    expect(supervisor.status()).toMatchObject({ status: 'backoff', retryInMs: 1000 });
    expect(supervisor.status().reason).toMatch(/killed by SIGKILL/);
    await vi.advanceTimersByTimeAsync(1100);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 501 });
    expect(states.map((s) => s.status)).toEqual([...STARTED_DIED_RESTARTED]);
    expect(systemd.verbs()).toEqual([
      'restart portcullis-suricata@inline.service',
      'restart portcullis-suricata@inline.service',
    ]);
    const stopping = supervisor.stop();
    await vi.advanceTimersByTimeAsync(200);
    await stopping;
    expect(supervisor.status().status).toBe('stopped');
    expect(systemd.verbs().at(-1)).toBe('stop --no-block portcullis-suricata@inline.service');
  });

  it('kills a hung unit (systemctl kill SIGKILL) and starts it again', async () => {
    const systemd = new FakeSystemd();
    let hung = false;
    const { supervisor } = supervise(systemd, async () =>
      hung ? 'the command socket does not answer' : undefined,
    );
    await supervisor.start();
    await vi.advanceTimersByTimeAsync(100);
    hung = true;
    await vi.advanceTimersByTimeAsync(2100);
    expect(systemd.verbs()).toContain(
      'kill --kill-whom=all --signal=SIGKILL portcullis-suricata@inline.service',
    );
    hung = false;
    await vi.advanceTimersByTimeAsync(200);
    expect(supervisor.status().reason).toMatch(/is hung \(the command socket does not answer/);
    await vi.advanceTimersByTimeAsync(1100);
    expect(supervisor.status()).toMatchObject({ status: 'running', pid: 501 });
    const stopping = supervisor.stop();
    await vi.advanceTimersByTimeAsync(200);
    await stopping;
  });

  it('stops what a restart still in progress started', async () => {
    const systemd = new FakeSystemd();
    let release!: () => void;
    systemd.onRestart = () => new Promise((resolve) => (release = () => resolve(undefined)));
    const { supervisor } = supervise(systemd);
    const starting = supervisor.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(systemd.verbs()).toEqual(['restart portcullis-suricata@inline.service']);
    const stopping = supervisor.stop();
    release();
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all([starting, stopping]);
    expect(supervisor.status().status).toBe('stopped');
    expect(systemd.alive.size).toBe(0);
    expect(systemd.verbs()).toEqual([
      'restart portcullis-suricata@inline.service',
      'stop --no-block portcullis-suricata@inline.service',
    ]);
  });

  it('counts a refused restart as a failed run and tries again', async () => {
    const systemd = new FakeSystemd();
    let refuse = true;
    systemd.onRestart = async () =>
      refuse
        ? { code: 5, stdout: '', stderr: 'Unit portcullis-suricata@inline.service not found.' }
        : undefined;
    const { supervisor } = supervise(systemd);
    await supervisor.start();
    expect(supervisor.status()).toMatchObject({ status: 'backoff', failures: 1 });
    expect(supervisor.status().reason).toMatch(
      /not found.*journalctl -u portcullis-suricata@inline\.service/,
    );
    refuse = false;
    await vi.advanceTimersByTimeAsync(1100);
    expect(supervisor.status()).toMatchObject({ status: 'running' });
    const stopping = supervisor.stop();
    await vi.advanceTimersByTimeAsync(200);
    await stopping;
  });
});

describe('ChildRunners', () => {
  it('direct: the supervisors keep their own spawners', () => {
    const runners = new ChildRunners({ runner: 'direct', dataDir: '/var/lib/portcullis' });
    expect(runners.suricata('inline')).toEqual({});
    expect(runners.dnsmasq()).toEqual({});
  });

  it('systemd: one unit per child, its environment file in <dataDir>/units; a stale pid file is removed, its pid not signalled', async () => {
    const runners = new ChildRunners({ runner: 'systemd', dataDir: '/var/lib/portcullis' });
    const inline = runners.suricata('inline');
    const ids = runners.suricata('ids');
    expect((inline.spawner as SystemdUnitSpawner).unit).toBe('portcullis-suricata@inline.service');
    expect((ids.spawner as SystemdUnitSpawner).unit).toBe(suricataUnit('ids'));
    expect((runners.dnsmasq().spawner as SystemdUnitSpawner).unit).toBe('portcullis-dnsmasq.service');
    expect(runners.unitsDir).toBe('/var/lib/portcullis/units');
    // a Suricata killed with -9 left its pid file (Suricata 7 then refuses to start): it goes,
    // and systemctl restart, not a signal from the service, replaces a previous run's process
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-runner-'));
    try {
      const pidFile = join(dir, 'suricata.pid');
      writeFileSync(pidFile, `${process.pid}\n`);
      const signalled: number[] = [];
      await replaceStaleProcess({
        pidFile,
        isOurs: async (pid) => {
          signalled.push(pid);
          return true;
        },
        name: 'Suricata',
        stopTimeoutMs: 1000,
        processes: inline.processes!,
      });
      expect(existsSync(pidFile)).toBe(false);
      expect(signalled).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
