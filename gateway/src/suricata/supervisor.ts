import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import {
  ChildSupervisor,
  nodeSpawner,
  procPidTable,
  replaceStaleProcess,
  type BackoffOptions,
  type ChildProcessLike,
  type ChildState,
  type ChildStatus,
  type PidTable,
  type AsyncSpawner,
  type Spawner,
  type StopOptions,
} from '../process/supervisor.js';
import { renderSuricataConfig, suricataArgs, type SuricataSetup } from './config.js';
import { commandsInFlight, SuricataControl } from './control.js';
import { SuricataLiveness } from './liveness.js';

export { nodeSpawner, type BackoffOptions, type Spawner, type StopOptions };

/**
 * Runs Suricata (NFQ mode, in the foreground) and keeps it running, with the generic
 * child supervision of process/supervisor.ts: restarts it with capped exponential
 * backoff after a crash, replaces a Suricata left by a previous run of the service, and
 * stops it with SIGTERM, then SIGKILL after a timeout. Every state change is logged and
 * published (`suricata.status` on the event bus, `onStatus`).
 *
 * "Running" means Suricata has finished starting: its unix command socket answers. It
 * creates that socket after the rules are loaded, right before it logs "Engine
 * started" (the socket FILE is no proof: Suricata leaves it behind when it exits).
 */

/** Where the supervisor is. */
export type SuricataStatus = ChildStatus;

/** A snapshot of the supervisor, as published on every change. */
export type SuricataState = ChildState;

declare module '../events.js' {
  interface PortcullisEvents {
    /** The Suricata supervisor changed state. */
    'suricata.status': SuricataState;
  }
}

/** The part of a child process the supervisor uses (node's ChildProcess fits). */
export type SuricataProcess = ChildProcessLike;

/** Processes the supervisor did not start: a Suricata left by a previous run. */
export interface ProcessTable extends PidTable {
  /** Whether `pid` is a Suricata, not another process that got the pid since. */
  isSuricata(pid: number): Promise<boolean>;
  /**
   * The NFQUEUE table as `pid` sees it (/proc/<pid>/net/netfilter/nfnetlink_queue, its
   * network namespace's), for the hang check. Without it, only the command socket is checked.
   */
  readQueues?(pid: number): Promise<string>;
}

/** The real process table: /proc and kill(2). */
export const procProcessTable: ProcessTable = {
  ...procPidTable,
  async isSuricata(pid) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === 'Suricata-Main' || comm === 'suricata') return true;
    const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
    return basename(argv0) === 'suricata';
  },
  readQueues: (pid) => readFile(`/proc/${pid}/net/netfilter/nfnetlink_queue`, 'utf8'),
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

export interface SuricataSupervisorOptions {
  /** The instance to run (config.ts): command line, pid file, command socket. */
  readonly setup: SuricataSetup;
  /** The Suricata binary. Default `suricata` (from PATH). */
  readonly binary?: string;
  /** Default {@link nodeSpawner}; an asynchronous one runs Suricata elsewhere (process/systemd.ts). */
  readonly spawner?: Spawner | AsyncSpawner;
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
  /**
   * While running, how often Suricata is checked for a hang (its command socket does
   * not answer, or packets wait in its queue and none is taken: liveness.ts) and how
   * many failed checks in a row make it hung: then it is killed and restarted. `false`:
   * no checks. Default every 5,000 ms, 6 in a row (a hang is acted on within ~30 s;
   * a Suricata slow to answer on a loaded, emulated machine is not a hung one).
   */
  readonly liveness?: false | { readonly intervalMs?: number; readonly failures?: number };
}

export class SuricataSupervisor {
  readonly #child: ChildSupervisor;

  constructor(options: SuricataSupervisorOptions) {
    const setup = options.setup;
    const binary = options.binary ?? 'suricata';
    const processes = options.processes ?? procProcessTable;
    const prepare = options.prepare ?? writeSuricataFiles;
    const stopTimeoutMs = options.stopTimeoutMs ?? 15_000;
    const control = new SuricataControl({ path: setup.commandSocket, timeoutMs: 2000 });
    const log = (options.log ?? silentLogger).child({ part: 'suricata' });
    const events = options.events;
    const onStatus = options.onStatus;
    const livenessInterval = (options.liveness || undefined)?.intervalMs ?? 5000;
    const liveness =
      options.liveness === false
        ? undefined
        : new SuricataLiveness({
            // an answer that takes most of an interval is no answer
            ping: options.probe ?? (() => control.ping(Math.max(1000, livenessInterval - 1000))),
            busy: () => commandsInFlight(setup.commandSocket).find((c) => c.command !== 'uptime')?.command,
            ...(setup.afPacket || !processes.readQueues
              ? {}
              : { queue: setup.nfq.queue, readQueues: (pid: number) => processes.readQueues!(pid) }),
          });
    this.#child = new ChildSupervisor({
      name: 'Suricata',
      command: binary,
      args: () => suricataArgs(setup),
      spawner: options.spawner ?? nodeSpawner,
      prepare: async () => {
        // Suricata refuses to start while its pid file names a live process
        await replaceStaleProcess({
          pidFile: setup.pidFile,
          isOurs: (pid) => processes.isSuricata(pid),
          name: 'Suricata',
          stopTimeoutMs,
          processes,
          log,
          errorCode: 'SURICATA_FAILED',
        });
        await prepare(setup);
      },
      probe: options.probe ?? (() => control.ping()),
      readyReason: 'the command socket answers',
      probeIntervalMs: options.probeIntervalMs ?? 250,
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
      stopTimeoutMs,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.maxFailures !== undefined ? { maxFailures: options.maxFailures } : {}),
      errorCode: 'SURICATA_FAILED',
      classify: (line) =>
        /^(E|Error|Critical)\b/.test(line) ? 'error' : /^(W|Warning)\b/.test(line) ? 'warn' : 'debug',
      outputKey: 'suricata',
      ...(liveness
        ? {
            liveness: {
              check: (pid: number) => liveness.check(pid),
              intervalMs: livenessInterval,
              failures: (options.liveness || undefined)?.failures ?? 6,
            },
          }
        : {}),
      log,
      onStatus: (state) => {
        events?.emit('suricata.status', state);
        onStatus?.(state);
      },
    });
  }

  /** The current state. */
  status(): SuricataState {
    return this.#child.status();
  }

  /**
   * Start supervising: replace a Suricata left by a previous run, write the config,
   * spawn. Resolves once Suricata is spawned (status `starting`) or, if that failed,
   * a restart is scheduled (`backoff`); see {@link waitUntilRunning}. No-op unless
   * `stopped` or `failed`.
   */
  start(): Promise<void> {
    return this.#child.start();
  }

  /**
   * Stop: no more restarts; SIGTERM, then SIGKILL after `stopTimeoutMs` or at
   * `options.deadline`, whichever is first. Resolves when Suricata has exited (status
   * `stopped`).
   */
  stop(options: StopOptions = {}): Promise<void> {
    return this.#child.stop(options);
  }

  /**
   * Resolve when Suricata is running; reject with SURICATA_FAILED after `timeoutMs`
   * (default: the start timeout), or when the supervisor stops or gives up.
   */
  waitUntilRunning(timeoutMs?: number): Promise<void> {
    return this.#child.waitUntilRunning(timeoutMs);
  }
}
