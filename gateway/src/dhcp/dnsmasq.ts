import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Counter, type Registry } from 'prom-client';
import { PortcullisError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Vm } from '../policy/model.js';
import { inIpv4Range, ipv4ToInt, parseIpv4Range } from '../policy/net.js';
import {
  ChildSupervisor,
  processComm,
  procPidTable,
  replaceStaleProcess,
  type AsyncSpawner,
  type BackoffOptions,
  type ChildState,
  type PidTable,
  type Spawner,
  type StopOptions,
} from '../process/supervisor.js';
import { leasesToReclaim } from './reclaim.js';

declare module '../events.js' {
  interface PortcullisEvents {
    /** The DHCP server's dnsmasq changed state (its supervisor's status). */
    'dhcp.status': ChildState;
  }
}

export interface DhcpOptions {
  /** Interface facing the guests. */
  readonly iface: string;
  /** The appliance's LAN address: router and DNS server for the guests. */
  readonly gateway: string;
  /** LAN prefix length. */
  readonly prefix: number;
  /** Lease time, dnsmasq syntax (`12h`). */
  readonly leaseTime: string;
  /** Folder for the hosts file, lease file and pid file. */
  readonly dir: string;
  readonly log?: Logger;
  /** Pool for unknown MACs (`first-last`); absent: unknown MACs get no lease. */
  readonly unassignedRange?: string;
  /**
   * Lease time in the unknown-device pool, dnsmasq syntax (at least `2m`). Short, so
   * that addresses taken by devices that went away (or by a guest inventing MACs) come
   * back soon. Default `10m`.
   */
  readonly unassignedLeaseTime?: string;
  /**
   * How often the unknown-device pool is checked, ms: when unknown devices hold all of it,
   * the oldest lease is given back so that a new device still gets an address. 0: never.
   * Default 5,000.
   */
  readonly reclaimIntervalMs?: number;
  /**
   * Gives a lease back to dnsmasq. Default: `dhcp_release <iface> <ipv4> <mac>` (Debian's
   * dnsmasq-utils), a DHCPRELEASE on the device's behalf, as OpenStack does with dnsmasq.
   */
  readonly release?: (iface: string, ipv4: string, mac: string) => Promise<void>;
  /** Where `portcullis_dhcp_leases_reclaimed_total{result}` is registered. Default: none. */
  readonly registry?: Registry;
  /** The dnsmasq binary. Default `dnsmasq`. */
  readonly binary?: string;
  /** Where `dhcp.status` is published on every state change of dnsmasq. */
  readonly events?: EventBus;
  /** Restarts after a crash. Default: 1 s doubling up to 30 s, reset after 60 s up. */
  readonly backoff?: BackoffOptions;
  /** SIGTERM to SIGKILL, ms. Default 5,000 (dnsmasq exits at once on SIGTERM). */
  readonly stopTimeoutMs?: number;
  /** A dnsmasq that is still up this many ms after it was spawned is running. Default 300. */
  readonly settleMs?: number;
  /** Default: node:child_process; an asynchronous one runs dnsmasq elsewhere (process/systemd.ts). */
  readonly spawner?: Spawner | AsyncSpawner;
  /** Pid files and signals for replacing a dnsmasq of a previous run. Default {@link procDnsmasqTable}. */
  readonly processes?: DnsmasqProcessTable;
}

/** Processes the server did not start: a dnsmasq left by a previous run. */
export interface DnsmasqProcessTable extends PidTable {
  /** Whether `pid` is a dnsmasq, not another process that got the pid since. */
  isDnsmasq(pid: number): Promise<boolean>;
}

/** The real process table: pid files, /proc and kill(2). */
export const procDnsmasqTable: DnsmasqProcessTable = {
  ...procPidTable,
  isDnsmasq: async (pid) => (await processComm(pid)) === 'dnsmasq',
};

function netmask(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [(m >>> 24) & 255, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.');
}

function network(gateway: string, prefix: number): string {
  const p = gateway.split('.').map(Number);
  const n =
    (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0) &
    (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * DHCP for the guests: dnsmasq in DHCP-only mode (`--port=0`), static leases only,
 * one per registered VM (MAC → IPv4). The hosts file is rewritten and dnsmasq
 * re-reads it on SIGHUP when the VMs change. dnsmasq is supervised like every child
 * (process/supervisor.ts): restarted with capped backoff when it dies, SIGTERM then
 * SIGKILL on stop, every state change published as `dhcp.status`. A dnsmasq left by a
 * previous run of the service (after a crash) is replaced at start.
 */
export class DhcpServer {
  readonly #o: DhcpOptions;
  readonly #log: Logger;
  readonly #supervisor: ChildSupervisor;
  /** While start() waits for the first outcome: told every state. */
  #onStart: ((state: ChildState) => void) | undefined;
  #vms: readonly Vm[] = [];
  #reclaimTimer: NodeJS.Timeout | undefined;
  #reclaiming = false;
  /** Leases given back lately (ip → ms), not given back again until dnsmasq has written its file. */
  readonly #released = new Map<string, number>();
  readonly #reclaimed: Counter<'result'> | undefined;

  constructor(options: DhcpOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#reclaimed = options.registry
      ? new Counter({
          name: 'portcullis_dhcp_leases_reclaimed_total',
          help: 'Leases of the unknown-device pool given back because it was full (oldest first), by result',
          labelNames: ['result'],
          registers: [options.registry],
        })
      : undefined;
    for (const result of ['ok', 'failed']) this.#reclaimed?.inc({ result }, 0);
    const stopTimeoutMs = options.stopTimeoutMs ?? 5000;
    const processes = options.processes ?? procDnsmasqTable;
    this.#supervisor = new ChildSupervisor({
      name: 'dnsmasq (DHCP)',
      command: options.binary ?? 'dnsmasq',
      args: () => this.#args(),
      ...(options.spawner ? { spawner: options.spawner } : {}),
      prepare: async () => {
        await replaceStaleProcess({
          pidFile: this.#pidFile,
          isOurs: (pid) => processes.isDnsmasq(pid),
          name: 'dnsmasq (DHCP)',
          stopTimeoutMs,
          processes,
          log: this.#log,
        });
        // a restart serves the VMs of now
        this.#writeHosts(this.#vms);
      },
      probeIntervalMs: options.settleMs ?? 300,
      readyReason: 'serving',
      stopTimeoutMs,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      errorCode: 'SPAWN_FAILED',
      classify: (_line, stream) => (stream === 'stderr' ? 'info' : 'debug'),
      outputKey: 'dnsmasq',
      log: this.#log,
      onStatus: (state) => {
        options.events?.emit('dhcp.status', state);
        this.#onStart?.(state);
      },
    });
  }

  get #hostsFile(): string {
    return join(this.#o.dir, 'dhcp-hosts');
  }

  get #pidFile(): string {
    return join(this.#o.dir, 'dnsmasq-dhcp.pid');
  }

  /** The state of dnsmasq's supervisor. */
  status(): ChildState {
    return this.#supervisor.status();
  }

  /** Write the static leases; signal dnsmasq to re-read them when it runs. */
  setVms(vms: readonly Vm[]): void {
    this.#vms = vms;
    this.#writeHosts(vms);
    this.#supervisor.signal('SIGHUP');
  }

  #writeHosts(vms: readonly Vm[]): void {
    mkdirSync(this.#o.dir, { recursive: true });
    const lines = vms.map((vm) => `${vm.mac.toLowerCase()},${vm.ipv4},${vm.name}`);
    const tmp = `${this.#hostsFile}.tmp`;
    writeFileSync(tmp, lines.join('\n') + '\n');
    renameSync(tmp, this.#hostsFile);
  }

  #args(): string[] {
    const o = this.#o;
    return [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--port=0',
      `--interface=${o.iface}`,
      '--bind-interfaces',
      `--dhcp-range=${network(o.gateway, o.prefix)},static,${netmask(o.prefix)},${o.leaseTime}`,
      ...(o.unassignedRange
        ? [
            `--dhcp-range=${o.unassignedRange.replace('-', ',')},${netmask(o.prefix)},${o.unassignedLeaseTime ?? '10m'}`,
          ]
        : []),
      `--dhcp-hostsfile=${this.#hostsFile}`,
      `--dhcp-option=option:router,${o.gateway}`,
      `--dhcp-option=option:dns-server,${o.gateway}`,
      `--dhcp-leasefile=${join(o.dir, 'dnsmasq.leases')}`,
      '--dhcp-authoritative',
      `--pid-file=${this.#pidFile}`,
      '--log-facility=-',
      '--user=root',
    ];
  }

  /**
   * Start dnsmasq with the static leases of `vms`. Resolves once it is up (still alive
   * `settleMs` after the spawn); from then on it is restarted whenever it dies. Rejects
   * with SPAWN_FAILED, and stops supervising, when the first run fails (no dnsmasq,
   * the interface is missing, the port is taken): that is a setup error, not a crash.
   */
  async start(vms: readonly Vm[]): Promise<void> {
    this.#vms = vms;
    this.#writeHosts(vms);
    const first = new Promise<ChildState>((resolve) => {
      this.#onStart = (state) => {
        if (state.status === 'running' || state.status === 'backoff' || state.status === 'failed')
          resolve(state);
      };
    });
    try {
      await this.#supervisor.start();
      const state = await first;
      if (state.status !== 'running') {
        await this.#supervisor.stop();
        const reason = state.reason ?? state.status;
        throw new PortcullisError(
          'SPAWN_FAILED',
          /ENOENT/.test(reason)
            ? `cannot start dnsmasq for DHCP: install dnsmasq-base (${reason})`
            : `dnsmasq (DHCP) failed at start: ${reason}; see the log above`,
          { context: { status: state } },
        );
      }
    } finally {
      this.#onStart = undefined;
    }
    this.#log.info({ iface: this.#o.iface, leases: vms.length }, 'DHCP serving static leases');
    const every = this.#o.reclaimIntervalMs ?? 5000;
    if (this.#o.unassignedRange && every > 0) {
      this.#reclaimTimer = setInterval(() => void this.reclaim(), every);
      this.#reclaimTimer.unref();
    }
  }

  /**
   * Keep one address of the unknown-device pool free: when unknown devices hold all of
   * it, give back the oldest leases (see leasesToReclaim). A device whose lease was given
   * back gets a new address, if one is free, when it renews. Resolves with what was given
   * back; a failure is logged and counted, never thrown.
   */
  async reclaim(): Promise<Array<{ mac: string; ipv4: string }>> {
    const range = this.#o.unassignedRange;
    if (!range || this.#reclaiming) return [];
    this.#reclaiming = true;
    try {
      const pool = parseIpv4Range(range);
      const size = ipv4ToInt(pool.to) - ipv4ToInt(pool.from) + 1;
      const now = Date.now();
      for (const [ip, at] of this.#released) if (now - at > 30_000) this.#released.delete(ip);
      const known = new Set(this.#vms.map((vm) => vm.mac.toLowerCase()));
      const leases = this.unassignedLeases(known).filter((l) => inIpv4Range(l.ipv4, pool));
      // a lease given back lately is free, though dnsmasq may not have rewritten its file yet
      const victims = leasesToReclaim(
        leases.filter((l) => !this.#released.has(l.ipv4)),
        size,
      );
      const release = this.#o.release ?? releaseWithDhcpRelease;
      const done: Array<{ mac: string; ipv4: string }> = [];
      for (const l of victims) {
        try {
          await release(this.#o.iface, l.ipv4, l.mac);
          this.#released.set(l.ipv4, now);
          this.#reclaimed?.inc({ result: 'ok' });
          done.push({ mac: l.mac, ipv4: l.ipv4 });
          this.#log.info(
            { mac: l.mac, ipv4: l.ipv4, expires: l.expires, pool: range },
            'the unknown-device pool is full: gave back its oldest lease',
          );
        } catch (error) {
          this.#reclaimed?.inc({ result: 'failed' });
          this.#log.warn(
            { err: error, mac: l.mac, ipv4: l.ipv4 },
            'cannot give back a lease of the full unknown-device pool: is dnsmasq-utils (dhcp_release) installed?',
          );
        }
      }
      return done;
    } finally {
      this.#reclaiming = false;
    }
  }

  /** Current leases of MACs that are not registered VMs (unknown devices). */
  unassignedLeases(
    known: ReadonlySet<string>,
  ): Array<{ mac: string; ipv4: string; hostname?: string; expires: string }> {
    let text: string;
    try {
      text = readFileSync(join(this.#o.dir, 'dnsmasq.leases'), 'utf8');
    } catch {
      return [];
    }
    const out: Array<{ mac: string; ipv4: string; hostname?: string; expires: string }> = [];
    for (const line of text.split('\n')) {
      const [expiry, mac, ip, host] = line.trim().split(/\s+/);
      if (!expiry || !mac || !ip || known.has(mac.toLowerCase())) continue;
      out.push({
        mac: mac.toLowerCase(),
        ipv4: ip,
        ...(host && host !== '*' ? { hostname: host } : {}),
        expires: new Date(Number(expiry) * 1000).toISOString(),
      });
    }
    return out;
  }

  /**
   * Stop dnsmasq: SIGTERM, SIGKILL after `stopTimeoutMs` or at `options.deadline`
   * (the service's shutdown budget), whichever is first. Resolves once it has exited.
   */
  stop(options: StopOptions = {}): Promise<void> {
    clearInterval(this.#reclaimTimer);
    this.#reclaimTimer = undefined;
    return this.#supervisor.stop(options);
  }
}

const execFileAsync = promisify(execFile);

/** Give a lease back through `dhcp_release` (dnsmasq-utils): a DHCPRELEASE on the device's behalf. */
async function releaseWithDhcpRelease(iface: string, ipv4: string, mac: string): Promise<void> {
  await execFileAsync('dhcp_release', [iface, ipv4, mac], { timeout: 5000 });
}
