import { spawn as nodeSpawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { PortcullisError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';

/**
 * Supervision of one long-running child process (Suricata, dnsmasq), the same way for
 * every child: restart with capped exponential backoff after a crash, SIGTERM then
 * SIGKILL on stop, a status union, and every state change logged and handed to
 * `onStatus` (the owner publishes it on the event bus).
 *
 * "Running" means the child has finished starting: `probe` resolved true. Without a
 * probe, a child that is still alive at the first probe (after `probeIntervalMs`) is
 * running.
 */

/** Where a supervisor is. */
export type ChildStatus = 'stopped' | 'starting' | 'running' | 'backoff' | 'failed';

/** A snapshot of a supervisor, as handed to `onStatus` on every change. Frozen. */
export interface ChildState {
  readonly status: ChildStatus;
  /** Pid of the current process (starting, running). */
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

/** The part of a child process the supervisor uses (node's ChildProcess fits). */
export interface ChildProcessLike {
  readonly pid?: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  kill(signal: NodeJS.Signals): boolean;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

/** Starts processes. */
export interface Spawner {
  spawn(command: string, args: readonly string[]): ChildProcessLike;
}

/**
 * Starts processes through someone else (systemd: see systemd.ts), so the process comes
 * later; a rejection counts as a failed run. A supervisor takes either kind.
 */
export interface AsyncSpawner {
  spawn(command: string, args: readonly string[]): Promise<ChildProcessLike>;
}

/** The real spawner: node:child_process, stdin closed, stdout and stderr piped. */
export const nodeSpawner: Spawner = {
  spawn: (command, args) => nodeSpawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
};

/** Capped exponential backoff between restarts. */
export interface BackoffOptions {
  /** Delay before the first restart, ms. Default 1,000. */
  readonly initialMs?: number;
  /** Longest delay, ms; each failure in a row doubles the delay up to this. Default 30,000. */
  readonly maxMs?: number;
  /** A run that stayed up this long (ms) resets the delay to `initialMs`. Default 60,000. */
  readonly resetAfterMs?: number;
}

/** How a line of the child's output is logged. */
export type OutputLevel = 'error' | 'warn' | 'info' | 'debug';

export interface ChildSupervisorOptions {
  /** The child's name in messages and logs, e.g. `Suricata`, `dnsmasq (DHCP)`. */
  readonly name: string;
  /** The binary (a path, or a name looked up on PATH). */
  readonly command: string;
  /** The arguments; called before every start. */
  readonly args: () => readonly string[];
  /** Default {@link nodeSpawner}. */
  readonly spawner?: Spawner | AsyncSpawner;
  /** Runs before every start (write config, replace a stale process). A rejection counts as a failed run. */
  readonly prepare?: () => Promise<void>;
  /** Resolves true once the child has finished starting. Default: alive at the first probe. */
  readonly probe?: () => Promise<boolean>;
  /** What `running` is explained with. Default `started`. */
  readonly readyReason?: string;
  /** Between two probes while starting, ms. Default 250. */
  readonly probeIntervalMs?: number;
  /** A start that is not running after this many ms is killed and counts as a crash. Default 120,000. */
  readonly startTimeoutMs?: number;
  /** SIGTERM to SIGKILL, ms. Default 15,000. A stop deadline ({@link StopOptions}) can shorten it. */
  readonly stopTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  /** Failed runs in a row after which the supervisor gives up (status `failed`). Default: never. */
  readonly maxFailures?: number;
  /** The code of errors from `waitUntilRunning`. Default `SPAWN_FAILED`. */
  readonly errorCode?: ErrorCode;
  /** The log level of one output line; default `info` for stderr, `debug` for stdout. */
  readonly classify?: (line: string, stream: 'stdout' | 'stderr') => OutputLevel;
  /** The log field an output line goes in. Default `output`. */
  readonly outputKey?: string;
  readonly log?: Logger;
  /** Called with every new state (after logging it). A throwing listener is logged. */
  readonly onStatus?: (state: ChildState) => void;
  /** While running: is the child working, not just alive? A hung child is killed and restarted. */
  readonly liveness?: LivenessOptions;
}

/**
 * The check of a running child that is alive but may be hung (stopped, deadlocked):
 * `check` runs every `intervalMs`; after `failures` failed checks in a row the child is
 * killed with SIGKILL (a stopped process acts on nothing else) and restarted like after
 * a crash, with the check's words as the reason.
 */
export interface LivenessOptions {
  /**
   * Resolves undefined while the child works, or why it does not (`the command socket
   * does not answer`). A rejection or a check that takes longer than `intervalMs` fails.
   */
  readonly check: (pid: number) => Promise<string | undefined>;
  /** Between two checks, ms. Default 5,000. */
  readonly intervalMs?: number;
  /** Failed checks in a row that make the child hung. Default 3. */
  readonly failures?: number;
}

/** How to stop. */
export interface StopOptions {
  /**
   * When (ms since the epoch, `Date.now()`) the child must be gone: SIGKILL then at the
   * latest, even if `stopTimeoutMs` has not passed. Children stopped with the same
   * deadline share one shutdown budget. Default: no deadline.
   */
  readonly deadline?: number;
}

/**
 * The service's shutdown budget for its children, ms: `App.stop()` gives every child it
 * supervises (Suricata, the passive IDS Suricata, dnsmasq) together at most this long,
 * counted from the start of the stop, to exit on SIGTERM; whatever is still running
 * then gets SIGKILL. 8 s: Suricata needs ~3 s to drain, and `portcullis serve` exits
 * anyway 10 s after SIGTERM (systemd's TimeoutStopSec is 30 s).
 */
export const SHUTDOWN_BUDGET_MS = 8000;

/** After SIGKILL, how long to wait for the exit before giving up on a process, ms. */
const KILL_WAIT_MS = 5000;
/** Output lines kept to explain a crash. */
const TAIL_LINES = 20;
/** Output lines that explain a crash best. */
const ERROR_LINE = /^(E|Error|Critical|dnsmasq: failed|dnsmasq: cannot)\b/i;

/** One process and what the supervisor knows about it. */
interface Run {
  readonly child: ChildProcessLike;
  ended: boolean;
  readonly exited: Promise<void>;
  /** Replaces the exit description (a start timeout is not "killed by SIGTERM"). */
  reason?: string;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** Keeps one child process running; see the top of this file. */
export class ChildSupervisor {
  readonly #name: string;
  readonly #command: string;
  readonly #args: () => readonly string[];
  readonly #spawner: Spawner | AsyncSpawner;
  readonly #prepare: () => Promise<void>;
  readonly #probe: () => Promise<boolean>;
  readonly #readyReason: string;
  readonly #probeIntervalMs: number;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #maxFailures: number;
  readonly #errorCode: ErrorCode;
  readonly #classify: (line: string, stream: 'stdout' | 'stderr') => OutputLevel;
  readonly #outputKey: string;
  readonly #log: Logger;
  readonly #onStatus: ((state: ChildState) => void) | undefined;
  readonly #liveness: Required<LivenessOptions> | undefined;

  #state: ChildState = Object.freeze({ status: 'stopped', since: new Date().toISOString(), failures: 0 });
  #run: Run | undefined;
  #shuttingDown = false;
  /** Bumped by start() and stop(): async work of an older epoch stops where it is. */
  #epoch = 0;
  #failures = 0;
  #runningSince: number | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #startTimer: NodeJS.Timeout | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #tail: string[] = [];
  #waiters: Waiter[] = [];
  /** A spawn in progress; resolves once its run is registered (never rejects). */
  #spawning: Promise<void> | undefined;

  constructor(options: ChildSupervisorOptions) {
    this.#name = options.name;
    this.#command = options.command;
    this.#args = options.args;
    this.#spawner = options.spawner ?? nodeSpawner;
    this.#prepare = options.prepare ?? (async () => undefined);
    this.#probe = options.probe ?? (async () => true);
    this.#readyReason = options.readyReason ?? 'started';
    this.#probeIntervalMs = options.probeIntervalMs ?? 250;
    this.#startTimeoutMs = options.startTimeoutMs ?? 120_000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 15_000;
    this.#backoff = {
      initialMs: options.backoff?.initialMs ?? 1000,
      maxMs: options.backoff?.maxMs ?? 30_000,
      resetAfterMs: options.backoff?.resetAfterMs ?? 60_000,
    };
    this.#maxFailures = options.maxFailures ?? Number.POSITIVE_INFINITY;
    this.#errorCode = options.errorCode ?? 'SPAWN_FAILED';
    this.#classify = options.classify ?? ((_line, stream) => (stream === 'stderr' ? 'info' : 'debug'));
    this.#outputKey = options.outputKey ?? 'output';
    this.#log = options.log ?? silentLogger;
    this.#onStatus = options.onStatus;
    this.#liveness = options.liveness
      ? {
          check: options.liveness.check,
          intervalMs: options.liveness.intervalMs ?? 5000,
          failures: options.liveness.failures ?? 3,
        }
      : undefined;
  }

  /** The current state. */
  status(): ChildState {
    return this.#state;
  }

  /** True from `stop()` until the next `start()`: exits are expected, nothing restarts. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Start supervising: prepare, spawn. Resolves once the child is spawned (status
   * `starting`) or, if that failed, a restart is scheduled (`backoff`); see
   * {@link waitUntilRunning}. No-op unless `stopped` or `failed`.
   */
  async start(): Promise<void> {
    if (this.#state.status !== 'stopped' && this.#state.status !== 'failed') return;
    this.#shuttingDown = false;
    this.#failures = 0;
    const epoch = ++this.#epoch;
    await this.#launch(epoch);
  }

  /**
   * Stop: no more restarts; SIGTERM, then SIGKILL after `stopTimeoutMs` or at the
   * deadline, whichever comes first. Resolves when the child has exited (status `stopped`).
   */
  async stop(options: StopOptions = {}): Promise<void> {
    this.#shuttingDown = true;
    this.#epoch += 1;
    this.#clearTimers();
    await this.#spawning;
    const run = this.#run;
    if (run) await this.#terminate(run, options.deadline);
    this.#rejectWaiters(new PortcullisError(this.#errorCode, `the ${this.#name} supervisor was stopped`));
    if (this.#state.status !== 'stopped') this.#set({ status: 'stopped', reason: 'stopped' });
  }

  /** Send `signal` to the current process (e.g. SIGHUP to re-read files); false when none runs. */
  signal(signal: NodeJS.Signals): boolean {
    const run = this.#run;
    if (!run || run.ended || run.child.pid === undefined) return false;
    return run.child.kill(signal);
  }

  /**
   * Resolve when the child is running; reject (with `errorCode`) after `timeoutMs`
   * (default: the start timeout), or when the supervisor stops or gives up.
   */
  waitUntilRunning(timeoutMs = this.#startTimeoutMs): Promise<void> {
    const describe = (): string =>
      `${this.#state.status}${this.#state.reason ? `: ${this.#state.reason}` : ''}`;
    if (this.#state.status === 'running') return Promise.resolve();
    if (this.#state.status === 'stopped' || this.#state.status === 'failed') {
      return Promise.reject(new PortcullisError(this.#errorCode, `${this.#name} is ${describe()}`));
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new PortcullisError(
            this.#errorCode,
            `${this.#name} is not running after ${timeoutMs} ms (status ${describe()})`,
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
      await this.#prepare();
      if (epoch !== this.#epoch) return;
    } catch (err) {
      if (epoch === this.#epoch) this.#crashed(`cannot start ${this.#name}: ${(err as Error).message}`);
      return;
    }
    const args = this.#args();
    let child: ChildProcessLike;
    // stop() waits until an asynchronous spawn has its run registered, then stops it
    let spawned!: () => void;
    this.#spawning = new Promise<void>((resolve) => (spawned = resolve));
    try {
      const started = this.#spawner.spawn(this.#command, args);
      child = started instanceof Promise ? await started : started;
    } catch (err) {
      this.#spawning = undefined;
      spawned();
      if (epoch === this.#epoch) this.#crashed(`cannot run ${this.#command}: ${(err as Error).message}`);
      return;
    }
    let markExited!: () => void;
    const run: Run = { child, ended: false, exited: new Promise<void>((resolve) => (markExited = resolve)) };
    this.#run = run;
    this.#tail = [];
    this.#pipe(child.stdout, 'stdout');
    this.#pipe(child.stderr, 'stderr');
    const end = (what: string): void => {
      if (run.ended) return;
      run.ended = true;
      markExited();
      if (this.#run === run) this.#run = undefined;
      this.#clearStartTimers();
      if (this.#livenessTimer) clearTimeout(this.#livenessTimer);
      this.#livenessTimer = undefined;
      if (this.#shuttingDown || epoch !== this.#epoch) return;
      const last = this.#tail.filter((l) => ERROR_LINE.test(l)).at(-1) ?? this.#tail.at(-1);
      this.#crashed(`${run.reason ?? `${this.#name} ${what}`}${last ? ` (last output: ${last})` : ''}`);
    };
    this.#spawning = undefined;
    spawned();
    child.on('exit', (code, signal) => end(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    child.on('error', (err) => {
      // spawn failures (ENOENT, EACCES) come as 'error' without 'exit'
      if (child.pid === undefined) end(`could not be run (${this.#command}): ${err.message}`);
      else this.#log.warn({ err }, `${this.#name} process error`);
    });
    if (child.pid === undefined) return; // the 'error' event follows
    if (epoch !== this.#epoch) return; // stopped while an asynchronous spawn ran: stop() ends it
    this.#set({ status: 'starting', pid: child.pid, reason: `spawned: ${this.#command} ${args.join(' ')}` });
    this.#startTimer = setTimeout(() => {
      this.#startTimer = undefined;
      if (run.ended || this.#state.status !== 'starting') return;
      run.reason = `${this.#name} did not finish starting within ${this.#startTimeoutMs} ms`;
      this.#log.error({ pid: child.pid }, `${run.reason}; stopping it`);
      void this.#terminate(run, undefined);
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
    this.#set({ status: 'running', pid: run.child.pid, reason: this.#readyReason });
    this.#watch(run, epoch, 0);
  }

  /** While `run` is running: check it every interval; kill it when hung. */
  #watch(run: Run, epoch: number, failed: number): void {
    const liveness = this.#liveness;
    const pid = run.child.pid;
    if (!liveness || pid === undefined) return;
    this.#livenessTimer = setTimeout(() => {
      this.#livenessTimer = undefined;
      void this.#checkOnce(liveness, run, pid, epoch, failed);
    }, liveness.intervalMs);
  }

  async #checkOnce(
    liveness: Required<LivenessOptions>,
    run: Run,
    pid: number,
    epoch: number,
    failed: number,
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the check did not finish within ${liveness.intervalMs} ms`),
        liveness.intervalMs,
      );
    });
    const why = await Promise.race([
      liveness.check(pid).catch((err: unknown) => `the check failed: ${(err as Error).message}`),
      late,
    ]);
    clearTimeout(timer);
    if (run.ended || this.#run !== run || epoch !== this.#epoch || this.#state.status !== 'running') return;
    if (why === undefined) {
      if (failed > 0) this.#log.info({ pid }, `${this.#name} works again`);
      this.#watch(run, epoch, 0);
      return;
    }
    const count = failed + 1;
    if (count < liveness.failures) {
      this.#log.warn({ pid, failed: count, of: liveness.failures }, `${this.#name} check failed: ${why}`);
      this.#watch(run, epoch, count);
      return;
    }
    run.reason = `${this.#name} is hung (${why}; ${count} checks in a row, ${liveness.intervalMs} ms apart)`;
    this.#log.error({ pid }, `${run.reason}; killing it (SIGKILL) to restart it`);
    run.child.kill('SIGKILL');
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
        new PortcullisError(
          this.#errorCode,
          `${this.#name} failed ${this.#failures} times in a row: ${reason}`,
        ),
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

  /** SIGTERM; SIGKILL after the stop timeout or at the deadline; resolve when the process has exited (or is given up on). */
  async #terminate(run: Run, deadline: number | undefined): Promise<void> {
    if (run.ended) return;
    const pid = run.child.pid;
    const graceMs =
      deadline === undefined
        ? this.#stopTimeoutMs
        : Math.max(0, Math.min(this.#stopTimeoutMs, deadline - Date.now()));
    if (graceMs > 0) {
      run.child.kill('SIGTERM');
      if (await exitsWithin(run, graceMs)) return;
      this.#log.warn(
        { pid },
        `${this.#name} did not exit within ${graceMs} ms of SIGTERM${graceMs < this.#stopTimeoutMs ? ' (the shutdown budget)' : ''}; sending SIGKILL`,
      );
    } else {
      this.#log.warn({ pid }, `the shutdown budget is spent; sending ${this.#name} SIGKILL`);
    }
    run.child.kill('SIGKILL');
    if (!(await exitsWithin(run, KILL_WAIT_MS)))
      this.#log.error(
        { pid },
        `${this.#name} did not exit ${KILL_WAIT_MS} ms after SIGKILL; giving up on it`,
      );
  }

  #pipe(stream: Readable | null, which: 'stdout' | 'stderr'): void {
    if (!stream) return;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (raw) => {
      const line = raw.trim();
      if (!line) return;
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
      const level = this.#classify(line, which);
      const what = level === 'error' ? 'error' : level === 'warn' ? 'warning' : 'output';
      this.#log[level]({ [this.#outputKey]: line }, `${this.#name} ${what}`);
    });
  }

  #set(change: Omit<ChildState, 'since' | 'failures'>): void {
    // without undefined fields, so that snapshots compare and serialise cleanly
    const fields = Object.entries({
      ...change,
      since: new Date().toISOString(),
      failures: this.#failures,
    }).filter(([, v]) => v !== undefined);
    const state = Object.freeze(Object.fromEntries(fields)) as unknown as ChildState;
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
      `${this.#name} ${state.status}`,
    );
    try {
      this.#onStatus?.(state);
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
    if (this.#livenessTimer) clearTimeout(this.#livenessTimer);
    this.#livenessTimer = undefined;
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

/** Processes a supervisor did not start: one left by a previous run of the service. */
export interface PidTable {
  /** The pid in a pid file; undefined when there is no file or no pid in it. */
  readPidFile(path: string): Promise<number | undefined>;
  /** Remove a file; no error when it is gone already. */
  removeFile(path: string): Promise<void>;
  /** Whether `pid` is a live process (not a zombie). */
  alive(pid: number): Promise<boolean>;
  /** Send a signal; false when there is no such process. */
  signal(pid: number, signal: NodeJS.Signals): boolean;
}

/** The real pid table: pid files, /proc and kill(2). */
export const procPidTable: PidTable = {
  async readPidFile(path) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new PortcullisError('SPAWN_FAILED', `cannot read pid file ${path}: ${(err as Error).message}`, {
        cause: err,
      });
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
  signal(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
};

/** The short command name of a process (`/proc/<pid>/comm`); empty when it is gone. */
export async function processComm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

export interface ReplaceStaleOptions {
  /** The pid file the previous run's process wrote. */
  readonly pidFile: string;
  /** Whether `pid` is our kind of process, not another one that got the pid since. */
  readonly isOurs: (pid: number) => Promise<boolean>;
  /** The process's name in messages. */
  readonly name: string;
  /** SIGTERM to SIGKILL, ms. */
  readonly stopTimeoutMs: number;
  readonly processes?: PidTable;
  readonly log?: Logger;
  /** The code of the error when the process does not go. Default `SPAWN_FAILED`. */
  readonly errorCode?: ErrorCode;
}

/**
 * Stop a process whose pid is in `pidFile` (a previous run of the service, after a
 * crash) if it is ours and alive: SIGTERM, SIGKILL after `stopTimeoutMs`; then remove
 * the pid file. Rejects when the process survives SIGKILL.
 */
export async function replaceStaleProcess(options: ReplaceStaleOptions): Promise<void> {
  const { pidFile, name } = options;
  const processes = options.processes ?? procPidTable;
  const log = options.log ?? silentLogger;
  const pid = await processes.readPidFile(pidFile);
  if (pid === undefined) return;
  if ((await processes.alive(pid)) && (await options.isOurs(pid))) {
    log.warn({ pid, pidFile }, `a ${name} from a previous run is still running; replacing it`);
    processes.signal(pid, 'SIGTERM');
    if (!(await gone(processes, pid, options.stopTimeoutMs))) {
      log.warn(
        { pid },
        `old ${name} did not exit within ${options.stopTimeoutMs} ms of SIGTERM; sending SIGKILL`,
      );
      processes.signal(pid, 'SIGKILL');
      if (!(await gone(processes, pid, KILL_WAIT_MS))) {
        throw new PortcullisError(
          options.errorCode ?? 'SPAWN_FAILED',
          `the ${name} from a previous run (pid ${pid}, ${pidFile}) does not exit; stop it by hand`,
        );
      }
    }
  } else {
    log.info({ pid, pidFile }, `removing a stale ${name} pid file`);
  }
  // a daemon may refuse to start while its pid file names a live process
  await processes.removeFile(pidFile);
}

async function gone(processes: PidTable, pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (!(await processes.alive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
