import { spawn as nodeSpawn } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { PortcullisError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { renderSuricataConfig, suricataArgs, type SuricataSetup } from './config.js';
import { SuricataControl } from './control.js';

/**
 * Runs Suricata (NFQ mode, in the foreground) and keeps it running: restarts it with
 * capped exponential backoff after a crash, replaces a Suricata left by a previous run of
 * the service, and stops it with SIGTERM, then SIGKILL after a timeout. Every state
 * change is logged and published (`suricata.status` on the event bus, `onStatus`).
 *
 * "Running" means Suricata has finished starting: its unix command socket answers. It
 * creates that socket after the rules are loaded, right before it logs "Engine
 * started" (the socket FILE is no proof: Suricata leaves it behind when it exits).
 */

/** Where the supervisor is. */
export type SuricataStatus = 'stopped' | 'starting' | 'running' | 'backoff' | 'failed';

/** A snapshot of the supervisor, as published on every change. */
export interface SuricataState {
  readonly status: SuricataStatus;
  /** Pid of the current Suricata (starting, running). */
  readonly pid?: number;
  /** When this state began, ISO 8601. */
  readonly since: string;
  /** Failed runs in a row; back to 0 after a run that stayed up `backoff.resetAfterMs`. */
  readonly failures: number;
  /** backoff: ms until the next start. */
  readonly retryInMs?: number;
  /** Why this state: the exit or error that led here. */
  readonly reason?: string;
}

declare module '../events.js' {
  interface PortcullisEvents {
    /** The Suricata supervisor changed state. */
    'suricata.status': SuricataState;
  }
}

/** The part of a child process the supervisor uses (node's ChildProcess fits). */
export interface SuricataProcess {
  readonly pid?: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  kill(signal: NodeJS.Signals): boolean;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

/** Starts processes. */
export interface Spawner {
  spawn(command: string, args: readonly string[]): SuricataProcess;
}

/** The real spawner: node:child_process, stdin closed, stdout and stderr piped. */
export const nodeSpawner: Spawner = {
  spawn: (command, args) => nodeSpawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
};

/** Processes the supervisor did not start: a Suricata left by a previous run. */
export interface ProcessTable {
  /** The pid in a pid file; undefined when there is no file or no pid in it. */
  readPidFile(path: string): Promise<number | undefined>;
  /** Remove a file; no error when it is gone already. */
  removeFile(path: string): Promise<void>;
  /** Whether `pid` is a live process (not a zombie). */
  alive(pid: number): Promise<boolean>;
  /** Whether `pid` is a Suricata, not another process that got the pid since. */
  isSuricata(pid: number): Promise<boolean>;
  /** Send a signal; false when there is no such process. */
  signal(pid: number, signal: NodeJS.Signals): boolean;
}

/** The real process table: /proc and kill(2). */
export const procProcessTable: ProcessTable = {
  async readPidFile(path) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new PortcullisError(
        'SURICATA_FAILED',
        `cannot read pid file ${path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const pid = Number.parseInt(text.trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  },
  async removeFile(path) {
    await rm(path, { force: true });
  },
  async alive(pid) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    // `pid (comm) S …`: a zombie has exited already
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    return !/\) Z /.test(stat);
  },
  async isSuricata(pid) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === 'Suricata-Main' || comm === 'suricata') return true;
    const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
    return basename(argv0) === 'suricata';
  },
  signal(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
};

/** Write the rendered configuration (atomically) and create the log directory. */
export async function writeSuricataFiles(setup: SuricataSetup): Promise<void> {
  const text = renderSuricataConfig(setup);
  await mkdir(setup.logDir, { recursive: true });
  await mkdir(dirname(setup.configFile), { recursive: true });
  const tmp = `${setup.configFile}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, setup.configFile);
}

/** Capped exponential backoff between restarts. */
export interface BackoffOptions {
  /** Delay before the first restart, ms. Default 1,000. */
  readonly initialMs?: number;
  /** Longest delay, ms; each failure in a row doubles the delay up to this. Default 30,000. */
  readonly maxMs?: number;
  /** A run that stayed up this long (ms) resets the delay to `initialMs`. Default 60,000. */
  readonly resetAfterMs?: number;
}

export interface SuricataSupervisorOptions {
  /** The instance to run (config.ts): command line, pid file, command socket. */
  readonly setup: SuricataSetup;
  /** The Suricata binary. Default `suricata` (from PATH). */
  readonly binary?: string;
  /** Default {@link nodeSpawner}. */
  readonly spawner?: Spawner;
  /** Default {@link procProcessTable}. */
  readonly processes?: ProcessTable;
  /** Runs before every start. Default {@link writeSuricataFiles}: the config is rewritten each time. */
  readonly prepare?: (setup: SuricataSetup) => Promise<void>;
  /** Resolves true once Suricata has finished starting. Default: its command socket answers `uptime`. */
  readonly probe?: () => Promise<boolean>;
  /** Between two probes while starting, ms. Default 250. */
  readonly probeIntervalMs?: number;
  /** A start that is not running after this many ms is killed and counts as a crash. Default 120,000 (large rule sets). */
  readonly startTimeoutMs?: number;
  /** SIGTERM to SIGKILL, ms. Default 15,000 (Suricata takes ~3 s to drain and exit). */
  readonly stopTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  /** Failed runs in a row after which the supervisor gives up (status `failed`). Default: never. */
  readonly maxFailures?: number;
  readonly log?: Logger;
  /** Where `suricata.status` is published. */
  readonly events?: EventBus;
  /** Called with every new state, after the event bus. */
  readonly onStatus?: (state: SuricataState) => void;
}

/** After SIGKILL, how long to wait for the exit before giving up on a process, ms. */
const KILL_WAIT_MS = 5000;
/** Suricata output lines kept to explain a crash. */
const TAIL_LINES = 20;

/** One Suricata process and what the supervisor knows about it. */
interface Run {
  readonly child: SuricataProcess;
  ended: boolean;
  readonly exited: Promise<void>;
  /** Replaces the exit description (a start timeout is not "killed by SIGTERM"). */
  reason?: string;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class SuricataSupervisor {
  readonly #setup: SuricataSetup;
  readonly #binary: string;
  readonly #spawner: Spawner;
  readonly #processes: ProcessTable;
  readonly #prepare: (setup: SuricataSetup) => Promise<void>;
  readonly #probe: () => Promise<boolean>;
  readonly #probeIntervalMs: number;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #maxFailures: number;
  readonly #log: Logger;
  readonly #events: EventBus | undefined;
  readonly #onStatus: ((state: SuricataState) => void) | undefined;

  #state: SuricataState = { status: 'stopped', since: new Date().toISOString(), failures: 0 };
  #run: Run | undefined;
  #shuttingDown = false;
  /** Bumped by start() and stop(): async work of an older epoch stops where it is. */
  #epoch = 0;
  #failures = 0;
  #runningSince: number | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #startTimer: NodeJS.Timeout | undefined;
  #tail: string[] = [];
  #waiters: Waiter[] = [];

  constructor(options: SuricataSupervisorOptions) {
    this.#setup = options.setup;
    this.#binary = options.binary ?? 'suricata';
    this.#spawner = options.spawner ?? nodeSpawner;
    this.#processes = options.processes ?? procProcessTable;
    this.#prepare = options.prepare ?? writeSuricataFiles;
    const control = new SuricataControl({ path: options.setup.commandSocket, timeoutMs: 2000 });
    this.#probe = options.probe ?? (() => control.ping());
    this.#probeIntervalMs = options.probeIntervalMs ?? 250;
    this.#startTimeoutMs = options.startTimeoutMs ?? 120_000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 15_000;
    this.#backoff = {
      initialMs: options.backoff?.initialMs ?? 1000,
      maxMs: options.backoff?.maxMs ?? 30_000,
      resetAfterMs: options.backoff?.resetAfterMs ?? 60_000,
    };
    this.#maxFailures = options.maxFailures ?? Number.POSITIVE_INFINITY;
    this.#log = (options.log ?? silentLogger).child({ part: 'suricata' });
    this.#events = options.events;
    this.#onStatus = options.onStatus;
  }

  /** The current state. */
  status(): SuricataState {
    return this.#state;
  }

  /**
   * Start supervising: replace a Suricata left by a previous run, write the config,
   * spawn. Resolves once Suricata is spawned (status `starting`) or, if that failed,
   * a restart is scheduled (`backoff`); see {@link waitUntilRunning}. No-op unless
   * `stopped` or `failed`.
   */
  async start(): Promise<void> {
    if (this.#state.status !== 'stopped' && this.#state.status !== 'failed') return;
    this.#shuttingDown = false;
    this.#failures = 0;
    const epoch = ++this.#epoch;
    await this.#launch(epoch);
  }

  /**
   * Stop: no more restarts; SIGTERM, then SIGKILL after `stopTimeoutMs`. Resolves when
   * Suricata has exited (status `stopped`).
   */
  async stop(): Promise<void> {
    this.#shuttingDown = true;
    this.#epoch += 1;
    this.#clearTimers();
    const run = this.#run;
    if (run) await this.#terminate(run);
    this.#rejectWaiters(new PortcullisError('SURICATA_FAILED', 'the Suricata supervisor was stopped'));
    if (this.#state.status !== 'stopped') this.#set({ status: 'stopped', reason: 'stopped' });
  }

  /**
   * Resolve when Suricata is running; reject with SURICATA_FAILED after `timeoutMs`
   * (default: the start timeout), or when the supervisor stops or gives up.
   */
  waitUntilRunning(timeoutMs = this.#startTimeoutMs): Promise<void> {
    if (this.#state.status === 'running') return Promise.resolve();
    if (this.#state.status === 'stopped' || this.#state.status === 'failed') {
      return Promise.reject(
        new PortcullisError(
          'SURICATA_FAILED',
          `Suricata is ${this.#state.status}${this.#state.reason ? `: ${this.#state.reason}` : ''}`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new PortcullisError(
            'SURICATA_FAILED',
            `Suricata is not running after ${timeoutMs} ms (status ${this.#state.status}${this.#state.reason ? `: ${this.#state.reason}` : ''})`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  async #launch(epoch: number): Promise<void> {
    this.#set({
      status: 'starting',
      reason: this.#failures > 0 ? `restart after ${this.#failures} failure(s)` : undefined,
    });
    try {
      await this.#replaceStale();
      if (epoch !== this.#epoch) return;
      await this.#prepare(this.#setup);
      if (epoch !== this.#epoch) return;
    } catch (err) {
      if (epoch === this.#epoch) this.#crashed(`cannot start Suricata: ${(err as Error).message}`);
      return;
    }
    const args = suricataArgs(this.#setup);
    let child: SuricataProcess;
    try {
      child = this.#spawner.spawn(this.#binary, args);
    } catch (err) {
      this.#crashed(`cannot run ${this.#binary}: ${(err as Error).message}`);
      return;
    }
    let markExited!: () => void;
    const run: Run = { child, ended: false, exited: new Promise<void>((resolve) => (markExited = resolve)) };
    this.#run = run;
    this.#tail = [];
    this.#pipe(child.stdout);
    this.#pipe(child.stderr);
    const end = (what: string): void => {
      if (run.ended) return;
      run.ended = true;
      markExited();
      if (this.#run === run) this.#run = undefined;
      this.#clearStartTimers();
      if (this.#shuttingDown || epoch !== this.#epoch) return;
      const last = this.#tail.filter((l) => /^(E|Error|Critical)\b/.test(l)).at(-1) ?? this.#tail.at(-1);
      this.#crashed(`${run.reason ?? `Suricata ${what}`}${last ? ` (last output: ${last})` : ''}`);
    };
    child.on('exit', (code, signal) => end(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    child.on('error', (err) => {
      // spawn failures (ENOENT, EACCES) come as 'error' without 'exit'
      if (child.pid === undefined) end(`could not be run (${this.#binary}): ${err.message}`);
      else this.#log.warn({ err }, 'Suricata process error');
    });
    if (child.pid === undefined) return; // the 'error' event follows
    this.#set({ status: 'starting', pid: child.pid, reason: `spawned: ${this.#binary} ${args.join(' ')}` });
    this.#startTimer = setTimeout(() => {
      this.#startTimer = undefined;
      if (run.ended || this.#state.status !== 'starting') return;
      run.reason = `Suricata did not finish starting within ${this.#startTimeoutMs} ms`;
      this.#log.error({ pid: child.pid }, `${run.reason}; stopping it`);
      void this.#terminate(run);
    }, this.#startTimeoutMs);
    this.#scheduleProbe(run, epoch);
  }

  #scheduleProbe(run: Run, epoch: number): void {
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#probeOnce(run, epoch);
    }, this.#probeIntervalMs);
  }

  async #probeOnce(run: Run, epoch: number): Promise<void> {
    const ok = await this.#probe().catch(() => false);
    if (run.ended || this.#run !== run || epoch !== this.#epoch || this.#state.status !== 'starting') return;
    if (!ok) {
      this.#scheduleProbe(run, epoch);
      return;
    }
    this.#clearStartTimers();
    this.#runningSince = Date.now();
    this.#set({ status: 'running', pid: run.child.pid, reason: 'the command socket answers' });
  }

  /** A run ended or could not start: restart after a delay, or give up. */
  #crashed(reason: string): void {
    const now = Date.now();
    if (this.#runningSince !== undefined && now - this.#runningSince >= this.#backoff.resetAfterMs)
      this.#failures = 0;
    this.#runningSince = undefined;
    this.#failures += 1;
    if (this.#failures >= this.#maxFailures) {
      this.#set({
        status: 'failed',
        reason: `${reason}; giving up after ${this.#failures} failures in a row`,
      });
      this.#rejectWaiters(
        new PortcullisError('SURICATA_FAILED', `Suricata failed ${this.#failures} times in a row: ${reason}`),
      );
      return;
    }
    const delay = Math.min(this.#backoff.initialMs * 2 ** (this.#failures - 1), this.#backoff.maxMs);
    this.#set({ status: 'backoff', retryInMs: delay, reason });
    const epoch = this.#epoch;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (epoch === this.#epoch && !this.#shuttingDown) void this.#launch(epoch);
    }, delay);
  }

  /** SIGTERM; SIGKILL after the stop timeout; resolve when the process has exited (or is given up on). */
  async #terminate(run: Run): Promise<void> {
    if (run.ended) return;
    const pid = run.child.pid;
    run.child.kill('SIGTERM');
    if (await exitsWithin(run, this.#stopTimeoutMs)) return;
    this.#log.warn(
      { pid },
      `Suricata did not exit within ${this.#stopTimeoutMs} ms of SIGTERM; sending SIGKILL`,
    );
    run.child.kill('SIGKILL');
    if (!(await exitsWithin(run, KILL_WAIT_MS)))
      this.#log.error({ pid }, `Suricata did not exit ${KILL_WAIT_MS} ms after SIGKILL; giving up on it`);
  }

  /** Stop a Suricata whose pid is in our pid file (a previous run of the service), then remove the file. */
  async #replaceStale(): Promise<void> {
    const { pidFile } = this.#setup;
    const pid = await this.#processes.readPidFile(pidFile);
    if (pid === undefined) return;
    if ((await this.#processes.alive(pid)) && (await this.#processes.isSuricata(pid))) {
      this.#log.warn({ pid, pidFile }, 'a Suricata from a previous run is still running; replacing it');
      this.#processes.signal(pid, 'SIGTERM');
      if (!(await this.#gone(pid, this.#stopTimeoutMs))) {
        this.#log.warn(
          { pid },
          `old Suricata did not exit within ${this.#stopTimeoutMs} ms of SIGTERM; sending SIGKILL`,
        );
        this.#processes.signal(pid, 'SIGKILL');
        if (!(await this.#gone(pid, KILL_WAIT_MS))) {
          throw new PortcullisError(
            'SURICATA_FAILED',
            `the Suricata from a previous run (pid ${pid}, ${pidFile}) does not exit; stop it by hand`,
          );
        }
      }
    } else {
      this.#log.info({ pid, pidFile }, 'removing a stale Suricata pid file');
    }
    // Suricata refuses to start while its pid file names a live process
    await this.#processes.removeFile(pidFile);
  }

  async #gone(pid: number, withinMs: number): Promise<boolean> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      if (!(await this.#processes.alive(pid))) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  #pipe(stream: Readable | null): void {
    if (!stream) return;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (raw) => {
      const line = raw.trim();
      if (!line) return;
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
      if (/^(E|Error|Critical)\b/.test(line)) this.#log.error({ suricata: line }, 'Suricata error');
      else if (/^(W|Warning)\b/.test(line)) this.#log.warn({ suricata: line }, 'Suricata warning');
      else this.#log.debug({ suricata: line }, 'Suricata output');
    });
  }

  #set(change: Omit<SuricataState, 'since' | 'failures'>): void {
    // without undefined fields, so that snapshots compare and serialise cleanly
    const fields = Object.entries({
      ...change,
      since: new Date().toISOString(),
      failures: this.#failures,
    }).filter(([, v]) => v !== undefined);
    const state = Object.freeze(Object.fromEntries(fields)) as unknown as SuricataState;
    this.#state = state;
    const level = state.status === 'backoff' || state.status === 'failed' ? 'error' : 'info';
    this.#log[level](
      {
        status: state.status,
        pid: state.pid,
        failures: state.failures,
        retryInMs: state.retryInMs,
        reason: state.reason,
      },
      `Suricata ${state.status}`,
    );
    this.#events?.emit('suricata.status', this.#state);
    try {
      this.#onStatus?.(this.#state);
    } catch (err) {
      this.#log.error({ err }, 'onStatus listener failed');
    }
    if (state.status === 'running') {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  #rejectWaiters(err: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  #clearStartTimers(): void {
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#probeTimer = undefined;
    this.#startTimer = undefined;
  }

  #clearTimers(): void {
    this.#clearStartTimers();
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
  }
}

/** Whether the run's process exits within `ms`. */
async function exitsWithin(run: Run, ms: number): Promise<boolean> {
  if (run.ended) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([run.exited.then(() => true as const), timedOut]);
  clearTimeout(timer);
  return result;
}
