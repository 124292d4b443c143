import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Vm } from '../policy/model.js';

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
  /** The dnsmasq binary. Default `dnsmasq`. */
  readonly binary?: string;
}

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
 * re-reads it on SIGHUP when the VMs change. A dnsmasq left by a previous run of the
 * service (after a crash) is replaced at start.
 */
export class DhcpServer {
  readonly #o: DhcpOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #stopping = false;

  constructor(options: DhcpOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  get #hostsFile(): string {
    return join(this.#o.dir, 'dhcp-hosts');
  }

  get #pidFile(): string {
    return join(this.#o.dir, 'dnsmasq-dhcp.pid');
  }

  /** Write the static leases; signal dnsmasq to re-read them when it runs. */
  setVms(vms: readonly Vm[]): void {
    mkdirSync(this.#o.dir, { recursive: true });
    const lines = vms.map((vm) => `${vm.mac.toLowerCase()},${vm.ipv4},${vm.name}`);
    const tmp = `${this.#hostsFile}.tmp`;
    writeFileSync(tmp, lines.join('\n') + '\n');
    renameSync(tmp, this.#hostsFile);
    if (this.#child?.pid) this.#child.kill('SIGHUP');
  }

  async start(vms: readonly Vm[]): Promise<void> {
    this.#stopping = false;
    this.#killLeftover();
    this.setVms(vms);
    const o = this.#o;
    const args = [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--port=0',
      `--interface=${o.iface}`,
      '--bind-interfaces',
      `--dhcp-range=${network(o.gateway, o.prefix)},static,${netmask(o.prefix)},${o.leaseTime}`,
      ...(o.unassignedRange
        ? [`--dhcp-range=${o.unassignedRange.replace('-', ',')},${netmask(o.prefix)},1h`]
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
    const child = spawn(o.binary ?? 'dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout?.on('data', (b: Buffer) => this.#log.debug({ dnsmasq: b.toString().trim() }, 'dhcp'));
    child.stderr?.on('data', (b: Buffer) => this.#log.info({ dnsmasq: b.toString().trim() }, 'dhcp'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => resolve(), 300);
      child.once('error', (cause) => {
        clearTimeout(timer);
        reject(
          new PortcullisError('SPAWN_FAILED', `cannot start dnsmasq for DHCP: install dnsmasq-base`, {
            cause,
          }),
        );
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (!this.#stopping)
          reject(
            new PortcullisError(
              'SPAWN_FAILED',
              `dnsmasq (DHCP) exited at start with code ${code}; see the log above`,
            ),
          );
      });
    });
    child.on('exit', (code, sig) => {
      if (!this.#stopping) this.#log.error({ code, sig }, 'dnsmasq (DHCP) exited');
    });
    this.#log.info({ iface: o.iface, leases: vms.length }, 'DHCP serving static leases');
  }

  #killLeftover(): void {
    if (!existsSync(this.#pidFile)) return;
    const pid = Number(readFileSync(this.#pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    try {
      const cmd = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (cmd === 'dnsmasq') process.kill(pid, 'SIGTERM');
    } catch {
      /* not running */
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

  stop(): void {
    this.#stopping = true;
    this.#child?.kill('SIGTERM');
    this.#child = undefined;
  }
}
