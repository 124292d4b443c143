import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { emptyPolicy, type Policy } from '../policy/model.js';
import type { Alert, AuditInput } from '../store/types.js';
import { FakeTcpdump } from './test-fakes.js';
import { alertFlow, CaptureService, type CaptureServiceOptions } from './service.js';

const policy: Policy = {
  ...emptyPolicy(),
  vms: [
    { name: 'kid', mac: '52:54:00:aa:00:02', ipv4: '10.20.0.12', port: 'g-kid', profile: 'kid' },
    { name: 'work', mac: '52:54:00:aa:00:03', ipv4: '10.20.0.13', profile: 'work' },
  ],
};
const alert: Alert = {
  id: 7,
  at: '2026-12-03T07:00:00.000Z',
  vm: 'kid',
  src: '10.20.0.12',
  dest: '203.0.113.10',
  proto: 'TCP',
  signature: 'test',
};

describe('CaptureService', () => {
  let dir: string;
  let spawner: FakeTcpdump;
  let audit: AuditInput[];
  let registry: Registry;
  const services: CaptureService[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-capture-'));
    spawner = new FakeTcpdump();
    audit = [];
    registry = new Registry();
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function make(overrides: Partial<CaptureServiceOptions> = {}): Promise<CaptureService> {
    const s = new CaptureService({
      dir,
      lanIface: 'lan0',
      policy: () => policy,
      alerts: { get: (id) => (id === alert.id ? alert : undefined) },
      audit: (e) => audit.push(e),
      spawner,
      user: 'portcullis',
      pollMs: 20,
      registry,
      ...overrides,
    });
    services.push(s);
    await s.start();
    return s;
  }

  async function failure(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (err) {
      return isPortcullisError(err) ? err.code : String(err);
    }
    return 'no error';
  }

  it('captures a VM on its port for the seconds asked, then keeps the file with its packets', async () => {
    const s = await make();
    const started = await s.begin({ vm: 'kid', seconds: 1 }, 'user:admin');
    expect(started).toMatchObject({ vm: 'kid', iface: 'g-kid', state: 'running', actor: 'user:admin' });
    expect(spawner.calls[0]!.command).toBe('tcpdump');
    expect(spawner.calls[0]!.args.slice(-2)).toEqual(['--', 'ether host 52:54:00:aa:00:02']);
    expect(audit.map((a) => a.action)).toEqual(['capture.start']);

    const t0 = Date.now();
    const done = await s.ended(started.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(spawner.last.signals).toEqual(['SIGTERM']);
    expect(done).toMatchObject({ state: 'done', reason: 'time', packets: 3, bytes: 24 + 3 * 76, dropped: 0 });
    const { path } = s.download(started.id, 'user:admin');
    expect(statSync(path).size).toBe(done.bytes);
    expect(audit.map((a) => a.action)).toEqual(['capture.start', 'capture.download']);
    expect(await registry.getSingleMetricAsString('portcullis_capture_bytes_total')).toContain(
      ` ${done.bytes}`,
    );
  });

  it('stops at the size bound and keeps only whole packets within it', async () => {
    spawner.packets = Array.from({ length: 100 }, () => 1500);
    const s = await make();
    const c = await s.begin({ vm: 'work', seconds: 60, maxBytes: 65536 }, 'user:admin');
    expect(c.iface).toBe('lan0');
    const done = await s.ended(c.id);
    expect(done.reason).toBe('size');
    expect(done.bytes).toBeLessThanOrEqual(65536);
    expect(done.packets).toBe(Math.floor((65536 - 24) / 1516));
    expect(statSync(s.download(c.id, 'x').path).size).toBe(done.bytes);
  });

  it("captures an alert's flow from the alert log", async () => {
    const s = await make();
    const c = await s.begin({ alertId: 7, seconds: 1 }, 'user:admin');
    expect(c).toMatchObject({ vm: 'kid', alertId: 7 });
    expect(c.filter).toBe('ether host 52:54:00:aa:00:02 and host 10.20.0.12 and host 203.0.113.10 and tcp');
    expect(await failure(s.begin({ alertId: 8, seconds: 1 }, 'x'))).toBe('NOT_FOUND');
  });

  it('refuses an unknown VM, bad bounds and more captures than may run at once', async () => {
    const s = await make({ limits: { concurrent: 2 } });
    expect(await failure(s.begin({ vm: 'nobody', seconds: 5 }, 'x'))).toBe('VM_NOT_FOUND');
    expect(await failure(s.begin({ vm: 'kid', seconds: 301 }, 'x'))).toBe('REQUEST_INVALID');
    await s.begin({ vm: 'kid', seconds: 30 }, 'x');
    await s.begin({ vm: 'work', seconds: 30 }, 'x');
    expect(await failure(s.begin({ vm: 'kid', seconds: 30 }, 'x'))).toBe('CAPTURE_BUSY');
    expect(spawner.calls).toHaveLength(2);
    // two requests at the same moment for the last place: one of them gets it
    await s.remove(s.list()[0]!.id, 'x');
    const both = await Promise.allSettled([
      s.begin({ vm: 'kid', seconds: 30 }, 'x'),
      s.begin({ vm: 'kid', seconds: 30 }, 'x'),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(spawner.calls).toHaveLength(3);
    expect(await failure(Promise.resolve().then(() => s.download(s.list()[0]!.id, 'x')))).toBe('CONFLICT');
  });

  it('says why tcpdump could not start, and keeps nothing of it', async () => {
    spawner.fail = 'g-kid: No such device exists';
    const s = await make();
    let message = '';
    try {
      await s.begin({ vm: 'kid', seconds: 5 }, 'x');
    } catch (err) {
      message = `${(err as Error & { code: string }).code}: ${(err as Error).message}`;
    }
    expect(message).toBe(
      'CAPTURE_FAILED: tcpdump could not capture on g-kid: tcpdump: g-kid: No such device exists',
    );
    expect(s.list()).toEqual([]);
    expect(await registry.getSingleMetricAsString('portcullis_captures_total')).toContain(
      'portcullis_captures_total{result="failed"} 1',
    );
  });

  it('keeps at most `keep` files, removing the oldest, and deletes on request', async () => {
    const s = await make({ limits: { keep: 2 } });
    const ids: string[] = [];
    for (const vm of ['kid', 'work', 'kid']) {
      const c = await s.begin({ vm, seconds: 10 }, 'x');
      await s.remove(c.id, 'y').catch(() => undefined);
      ids.push(c.id);
    }
    // the removes above stopped each at once; now three finished ones, kept two at most
    const a = await s.begin({ vm: 'kid', seconds: 1 }, 'x');
    await s.ended(a.id);
    const b = await s.begin({ vm: 'work', seconds: 1 }, 'x');
    await s.ended(b.id);
    const c = await s.begin({ vm: 'kid', seconds: 1 }, 'x');
    await s.ended(c.id);
    expect(
      s
        .list()
        .map((x) => x.id)
        .sort(),
    ).toEqual([b.id, c.id].sort());
    expect(existsSync(join(dir, `${a.id}.pcap`))).toBe(false);
    await s.remove(b.id, 'user:admin');
    expect(s.list().map((x) => x.id)).toEqual([c.id]);
    expect(existsSync(join(dir, `${b.id}.pcap`))).toBe(false);
    expect(audit.filter((e) => e.action === 'capture.delete').at(-1)).toMatchObject({
      actor: 'user:admin',
      target: `capture/${b.id}`,
    });
    expect(ids).toHaveLength(3);
  });

  it('lists the captures kept after a restart; one that was running is failed', async () => {
    const s = await make();
    const c = await s.begin({ vm: 'kid', seconds: 30 }, 'x');
    // the service dies with tcpdump running: its description still says running
    const meta = JSON.parse(readFileSync(join(dir, `${c.id}.json`), 'utf8')) as { state: string };
    expect(meta.state).toBe('running');
    const again = await make({ registry: new Registry() });
    expect(again.get(c.id)).toMatchObject({
      state: 'failed',
      reason: 'the service stopped during the capture',
      packets: 3,
    });
  });
});

describe('alertFlow', () => {
  const base = { ...alert, src: '10.20.0.12', dest: '203.0.113.10' };

  it("takes the remote side's port: the service the VM talked to", () => {
    const out = alertFlow({ ...base, data: { srcPort: 40000, destPort: 80 } }, '10.20.0.12');
    expect(out).toEqual({ src: '10.20.0.12', dest: '203.0.113.10', proto: 'tcp', port: 80 });
    // the remote sent the packet that alerted: its port is the source port
    const back = alertFlow(
      { ...base, src: '203.0.113.10', dest: '10.20.0.12', data: { srcPort: 443, destPort: 40000 } },
      '10.20.0.12',
    );
    expect(back.port).toBe(443);
  });

  it('leaves out what BPF cannot say or the log does not have', () => {
    expect(
      alertFlow({ ...base, proto: 'IPv6-ICMP', data: { srcPort: 0, destPort: 0 } }, '10.20.0.12'),
    ).toEqual({
      src: '10.20.0.12',
      dest: '203.0.113.10',
      proto: 'icmp6',
    });
    expect(alertFlow({ ...base, proto: '47' }, '10.20.0.12')).toEqual({
      src: '10.20.0.12',
      dest: '203.0.113.10',
    });
    expect(alertFlow({ ...base, data: { destPort: 'x' } }, '10.20.0.12')).toEqual({
      src: '10.20.0.12',
      dest: '203.0.113.10',
      proto: 'tcp',
    });
  });
});
