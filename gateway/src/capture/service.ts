import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Counter, Gauge, type Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import { PortcullisError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { Policy } from '../policy/model.js';
import { nodeSpawner, type ChildProcessLike, type Spawner } from '../process/supervisor.js';
import type { Alert, AuditInput } from '../store/types.js';
import {
  DEFAULT_CAPTURE_LIMITS,
  captureBounds,
  captureTarget,
  tcpdumpArgs,
  type CaptureFlow,
  type CaptureLimits,
} from './filter.js';
import { summarisePcap } from './pcap.js';

/**
 * Packet captures of one VM, or of an alert's flow, with tcpdump: bounded in time, in
 * size, in how many run at once and in how many files are kept (in `dir`, the oldest
 * finished one removed first). tcpdump runs through the `Spawner` (never a shell) on
 * the VM's port, or the LAN interface, with a filter built by `captureTarget` from the
 * policy's VM and the alert log.
 *
 * Why tcpdump: a Debian package on the appliance anyway for support, libpcap's own
 * writer (the file is what Suricata, Wireshark and `portcullis replay` read), it drops
 * root itself (`-Z`), and it needs no native Node module in the service's process.
 */

/** Where a capture is. */
export type CaptureState = 'running' | 'done' | 'failed';

/** One capture, as listed by the API. */
export interface CaptureInfo {
  readonly id: string;
  readonly vm: string;
  /** The alert whose flow this captures. */
  readonly alertId?: number;
  readonly iface: string;
  readonly filter: string;
  readonly seconds: number;
  readonly maxBytes: number;
  readonly state: CaptureState;
  /** ISO 8601. */
  readonly startedAt: string;
  /** ISO 8601, once it ended. */
  readonly endedAt?: string;
  /** Size of the file: while running as written so far, then whole packets only. */
  readonly bytes: number;
  /** Whole packets, once it ended. */
  readonly packets: number;
  /** Packets the kernel dropped because tcpdump did not keep up (its own count), once it ended. */
  readonly dropped?: number;
  /** Why it ended: `time`, `size`, `stopped`, or what failed. */
  readonly reason?: string;
  /** Who started it (`user:<name>`, `token:<name>`). */
  readonly actor: string;
}

/** What to capture: a VM for some seconds, or the flow of an alert of the alert log. */
export type CaptureRequest =
  | { readonly vm: string; readonly seconds: number; readonly maxBytes?: number | undefined }
  | { readonly alertId: number; readonly seconds: number; readonly maxBytes?: number | undefined };

export interface CaptureServiceOptions {
  /** Where capture files and their descriptions are kept (under the service's data folder). */
  readonly dir: string;
  /** Where VMs without a port are captured. */
  readonly lanIface: string;
  /** The policy in force: the VMs. */
  readonly policy: () => Policy;
  /** The alert log. */
  readonly alerts: { get(id: number): Alert | undefined };
  /** The audit log. */
  readonly audit: (entry: AuditInput) => void;
  readonly limits?: Partial<CaptureLimits>;
  /** Default {@link nodeSpawner}. */
  readonly spawner?: Spawner;
  /** The tcpdump binary; default `tcpdump`. */
  readonly tcpdump?: string;
  /** The user tcpdump runs as once it has opened the interface; default this process's user. */
  readonly user?: string;
  /** How often the file's size is checked, ms; default 200. */
  readonly pollMs?: number;
  /** How long tcpdump may take to start listening, ms; default 10,000. */
  readonly listenTimeoutMs?: number;
  /** SIGTERM to SIGKILL, ms; default 5,000. */
  readonly stopGraceMs?: number;
  readonly registry: Registry;
  readonly log?: Logger;
  readonly now?: Clock;
}

interface Running {
  readonly child: ChildProcessLike;
  readonly exited: Promise<void>;
  /** Resolves once the capture's end is written down. */
  finished?: Promise<void>;
  /** Why we ended it. */
  reason?: string;
  readonly timers: NodeJS.Timeout[];
}

/** The ends of a capture that are no failure. */
const NORMAL_ENDS = new Set(['time', 'size', 'stopped']);

/** Suricata's protocol names in BPF's words; others are left out of the filter. */
const BPF_PROTO: Readonly<Record<string, string>> = {
  tcp: 'tcp',
  udp: 'udp',
  sctp: 'sctp',
  icmp: 'icmp',
  'ipv6-icmp': 'icmp6',
};

/**
 * The flow of an alert: its two addresses, its protocol, and the remote side's port
 * (the service the VM talked to: the VM's own port is ephemeral, and a new connection
 * to the same service, after the alert, gets another). Pure.
 */
export function alertFlow(alert: Alert & { src: string; dest: string }, vmAddress: string): CaptureFlow {
  const proto = alert.proto === undefined ? undefined : BPF_PROTO[alert.proto.toLowerCase()];
  const data = (alert.data ?? {}) as { srcPort?: unknown; destPort?: unknown };
  const remotePort =
    alert.src === vmAddress ? data.destPort : alert.dest === vmAddress ? data.srcPort : undefined;
  const port =
    proto && proto !== 'icmp' && proto !== 'icmp6' && typeof remotePort === 'number' ? remotePort : undefined;
  return {
    src: alert.src,
    dest: alert.dest,
    ...(proto !== undefined ? { proto } : {}),
    ...(port !== undefined ? { port } : {}),
  };
}

const ID = /^[0-9]{8}T[0-9]{6}Z-[a-z][a-z0-9-]{0,30}-[0-9a-f]{6}$/;
/** tcpdump's line once it captures. */
const LISTENING = /listening on /;
/** tcpdump's counts at its end; the kernel's drops are kept. */
const STATS = /^(\d+) packets? (captured|received by filter|dropped by kernel)$/;

export class CaptureService {
  readonly #o: CaptureServiceOptions;
  readonly #limits: CaptureLimits;
  readonly #log: Logger;
  readonly #now: Clock;
  readonly #captures = new Map<string, CaptureInfo>();
  readonly #running = new Map<string, Running>();
  readonly #started: Counter<'result'>;
  readonly #bytes: Counter;
  #stopping = false;

  constructor(options: CaptureServiceOptions) {
    this.#o = options;
    this.#limits = { ...DEFAULT_CAPTURE_LIMITS, ...options.limits };
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
    this.#started = new Counter({
      name: 'portcullis_captures_total',
      help: 'Packet captures started, by result (started, failed: tcpdump did not start or failed)',
      labelNames: ['result'],
      registers: [options.registry],
    });
    for (const result of ['started', 'failed']) this.#started.inc({ result }, 0);
    this.#bytes = new Counter({
      name: 'portcullis_capture_bytes_total',
      help: 'Bytes of pcap written by finished packet captures',
      registers: [options.registry],
    });
    const running = this.#running;
    new Gauge({
      name: 'portcullis_captures_running',
      help: 'Packet captures running now',
      registers: [options.registry],
      collect() {
        this.set(running.size);
      },
    });
  }

  /** The limits in force. */
  get limits(): CaptureLimits {
    return this.#limits;
  }

  /** Read the captures kept in `dir`; one that was running when the service stopped is failed. */
  async start(): Promise<void> {
    this.#stopping = false;
    await mkdir(this.#o.dir, { recursive: true, mode: 0o750 });
    for (const name of await readdir(this.#o.dir)) {
      if (!name.endsWith('.json') || !ID.test(name.slice(0, -5))) continue;
      try {
        const info = JSON.parse(await readFile(join(this.#o.dir, name), 'utf8')) as CaptureInfo;
        if (info.state === 'running') {
          const bytes = await this.#finalise(info.id, info.maxBytes).catch(() => ({ bytes: 0, packets: 0 }));
          const failed: CaptureInfo = {
            ...info,
            ...bytes,
            state: 'failed',
            reason: 'the service stopped during the capture',
          };
          this.#captures.set(info.id, failed);
          await this.#save(failed);
        } else this.#captures.set(info.id, info);
      } catch (err) {
        this.#log.warn({ err, file: name }, 'a capture description cannot be read; ignored');
      }
    }
  }

  /** Stop every running capture (its file is kept, as far as it got). */
  async stop(): Promise<void> {
    this.#stopping = true;
    const running = [...this.#running.entries()];
    await Promise.all(running.map(([id]) => this.#terminate(id, 'stopped')));
    await Promise.all(running.map(([, r]) => r.finished));
  }

  /** The captures, newest first. */
  list(): CaptureInfo[] {
    return [...this.#captures.values()].sort(
      (a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id),
    );
  }

  /** One capture. @throws CAPTURE_NOT_FOUND */
  get(id: string): CaptureInfo {
    const c = ID.test(id) ? this.#captures.get(id) : undefined;
    if (!c)
      throw new PortcullisError('CAPTURE_NOT_FOUND', `no capture "${id}"; GET /captures lists them`, {
        path: '/params/id',
      });
    return c;
  }

  /**
   * Start a capture; resolves once tcpdump listens (the capture then runs for
   * `seconds` or until its file reaches `maxBytes`).
   * @throws REQUEST_INVALID (bounds, a malformed address), VM_NOT_FOUND, NOT_FOUND (the
   *   alert), CAPTURE_BUSY (too many running), CAPTURE_FAILED (tcpdump did not start)
   */
  async begin(request: CaptureRequest, actor: string): Promise<CaptureInfo> {
    if (this.#stopping) throw new PortcullisError('CAPTURE_FAILED', 'the service is stopping');
    const bounds = captureBounds(request, this.#limits);
    const { vm, flow, alertId } = this.#resolve(request);
    const target = captureTarget(vm, this.#o.lanIface, flow);
    const busy = (): void => {
      if (this.#running.size >= this.#limits.concurrent)
        throw new PortcullisError(
          'CAPTURE_BUSY',
          `${this.#running.size} captures are running, the limit (capture.concurrent); wait for one to end`,
        );
    };
    busy();
    await this.#prune(this.#limits.keep - 1);
    // another request may have started one meanwhile: from here to the spawn nothing awaits
    busy();
    const startedAt = new Date(this.#now());
    const id = `${startedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}-${vm.name}-${randomBytes(3).toString('hex')}`;
    const info: CaptureInfo = {
      id,
      vm: vm.name,
      ...(alertId !== undefined ? { alertId } : {}),
      ...target,
      ...bounds,
      state: 'running',
      startedAt: startedAt.toISOString(),
      bytes: 0,
      packets: 0,
      actor,
    };
    const args = tcpdumpArgs({ ...target, file: this.#pcap(id), user: this.#o.user ?? userInfo().username });
    const child = (this.#o.spawner ?? nodeSpawner).spawn(this.#o.tcpdump ?? 'tcpdump', args);
    const errors: string[] = [];
    const stats = { dropped: undefined as number | undefined };
    let stderrClosed: () => void = () => undefined;
    const stderrDone = new Promise<void>((resolve) => (stderrClosed = resolve));
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const exited = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        resolve();
      });
      child.on('error', (err) => {
        errors.push(err.message);
        exit = { code: null, signal: null };
        resolve();
      });
    });
    const running: Running = { child, exited, timers: [] };
    this.#running.set(id, running);
    this.#captures.set(id, info);
    const listening = new Promise<boolean>((resolve) => {
      if (child.stderr) {
        const lines = createInterface({ input: child.stderr });
        lines.on('line', (line) => {
          const stat = STATS.exec(line.trim());
          if (LISTENING.test(line)) resolve(true);
          else if (stat) {
            if (stat[2] === 'dropped by kernel') stats.dropped = Number(stat[1]);
          } else if (line.trim() !== '') errors.push(line.trim());
        });
        lines.on('close', stderrClosed);
      } else stderrClosed();
      void exited.then(() => resolve(false));
      const t = setTimeout(() => resolve(false), this.#o.listenTimeoutMs ?? 10_000);
      t.unref();
    });
    // tcpdump's last lines (its counts) may come after its exit: wait for them a little
    const settled = exited.then(() =>
      Promise.race([stderrDone, new Promise((r) => setTimeout(r, 2000).unref())]),
    );
    running.finished = settled.then(() => this.#ended(id, running, () => exit, errors, stats.dropped));

    if (!(await listening)) {
      if (!exit) await this.#terminate(id, 'tcpdump did not start listening in time');
      await running.finished;
      const why = errors.some((e) => e.includes('ENOENT'))
        ? `${this.#o.tcpdump ?? 'tcpdump'} is not installed (apt-get install tcpdump, or set capture.tcpdump)`
        : errors.slice(-3).join('; ') || 'tcpdump exited at once';
      await this.#delete(id);
      throw new PortcullisError('CAPTURE_FAILED', `tcpdump could not capture on ${target.iface}: ${why}`, {
        context: { command: this.#o.tcpdump ?? 'tcpdump', args },
      });
    }
    this.#o.audit({
      actor,
      action: 'capture.start',
      target: `capture/${id}`,
      after: { vm: vm.name, ...(alertId !== undefined ? { alertId } : {}), ...target, ...bounds },
    });
    this.#started.inc({ result: 'started' });
    this.#log.info(
      { id, vm: vm.name, iface: target.iface, filter: target.filter, ...bounds },
      'capture started',
    );
    const now = this.#captures.get(id);
    if (now?.state === 'running') await this.#save(now);
    running.timers.push(setTimeout(() => void this.#terminate(id, 'time'), bounds.seconds * 1000));
    running.timers.push(
      setInterval(() => {
        void stat(this.#pcap(id))
          .then((s) => {
            const now = this.#captures.get(id);
            if (now?.state === 'running') this.#captures.set(id, { ...now, bytes: s.size });
            if (s.size >= bounds.maxBytes) void this.#terminate(id, 'size');
          })
          .catch(() => undefined);
      }, this.#o.pollMs ?? 200),
    );
    return this.#captures.get(id) ?? info;
  }

  /** Wait until a capture has ended; resolves with it. @throws CAPTURE_NOT_FOUND */
  async ended(id: string): Promise<CaptureInfo> {
    this.get(id);
    await this.#running.get(id)?.finished;
    return this.get(id);
  }

  /**
   * The pcap file of a finished capture, for download; audited.
   * @throws CAPTURE_NOT_FOUND, CONFLICT while it is still running
   */
  download(id: string, actor: string): { path: string; info: CaptureInfo } {
    const info = this.get(id);
    if (info.state === 'running')
      throw new PortcullisError(
        'CONFLICT',
        `capture ${id} is still running; download it once it has ended (its state is then done)`,
        { path: '/params/id' },
      );
    this.#o.audit({ actor, action: 'capture.download', target: `capture/${id}` });
    return { path: this.#pcap(id), info };
  }

  /** Stop a capture if it runs, and remove it and its file; audited. @throws CAPTURE_NOT_FOUND */
  async remove(id: string, actor: string): Promise<void> {
    const info = this.get(id);
    if (this.#running.has(id)) {
      await this.#terminate(id, 'stopped');
      await this.ended(id);
    }
    await this.#delete(id);
    this.#o.audit({ actor, action: 'capture.delete', target: `capture/${id}`, before: info });
  }

  #resolve(request: CaptureRequest): {
    vm: Policy['vms'][number];
    flow?: CaptureFlow;
    alertId?: number;
  } {
    const vms = this.#o.policy().vms;
    if ('vm' in request) {
      const vm = vms.find((v) => v.name === request.vm);
      if (!vm)
        throw new PortcullisError('VM_NOT_FOUND', `no VM "${request.vm}"; GET /vms lists them`, {
          path: '/body/vm',
        });
      return { vm };
    }
    const alert = this.#o.alerts.get(request.alertId);
    if (!alert)
      throw new PortcullisError(
        'NOT_FOUND',
        `no alert ${request.alertId} in the alert log (it keeps the most recent ones); GET /alerts lists them`,
        { path: '/body/alertId' },
      );
    const vm = vms.find((v) => v.name === alert.vm);
    if (!vm)
      throw new PortcullisError(
        'VM_NOT_FOUND',
        `alert ${alert.id} is of no VM of the policy (${alert.vm ?? 'no VM'}); capture a VM instead`,
        { path: '/body/alertId' },
      );
    if (alert.src === undefined || alert.dest === undefined)
      throw new PortcullisError('REQUEST_INVALID', `alert ${alert.id} has no addresses to capture`, {
        path: '/body/alertId',
      });
    return {
      vm,
      alertId: alert.id,
      flow: alertFlow({ ...alert, src: alert.src, dest: alert.dest }, vm.ipv4),
    };
  }

  async #terminate(id: string, reason: string): Promise<void> {
    const r = this.#running.get(id);
    if (!r) return;
    r.reason ??= reason;
    for (const t of r.timers) clearTimeout(t);
    r.child.kill('SIGTERM');
    const kill = setTimeout(() => r.child.kill('SIGKILL'), this.#o.stopGraceMs ?? 5000);
    await r.exited;
    clearTimeout(kill);
  }

  async #ended(
    id: string,
    r: Running,
    exit: () => { code: number | null; signal: NodeJS.Signals | null } | undefined,
    errors: readonly string[],
    dropped: number | undefined,
  ): Promise<void> {
    for (const t of r.timers) clearTimeout(t);
    this.#running.delete(id);
    const info = this.#captures.get(id);
    if (!info) return;
    const e = exit();
    // we end tcpdump with SIGTERM (it flushes and exits 0); on its own it ends on an error
    const normal = r.reason !== undefined ? NORMAL_ENDS.has(r.reason) : e?.code === 0;
    const sizes = await this.#finalise(id, info.maxBytes).catch((err: unknown) => {
      this.#log.warn({ err, id }, 'capture file cannot be read');
      return { bytes: 0, packets: 0 };
    });
    const failed = !normal;
    const how = e?.signal ? `was killed (${e.signal})` : `exited ${String(e?.code)}`;
    const reason = failed
      ? `${r.reason ?? `tcpdump ${how}`}${errors.length > 0 ? `: ${errors.slice(-3).join('; ')}` : ''}`
      : (r.reason ?? 'tcpdump ended');
    const done: CaptureInfo = {
      ...info,
      ...sizes,
      ...(dropped !== undefined ? { dropped } : {}),
      state: failed ? 'failed' : 'done',
      endedAt: new Date(this.#now()).toISOString(),
      reason,
    };
    this.#captures.set(id, done);
    if (failed) this.#started.inc({ result: 'failed' });
    this.#bytes.inc(sizes.bytes);
    if (dropped) this.#log.warn({ id, dropped }, 'the kernel dropped packets tcpdump did not keep up with');
    this.#log.info({ id, state: done.state, reason, ...sizes, dropped }, 'capture ended');
    await this.#save(done).catch((err: unknown) =>
      this.#log.warn({ err, id }, 'capture description not saved'),
    );
  }

  /** Cut the file to its whole packets within `maxBytes`; its size and packets. */
  async #finalise(id: string, maxBytes: number): Promise<{ bytes: number; packets: number }> {
    const file = this.#pcap(id);
    const size = (await stat(file)).size;
    if (size === 0) return { bytes: 0, packets: 0 };
    const fh = await open(file, 'r');
    let buf: Buffer;
    try {
      const n = Math.min(size, maxBytes);
      buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, 0);
    } finally {
      await fh.close();
    }
    const s = summarisePcap(buf);
    if (s.bytes < size) await truncate(file, s.bytes);
    return { bytes: s.bytes, packets: s.packets };
  }

  /** Remove the oldest finished captures until at most `keep` are left. */
  async #prune(keep: number): Promise<void> {
    const finished = this.list().filter((c) => c.state !== 'running');
    const excess = this.#captures.size - Math.max(0, keep);
    for (const c of finished.reverse().slice(0, Math.max(0, excess))) {
      await this.#delete(c.id);
      this.#log.info({ id: c.id }, 'capture removed: more than capture.keep are kept');
    }
  }

  async #delete(id: string): Promise<void> {
    this.#captures.delete(id);
    await rm(this.#pcap(id), { force: true });
    await rm(this.#meta(id), { force: true });
  }

  #pcap(id: string): string {
    return join(this.#o.dir, `${id}.pcap`);
  }

  #meta(id: string): string {
    return join(this.#o.dir, `${id}.json`);
  }

  async #save(info: CaptureInfo): Promise<void> {
    await writeFile(this.#meta(info.id), `${JSON.stringify(info)}\n`, { mode: 0o640 });
  }
}
