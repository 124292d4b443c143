import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import type { Vm } from '../policy/model.js';
import type { ChildState } from '../process/supervisor.js';
import { FakeChild, FakeSpawner, STARTED_DIED_RESTARTED } from '../process/test-fakes.js';
import { DhcpServer, type DnsmasqProcessTable, type DhcpOptions } from './dnsmasq.js';

const vm = (name: string, mac: string, ipv4: string): Vm => ({ name, mac, ipv4, profile: 'open', rules: [] });
const KID = vm('kid', '52:54:00:00:00:0A', '10.20.0.11');
const WORK = vm('work', '52:54:00:00:00:0b', '10.20.0.12');

/** No pid files unless the test adds one. */
function processes(
  o: { pidFiles?: Record<string, number>; dnsmasqs?: number[] } = {},
): DnsmasqProcessTable & {
  signals: Array<[number, NodeJS.Signals]>;
} {
  const files = new Map(Object.entries(o.pidFiles ?? {}));
  const live = new Set(o.dnsmasqs ?? []);
  const signals: Array<[number, NodeJS.Signals]> = [];
  return {
    signals,
    readPidFile: async (path) => files.get(path),
    removeFile: async (path) => void files.delete(path),
    alive: async (pid) => live.has(pid),
    isDnsmasq: async (pid) => live.has(pid),
    signal: (pid, signal) => {
      signals.push([pid, signal]);
      return live.delete(pid);
    },
  };
}

describe('DhcpServer', () => {
  let dir: string;
  let spawner: FakeSpawner;
  let bus: EventBus;
  let published: ChildState[];

  const server = (overrides: Partial<DhcpOptions> = {}): DhcpServer =>
    new DhcpServer({
      iface: 'lan0',
      gateway: '10.20.0.1',
      prefix: 24,
      leaseTime: '12h',
      dir,
      spawner,
      events: bus,
      processes: processes(),
      ...overrides,
    });

  beforeEach(() => {
    vi.useFakeTimers();
    dir = mkdtempSync(join(tmpdir(), 'sp-dhcp-'));
    spawner = new FakeSpawner();
    bus = new EventBus();
    published = [];
    bus.on('test', 'dhcp.status', (s) => published.push(s));
  });
  afterEach(() => {
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs dnsmasq DHCP-only with the static leases and publishes its state as dhcp.status', async () => {
    const dhcp = server();
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    expect(spawner.calls[0]!.command).toBe('dnsmasq');
    expect(spawner.calls[0]!.args).toEqual(
      expect.arrayContaining([
        '--port=0',
        '--interface=lan0',
        '--dhcp-range=10.20.0.0,static,255.255.255.0,12h',
        `--dhcp-hostsfile=${join(dir, 'dhcp-hosts')}`,
      ]),
    );
    expect(readFileSync(join(dir, 'dhcp-hosts'), 'utf8')).toBe('52:54:00:00:00:0a,10.20.0.11,kid\n');
    expect(published.map((s) => s.status)).toEqual(['starting', 'starting', 'running']);
    expect(dhcp.status()).toMatchObject({ status: 'running', pid: 100 });
  });

  it('gives unknown devices short leases from their own pool (10 minutes unless configured)', async () => {
    const dhcp = server({ unassignedRange: '10.20.0.200-10.20.0.249' });
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    expect(spawner.calls[0]!.args).toContain('--dhcp-range=10.20.0.200,10.20.0.249,255.255.255.0,10m');
    const custom = server({ unassignedRange: '10.20.0.200-10.20.0.249', unassignedLeaseTime: '5m' });
    const again = custom.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await again;
    expect(spawner.calls.at(-1)!.args).toContain('--dhcp-range=10.20.0.200,10.20.0.249,255.255.255.0,5m');
  });

  it('rewrites the leases and sends SIGHUP when the VMs change', async () => {
    const dhcp = server();
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    dhcp.setVms([KID, WORK]);
    expect(spawner.last.signals).toEqual(['SIGHUP']);
    expect(readFileSync(join(dir, 'dhcp-hosts'), 'utf8')).toBe(
      '52:54:00:00:00:0a,10.20.0.11,kid\n52:54:00:00:00:0b,10.20.0.12,work\n',
    );
  });

  it('restarts dnsmasq with backoff when it dies, serving the VMs of now', async () => {
    const dhcp = server();
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    dhcp.setVms([WORK]);
    spawner.last.exit(null, 'SIGKILL');
    await vi.advanceTimersByTimeAsync(0);
    expect(dhcp.status()).toMatchObject({
      status: 'backoff',
      retryInMs: 1000,
      reason: 'dnsmasq (DHCP) was killed by SIGKILL',
    });
    await vi.advanceTimersByTimeAsync(1000 + 300);
    expect(spawner.children).toHaveLength(2);
    expect(dhcp.status()).toMatchObject({ status: 'running', pid: 101 });
    expect(readFileSync(join(dir, 'dhcp-hosts'), 'utf8')).toBe('52:54:00:00:00:0b,10.20.0.12,work\n');
    expect(published.map((s) => s.status)).toEqual(STARTED_DIED_RESTARTED);
  });

  it('fails the start when the first dnsmasq exits, with its last output, and stops supervising', async () => {
    const dhcp = server();
    const starting = dhcp.start([KID]).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(0);
    spawner.last.stderr.write('dnsmasq: unknown interface lan0\n');
    await vi.advanceTimersByTimeAsync(0);
    spawner.last.exit(2);
    await vi.advanceTimersByTimeAsync(0);
    const err = await starting;
    expect(isPortcullisError(err, 'SPAWN_FAILED')).toBe(true);
    expect((err as Error).message).toBe(
      'dnsmasq (DHCP) failed at start: dnsmasq (DHCP) exited with code 2 (last output: dnsmasq: unknown interface lan0); see the log above',
    );
    await vi.advanceTimersByTimeAsync(60_000);
    expect(spawner.children).toHaveLength(1);
    expect(dhcp.status().status).toBe('stopped');
  });

  it('says to install dnsmasq-base when there is no dnsmasq', async () => {
    spawner.next = () => {
      const child = new FakeChild(undefined);
      queueMicrotask(() =>
        child.emit('error', Object.assign(new Error('spawn dnsmasq ENOENT'), { code: 'ENOENT' })),
      );
      return child;
    };
    const err = await server()
      .start([KID])
      .catch((e: unknown) => e);
    expect(isPortcullisError(err, 'SPAWN_FAILED')).toBe(true);
    expect((err as Error).message).toContain('cannot start dnsmasq for DHCP: install dnsmasq-base');
  });

  it('stops with SIGTERM, and SIGKILL at the shutdown deadline', async () => {
    spawner.next = () => new FakeChild(55, ['SIGKILL']);
    const dhcp = server({ stopTimeoutMs: 5000 });
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    const stopping = dhcp.stop({ deadline: Date.now() + 2000 });
    await vi.advanceTimersByTimeAsync(2000);
    await stopping;
    expect(spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(published.at(-1)).toMatchObject({ status: 'stopped' });
  });

  it('replaces a dnsmasq left by a previous run before it starts its own', async () => {
    const table = processes({ pidFiles: { [join(dir, 'dnsmasq-dhcp.pid')]: 4321 }, dnsmasqs: [4321] });
    const dhcp = server({ processes: table });
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    expect(table.signals).toEqual([[4321, 'SIGTERM']]);
    expect(spawner.children).toHaveLength(1);
  });

  it('gives back the oldest unknown lease when unknown devices hold the whole pool, and counts it', async () => {
    const released: string[] = [];
    const registry = new Registry();
    const dhcp = server({
      unassignedRange: '10.20.0.200-10.20.0.203',
      reclaimIntervalMs: 5000,
      registry,
      release: async (iface, ipv4, mac) => void released.push(`${iface} ${ipv4} ${mac}`),
    });
    mkdirSync(dir, { recursive: true });
    // dnsmasq's lease file: expiry (s), MAC, address, name, client id
    const leases = (rows: Array<[number, string, string]>): void =>
      writeFileSync(join(dir, 'dnsmasq.leases'), rows.map(([t, m, a]) => `${t} ${m} ${a} * *\n`).join(''));
    const starting = dhcp.start([KID]);
    await vi.advanceTimersByTimeAsync(300);
    await starting;
    // three of four taken, and the kid's own lease (not of the pool): nothing given back
    const three: Array<[number, string, string]> = [
      [1_800_000_300, '02:00:00:00:00:01', '10.20.0.200'],
      [1_800_000_100, '02:00:00:00:00:02', '10.20.0.201'],
      [1_800_000_200, '02:00:00:00:00:03', '10.20.0.202'],
      [1_800_000_050, KID.mac.toLowerCase(), KID.ipv4],
    ];
    leases(three);
    await vi.advanceTimersByTimeAsync(5000);
    expect(released).toEqual([]);
    // the fourth: the pool is full, the oldest (ends first) goes back, once
    leases([...three, [1_800_000_400, '02:00:00:00:00:04', '10.20.0.203']]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(released).toEqual(['lan0 10.20.0.201 02:00:00:00:00:02']);
    await vi.advanceTimersByTimeAsync(5000); // dnsmasq has not rewritten its file yet
    expect(released).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('portcullis_dhcp_leases_reclaimed_total')).toContain(
      'portcullis_dhcp_leases_reclaimed_total{result="ok"} 1',
    );
    // a release that fails is counted, not thrown
    const failing = server({
      unassignedRange: '10.20.0.200-10.20.0.203',
      reclaimIntervalMs: 0,
      registry: new Registry(),
      release: async () => {
        throw new Error('spawn dhcp_release ENOENT');
      },
    });
    expect(await failing.reclaim()).toEqual([]);
    const stopping = dhcp.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopping;
  });
});
