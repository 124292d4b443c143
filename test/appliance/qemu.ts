import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/**
 * A QEMU VM for appliance tests, driven over its own channels only: the guest agent
 * on a virtio-serial port (commands in the guest) and QMP (the machine), both unix
 * sockets; the serial console goes to a file. Its NICs are taps that already exist
 * in the network namespace QEMU runs in.
 */

export type Accel = 'kvm' | 'tcg';

const KVM_ARGS = ['-accel', 'kvm', '-cpu', 'host'];
// `max`: every CPU feature TCG emulates (Suricata's pattern matcher needs SSSE3 and up)
const TCG_ARGS = ['-accel', 'tcg,thread=multi', '-cpu', 'max'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * KVM when it really runs a guest, else TCG (nested KVM can hang or refuse the host
 * CPU model). Probes with the same machine and CPU the VM gets: SeaBIOS writes to the
 * debug port within milliseconds under a working KVM.
 * `PORTCULLIS_QEMU_ACCEL=kvm|tcg` skips the probe.
 * @param dir a scratch directory for the probe's output
 * @param timeoutMs how long the probe may take (default 5000)
 */
export async function chooseAccel(dir: string, timeoutMs = 5000): Promise<Accel> {
  const forced = process.env.PORTCULLIS_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (!existsSync('/dev/kvm')) return 'tcg';
  const out = join(dir, 'kvm-probe.log');
  const probe = spawn(
    'qemu-system-x86_64',
    [
      ...KVM_ARGS,
      ...['-machine', 'pc', '-m', '64', '-display', 'none', '-nodefaults', '-no-reboot'],
      ...['-chardev', `file,id=dbg,path=${out}`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg'],
    ],
    { stdio: 'ignore' },
  );
  const until = Date.now() + timeoutMs;
  let ok = false;
  while (Date.now() < until && probe.exitCode === null) {
    if (existsSync(out) && readFileSync(out, 'utf8').includes('SeaBIOS')) {
      ok = true;
      break;
    }
    await sleep(100);
  }
  probe.kill('SIGKILL');
  return ok ? 'kvm' : 'tcg';
}

export interface Nic {
  /** Tap device (exists, up) in QEMU's namespace. */
  readonly tap: string;
  readonly mac: string;
}

export interface VmOptions {
  /** Network namespace QEMU runs in (its taps live there). */
  readonly netns: string;
  /** qcow2 to boot (written to: give an overlay). */
  readonly disk: string;
  /** Raw seed disk (read-only). */
  readonly seed: string;
  readonly nics: readonly Nic[];
  /** Directory for the sockets and the console log. */
  readonly dir: string;
  readonly accel: Accel;
  /** MiB; default 1024. */
  readonly memory?: number;
  /** vCPUs; default 2. */
  readonly cpus?: number;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The VM: start, run commands through the guest agent, stop. */
export class QemuVm {
  readonly #o: VmOptions;
  #proc: ChildProcess | undefined;
  #syncId = 1000;

  constructor(options: VmOptions) {
    this.#o = options;
  }

  get consoleLog(): string {
    return join(this.#o.dir, 'console.log');
  }

  get #qga(): string {
    return join(this.#o.dir, 'qga.sock');
  }

  get #qmp(): string {
    return join(this.#o.dir, 'qmp.sock');
  }

  /** Start QEMU (the VM boots; nothing waits for it). */
  start(): void {
    const o = this.#o;
    const accel = o.accel === 'kvm' ? KVM_ARGS : TCG_ARGS;
    const args = [
      ...['netns', 'exec', o.netns, 'qemu-system-x86_64'],
      ...accel,
      ...['-machine', 'pc', '-m', String(o.memory ?? 1024), '-smp', String(o.cpus ?? 2)],
      ...['-display', 'none', '-nodefaults', '-no-user-config'],
      ...['-serial', `file:${this.consoleLog}`],
      ...['-drive', `file=${o.disk},if=virtio,format=qcow2,cache=unsafe`],
      ...['-drive', `file=${o.seed},if=virtio,format=raw,readonly=on`],
      ...['-qmp', `unix:${this.#qmp},server=on,wait=off`],
      ...['-device', 'virtio-serial-pci'],
      ...['-chardev', `socket,id=qga,path=${this.#qga},server=on,wait=off`],
      ...['-device', 'virtserialport,chardev=qga,name=org.qemu.guest_agent.0'],
      ...o.nics.flatMap((n, i) => [
        '-netdev',
        `tap,id=n${i},ifname=${n.tap},script=no,downscript=no`,
        '-device',
        `virtio-net-pci,netdev=n${i},mac=${n.mac}`,
      ]),
    ];
    const log = openSync(join(o.dir, 'qemu.log'), 'a');
    this.#proc = spawn('ip', args, { stdio: ['ignore', log, log] });
  }

  /** QEMU's pid on the host (`ip netns exec` execs QEMU), while it runs. */
  get pid(): number | undefined {
    return this.running ? this.#proc?.pid : undefined;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Throw with QEMU's own words when it has exited. */
  assertRunning(): void {
    if (this.#proc && !this.running) {
      const log = readFileSync(join(this.#o.dir, 'qemu.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
      throw new Error(`QEMU exited (${this.#proc.exitCode ?? this.#proc.signalCode}): ${log}`);
    }
  }

  /** One request to the guest agent; resolves with its `return`. */
  async #agent(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    const id = ++this.#syncId;
    return new Promise((resolve, reject) => {
      const sock = connect(this.#qga);
      let buf = '';
      let synced = false;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`guest agent: ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = (err: Error | undefined, value?: unknown): void => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(value);
      };
      sock.on('error', (err) => finish(err));
      sock.on('connect', () => {
        // a reply left from an earlier connection may be in the pipe: sync on a fresh id first
        sock.write(JSON.stringify({ execute: 'guest-sync', arguments: { id } }) + '\n');
      });
      sock.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line.startsWith('{')) continue;
          let msg: { return?: unknown; error?: { desc?: string } };
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            continue;
          }
          if (!synced) {
            if (msg.return === id) {
              synced = true;
              sock.write(
                JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n',
              );
            }
            continue;
          }
          if (msg.error)
            finish(new Error(`guest agent: ${command}: ${msg.error.desc ?? JSON.stringify(msg.error)}`));
          else finish(undefined, msg.return);
        }
      });
    });
  }

  /** Whether the guest agent answers now. */
  async agentUp(timeoutMs = 3000): Promise<boolean> {
    try {
      await this.#agent('guest-ping', undefined, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Run a command in the guest (as root) and wait for it. */
  async exec(argv: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
    const started = (await this.#agent(
      'guest-exec',
      { path: argv[0], arg: argv.slice(1), 'capture-output': true },
      10_000,
    )) as { pid: number };
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const s = (await this.#agent('guest-exec-status', { pid: started.pid }, 10_000)) as {
        exited: boolean;
        exitcode?: number;
        signal?: number;
        'out-data'?: string;
        'err-data'?: string;
      };
      if (s.exited) {
        const text = (b64?: string): string => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
        return {
          code: s.exitcode ?? 128 + (s.signal ?? 0),
          stdout: text(s['out-data']),
          stderr: text(s['err-data']),
        };
      }
      await sleep(100);
    }
    throw new Error(`guest: ${argv.join(' ')} did not finish within ${timeoutMs} ms`);
  }

  /** Run a shell script in the guest. */
  sh(script: string, timeoutMs?: number): Promise<ExecResult> {
    return this.exec(['/bin/sh', '-c', script], timeoutMs);
  }

  /**
   * Reboot the guest cleanly (systemd stops everything; same QEMU process and disks)
   * and resolve when the machine resets (QMP's RESET event): from then on, the new
   * boot runs.
   */
  async reboot(timeoutMs = 180_000): Promise<void> {
    const sock = connect(this.#qmp);
    try {
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        let ready = false;
        const timer = setTimeout(
          () => reject(new Error(`no RESET from QEMU within ${timeoutMs} ms`)),
          timeoutMs,
        );
        sock.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        sock.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const msg = JSON.parse(buf.slice(0, nl)) as { QMP?: unknown; return?: unknown; event?: string };
            buf = buf.slice(nl + 1);
            if (msg.QMP) sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
            else if (msg.return !== undefined && !ready) {
              ready = true;
              this.exec(['/bin/systemctl', 'reboot'], 30_000).catch(() => undefined);
            } else if (msg.event === 'RESET') {
              clearTimeout(timer);
              resolve();
            }
          }
        });
      });
    } finally {
      sock.destroy();
    }
  }

  /** Stop QEMU (SIGKILL: the overlay disk is thrown away anyway). */
  async stop(): Promise<void> {
    const p = this.#proc;
    if (!p || !this.running) return;
    p.kill('SIGKILL');
    const until = Date.now() + 5000;
    // `ip netns exec` execs QEMU: the pid is QEMU's own
    while (this.running && Date.now() < until) await sleep(50);
  }
}
