import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  notifyAddress,
  SystemdNotifier,
  UnixNotifySender,
  watchdogIntervalMs,
  type NotifySender,
} from './sd-notify.js';

class RecordingSender implements NotifySender {
  readonly sent: string[] = [];
  fail = false;
  closed = false;
  send(message: string): void {
    if (this.fail) throw new Error('ECONNREFUSED');
    this.sent.push(message);
  }
  close(): void {
    this.closed = true;
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('notifyAddress', () => {
  it('is a sockaddr_un with the path, NUL-terminated', () => {
    const a = notifyAddress('/run/systemd/notify')!;
    expect(a.readUInt16LE(0)).toBe(1); // AF_UNIX
    expect(a.subarray(2).toString()).toBe('/run/systemd/notify\0');
  });

  it('puts a NUL first for an abstract socket (@name)', () => {
    const a = notifyAddress('@sd-notify-1')!;
    expect(a[2]).toBe(0);
    expect(a.subarray(3).toString()).toBe('sd-notify-1');
  });

  it('is undefined without systemd, and refuses what is no socket address', () => {
    expect(notifyAddress(undefined)).toBeUndefined();
    expect(notifyAddress('')).toBeUndefined();
    expect(() => notifyAddress('relative/path')).toThrow(/neither a path nor @abstract/);
    expect(() => notifyAddress(`/${'x'.repeat(120)}`)).toThrow(/longer than a unix socket path/);
  });
});

describe('watchdogIntervalMs', () => {
  it('pings at half of WATCHDOG_USEC', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000' }, 42)).toBe(30_000);
  });

  it('is off without WatchdogSec, or when the watchdog is meant for another process', () => {
    expect(watchdogIntervalMs({}, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42)).toBe(30_000);
  });
});

describe('SystemdNotifier', () => {
  it('says READY=1 once ready, then pings the watchdog every half period until it stops', () => {
    vi.useFakeTimers();
    const sender = new RecordingSender();
    const n = new SystemdNotifier({
      env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '4000000' },
      pid: 42,
      sender,
    });
    expect(n.enabled).toBe(true);
    expect(n.watchdogIntervalMs).toBe(2000);
    vi.advanceTimersByTime(10_000);
    expect(sender.sent).toEqual([]); // no pings before ready: systemd arms the watchdog at READY=1
    n.ready();
    expect(sender.sent[0]).toMatch(/^READY=1\n/);
    vi.advanceTimersByTime(6000);
    expect(sender.sent.slice(1)).toEqual(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
    n.stopping();
    vi.advanceTimersByTime(6000);
    expect(sender.sent.slice(4)).toEqual(['STOPPING=1']);
    n.close();
    expect(sender.closed).toBe(true);
  });

  it('does nothing outside systemd', () => {
    vi.useFakeTimers();
    const n = new SystemdNotifier({ env: { WATCHDOG_USEC: '4000000' } });
    expect(n.enabled).toBe(false);
    expect(n.watchdogIntervalMs).toBeUndefined();
    n.ready();
    vi.advanceTimersByTime(10_000);
    n.close();
  });

  it('reports a failed send and keeps pinging', () => {
    vi.useFakeTimers();
    const sender = new RecordingSender();
    const errors: unknown[] = [];
    const n = new SystemdNotifier({
      env: { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '2000000' },
      sender,
      onError: (e) => errors.push(e),
    });
    sender.fail = true;
    n.ready();
    expect(errors).toHaveLength(1);
    sender.fail = false;
    vi.advanceTimersByTime(1000);
    expect(sender.sent).toEqual(['WATCHDOG=1']);
    n.close();
  });
});

describe('UnixNotifySender', () => {
  it('sends one datagram per message to a real unix socket, as systemd receives them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-notify-'));
    const path = join(dir, 'notify');
    // systemd's side: a datagram socket that prints what arrives (python3: Node has no unix datagrams)
    const receiver = spawn('python3', [
      '-c',
      'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\n' +
        'print("bound",flush=True)\nfor _ in range(2): print(repr(s.recv(4096).decode()),flush=True)',
      path,
    ]);
    let out = '';
    receiver.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => receiver.on('exit', resolve));
    try {
      await vi.waitFor(() => expect(out).toContain('bound'), { timeout: 20_000, interval: 50 });
      const sender = new UnixNotifySender(notifyAddress(path)!);
      sender.send('READY=1\nSTATUS=enforcing');
      sender.send('WATCHDOG=1');
      sender.close();
      expect(await exited).toBe(0);
      expect(out.split('\n').slice(1, 3)).toEqual(["'READY=1\\nSTATUS=enforcing'", "'WATCHDOG=1'"]);
      // nobody listening: a clear error, not a silent loss
      rmSync(path);
      const orphan = new UnixNotifySender(notifyAddress(path)!);
      expect(() => orphan.send('WATCHDOG=1')).toThrow(/cannot notify systemd \(WATCHDOG=1\): errno/);
      orphan.close();
    } finally {
      receiver.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
