import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { AsyncSpawner, ChildProcessLike } from './supervisor.js';

/**
 * Children run by systemd instead of by the service (the appliance, `processes.runner:
 * systemd`): Suricata and dnsmasq in units of their own (appliance/systemd/), each under
 * its own user with only the capabilities it needs and its own sandbox, while the
 * service keeps supervising them exactly as it supervises its own children
 * (ChildSupervisor: backoff, start timeout, hang detection, shutdown budget, status
 * events). The service needs no CAP_KILL or CAP_SETUID for that: it asks systemd over
 * D-Bus (`systemctl`), and a polkit rule (appliance/polkit/) allows its user exactly
 * start/stop/restart/kill of exactly these units.
 *
 * The spawner is the only piece that differs:
 * - spawn: the command line goes into the unit's environment file (read by systemd, not
 *   by the child: the binary is fixed in the unit), then `systemctl restart` (which also
 *   replaces a child a previous run of the service left running), then the unit's MainPID;
 * - the exit: the pid is watched with kill(pid, 0) (EPERM means alive: another user's
 *   process), and when it is gone `systemctl show` says how it ended;
 * - signals: SIGTERM is `systemctl stop`, any other `systemctl kill` (SIGKILL to every
 *   process of the unit, SIGHUP and the rest to the main process).
 * Output goes to the journal (`journalctl -u <unit>`), not through the service.
 */

/** How one `systemctl` call ended. */
export interface SystemctlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs systemctl. */
export interface Systemctl {
  run(args: readonly string[]): Promise<SystemctlResult>;
}

/** The real one: `systemctl --no-ask-password …` (never waits for a password prompt), 90 s at most. */
export const execSystemctl: Systemctl = {
  run: (args) =>
    new Promise((resolve) => {
      execFile(
        'systemctl',
        ['--no-ask-password', ...args],
        { timeout: 90_000, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr: stderr || (err && code === 1 ? err.message : '') });
        },
      );
    }),
};

/** Whether `pid` exists: kill(pid, 0), where EPERM (another user's process) means it does. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Characters an argument may have: systemd splits `$VAR` on whitespace and reads quotes and backslashes. */
const SAFE_ARG = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * The environment file of a unit whose `ExecStart=` ends in `$<variable>`: one line,
 * the arguments separated by spaces. Pure. Throws SPAWN_FAILED for an argument systemd
 * would split or unquote (whitespace, quotes, `$`, `%`, `\`): name such paths without them.
 */
export function unitEnvironment(variable: string, args: readonly string[]): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(variable))
    throw new PortcullisError(
      'SPAWN_FAILED',
      `invalid environment variable name ${JSON.stringify(variable)}`,
    );
  const bad = args.filter((a) => !SAFE_ARG.test(a));
  if (bad.length > 0)
    throw new PortcullisError(
      'SPAWN_FAILED',
      `cannot pass ${bad.map((a) => JSON.stringify(a)).join(', ')} to a systemd unit: arguments may only have ` +
        'letters, digits and _@+=:,./- (rename the path, or run the child directly: processes.runner: direct)',
    );
  return `# written by portcullis before every start; systemd reads it (EnvironmentFile=)\n${variable}=${args.join(' ')}\n`;
}

/** How a unit's main process ended, from `systemctl show -p ExecMainCode -p ExecMainStatus -p Result`. */
export interface UnitExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** systemd's word for it (`exit-code`, `signal`, `success`, …), if it said. */
  readonly result?: string;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, num]) => [num, name as NodeJS.Signals]),
);

/**
 * The exit of a unit's main process from `systemctl show` output (`Key=value` lines).
 * ExecMainCode is the waitid() si_code: 1 exited (ExecMainStatus is the code), 2 killed
 * and 3 dumped (ExecMainStatus is the signal). Pure.
 */
export function parseUnitExit(show: string): UnitExit {
  const v = Object.fromEntries(
    show
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const how = Number(v.ExecMainCode);
  const status = Number(v.ExecMainStatus);
  const result = v.Result ? { result: v.Result as string } : {};
  if ((how === 2 || how === 3) && Number.isInteger(status))
    return { code: null, signal: SIGNAL_NAMES.get(status) ?? 'SIGKILL', ...result };
  return { code: Number.isInteger(status) ? status : null, signal: null, ...result };
}

export interface SystemdUnitSpawnerOptions {
  /** The unit, e.g. `portcullis-suricata@inline.service`. */
  readonly unit: string;
  /** The unit's `EnvironmentFile=`: the arguments are written there before every start. */
  readonly envFile: string;
  /** The variable the unit's `ExecStart=` expands (`$SURICATA_ARGS`). */
  readonly variable: string;
  /** Default {@link execSystemctl}. */
  readonly systemctl?: Systemctl;
  /** Whether a pid still exists. Default {@link pidExists}. */
  readonly exists?: (pid: number) => boolean;
  /** How often the main process is looked at, ms. Default 250. */
  readonly pollMs?: number;
  /** Writes the environment file. Default: atomically (temporary file, rename), mode 0600, its folder made. */
  readonly writeEnvFile?: (path: string, text: string) => Promise<void>;
  readonly log?: Logger;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

/** Starts a child as the main process of a systemd unit; see the top of this file. */
export class SystemdUnitSpawner implements AsyncSpawner {
  readonly #o: SystemdUnitSpawnerOptions;
  readonly #systemctl: Systemctl;
  readonly #log: Logger;

  constructor(options: SystemdUnitSpawnerOptions) {
    this.#o = options;
    this.#systemctl = options.systemctl ?? execSystemctl;
    this.#log = options.log ?? silentLogger;
  }

  /** The unit this spawner starts. */
  get unit(): string {
    return this.#o.unit;
  }

  /**
   * Write the arguments, restart the unit, resolve with its main process. `command` is
   * the unit's business (its `ExecStart=`) and not used. Rejects with SPAWN_FAILED when
   * systemd refuses (no polkit rule, no such unit) or the process ended at once.
   */
  async spawn(_command: string, args: readonly string[]): Promise<ChildProcessLike> {
    const { unit, envFile, variable } = this.#o;
    await (this.#o.writeEnvFile ?? writeAtomically)(envFile, unitEnvironment(variable, args));
    const restart = await this.#systemctl.run(['restart', unit]);
    if (restart.code !== 0) {
      const why = (restart.stderr || restart.stdout).trim();
      const denied = /access denied|authentication required|not authorized/i.test(why);
      throw new PortcullisError(
        'SPAWN_FAILED',
        `systemctl restart ${unit} failed: ${why || `exit code ${restart.code}`}` +
          (denied
            ? ' (the polkit rule /etc/polkit-1/rules.d/50-portcullis.rules lets the user portcullis manage this unit: is it installed, and polkitd running?)'
            : `; see journalctl -u ${unit}`),
        { context: { unit } },
      );
    }
    const show = await this.#show(['MainPID', 'ExecMainCode', 'ExecMainStatus', 'Result']);
    const pid = Number(/^MainPID=(\d+)$/m.exec(show)?.[1] ?? 0);
    if (pid <= 0) {
      const exit = parseUnitExit(show);
      throw new PortcullisError(
        'SPAWN_FAILED',
        `${unit} ended right after its start (${describeExit(exit)}); see journalctl -u ${unit}`,
        { context: { unit } },
      );
    }
    return new UnitProcess(pid, {
      unit,
      systemctl: this.#systemctl,
      exists: this.#o.exists ?? pidExists,
      pollMs: this.#o.pollMs ?? 250,
      show: () => this.#show(['ExecMainCode', 'ExecMainStatus', 'Result']),
      log: this.#log,
    });
  }

  async #show(props: readonly string[]): Promise<string> {
    const r = await this.#systemctl.run(['show', ...props.map((p) => `--property=${p}`), this.#o.unit]);
    return r.code === 0 ? r.stdout : '';
  }
}

function describeExit(exit: UnitExit): string {
  const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code ?? '?'}`;
  return exit.result ? `${how}, result ${exit.result}` : how;
}

interface UnitProcessOptions {
  readonly unit: string;
  readonly systemctl: Systemctl;
  readonly exists: (pid: number) => boolean;
  readonly pollMs: number;
  readonly show: () => Promise<string>;
  readonly log: Logger;
}

/** A unit's main process as a ChildProcessLike: `exit` once the pid is gone. */
class UnitProcess extends EventEmitter implements ChildProcessLike {
  readonly pid: number;
  readonly stdout = null;
  readonly stderr = null;
  readonly #o: UnitProcessOptions;
  #timer: NodeJS.Timeout | undefined;
  #gone = false;

  constructor(pid: number, options: UnitProcessOptions) {
    super();
    this.pid = pid;
    this.#o = options;
    this.#timer = setInterval(() => this.#look(), options.pollMs);
  }

  kill(signal: NodeJS.Signals): boolean {
    if (this.#gone) return false;
    const { unit } = this.#o;
    const args =
      signal === 'SIGTERM'
        ? ['stop', '--no-block', unit]
        : ['kill', `--kill-whom=${signal === 'SIGKILL' ? 'all' : 'main'}`, `--signal=${signal}`, unit];
    void this.#o.systemctl.run(args).then((r) => {
      if (r.code !== 0)
        this.#o.log.error({ unit, signal, stderr: r.stderr.trim() }, `systemctl ${args[0]} ${unit} failed`);
    });
    return true;
  }

  #look(): void {
    if (this.#gone || this.#o.exists(this.pid)) return;
    this.#gone = true;
    clearInterval(this.#timer);
    void this.#o
      .show()
      .catch(() => '')
      .then((show) => {
        const exit = parseUnitExit(show);
        this.emit('exit', exit.code, exit.signal);
      });
  }
}
