import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { procPidTable, type AsyncSpawner, type PidTable } from './supervisor.js';
import { SystemdUnitSpawner, type Systemctl } from './systemd.js';

/**
 * How the service runs its long-lived children (Suricata, dnsmasq), from the config's
 * `processes.runner`:
 * - `direct`: it spawns them itself; they run as its user with its capabilities (the
 *   lab, development, the tests);
 * - `systemd`: systemd runs each in its own unit under its own user (the appliance,
 *   appliance/systemd/portcullis-suricata@.service and portcullis-dnsmasq.service); the
 *   service supervises them the same way through systemd.ts.
 */
export type ChildRunner = 'direct' | 'systemd';

/** A Suricata instance: `inline` on the queue, `ids` the passive one on AF_PACKET. */
export type SuricataInstance = 'inline' | 'ids';

/** What a child's supervisor is given: how to start it, and how to find a previous run's. */
export interface ChildLaunch {
  /** Absent: the supervisor's own (node:child_process). */
  readonly spawner?: AsyncSpawner;
  /** Absent: the supervisor's own (pid files, /proc, kill). */
  readonly processes?: PidTable;
}

/**
 * The pid table under systemd: a pid file left by a previous run's child is removed
 * (Suricata 7 refuses to start while one exists, stale or not) but its process is
 * never signalled: it is another user's, and `systemctl restart` replaces it anyway.
 */
export const systemdPidTable: PidTable = {
  ...procPidTable,
  alive: async () => false,
  signal: () => false,
};

/**
 * The NFQUEUE table of the service's own network namespace (the appliance runs
 * everything in one): a Suricata of another user is invisible in /proc to a service
 * with ProtectProc=invisible, its queue is not.
 */
export const readOwnQueues = (): Promise<string> =>
  readFile('/proc/self/net/netfilter/nfnetlink_queue', 'utf8');

export interface ChildRunnersOptions {
  readonly runner: ChildRunner;
  /** The service's data dir: the units' environment files go in `<dataDir>/units/`. */
  readonly dataDir: string;
  /** Default: the real systemctl. */
  readonly systemctl?: Systemctl;
  readonly log?: Logger;
}

/** The unit of a Suricata instance. */
export const suricataUnit = (instance: SuricataInstance): string => `portcullis-suricata@${instance}.service`;
/** The unit of the DHCP server. */
export const DNSMASQ_UNIT = 'portcullis-dnsmasq.service';

/**
 * Spawners and pid tables for each child under `runner`. The units read their command
 * lines from `<dataDir>/units/suricata-<instance>.env` (SURICATA_ARGS) and
 * `<dataDir>/units/dnsmasq.env` (DNSMASQ_ARGS): appliance/systemd/ names the same paths.
 */
export class ChildRunners {
  readonly #o: ChildRunnersOptions;

  constructor(options: ChildRunnersOptions) {
    this.#o = options;
  }

  get runner(): ChildRunner {
    return this.#o.runner;
  }

  /** The folder of the units' environment files. */
  get unitsDir(): string {
    return join(this.#o.dataDir, 'units');
  }

  suricata(instance: SuricataInstance): ChildLaunch {
    if (this.#o.runner === 'direct') return {};
    return {
      spawner: this.#unit(suricataUnit(instance), `suricata-${instance}.env`, 'SURICATA_ARGS'),
      processes: systemdPidTable,
    };
  }

  dnsmasq(): ChildLaunch {
    if (this.#o.runner === 'direct') return {};
    return {
      spawner: this.#unit(DNSMASQ_UNIT, 'dnsmasq.env', 'DNSMASQ_ARGS'),
      processes: systemdPidTable,
    };
  }

  #unit(unit: string, file: string, variable: string): SystemdUnitSpawner {
    return new SystemdUnitSpawner({
      unit,
      envFile: join(this.unitsDir, file),
      variable,
      ...(this.#o.systemctl ? { systemctl: this.#o.systemctl } : {}),
      log: (this.#o.log ?? silentLogger).child({ unit }),
    });
  }
}
