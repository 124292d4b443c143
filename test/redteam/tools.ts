import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ns } from '../../appliance/lab/topology.js';
import { inNs, sleep } from '../lab/harness.js';

/**
 * Listeners and probes on the lab's internet side for the red-team suite: what a
 * guest sends either arrives there or it does not. Every process started here is
 * stopped by its own pid.
 */

/** A process in a lab namespace whose output is collected. */
export class Probe {
  readonly #child: ChildProcess;
  #out = '';
  #err = '';
  #exited = false;

  constructor(namespace: string, argv: string[]) {
    this.#child = spawn('ip', ['netns', 'exec', ns(namespace), ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child.stdout!.on('data', (b: Buffer) => (this.#out += b.toString('latin1')));
    this.#child.stderr!.on('data', (b: Buffer) => (this.#err += b.toString('latin1')));
    this.#child.on('exit', () => (this.#exited = true));
  }

  get output(): string {
    return this.#out;
  }

  get errors(): string {
    return this.#err;
  }

  get running(): boolean {
    return !this.#exited;
  }

  /** Wait until `ready` holds (or throw with what the process said). */
  async until(what: string, ready: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.#exited) throw new Error(`${what}: the process exited: ${this.#err}`);
      if (await ready()) return;
      await sleep(50);
    }
    throw new Error(`${what}: not ready after ${timeoutMs} ms: ${this.#err}`);
  }

  /** Stop it (SIGTERM to this pid only) and wait for it to exit. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.kill('SIGTERM');
    await Promise.race([gone, sleep(3000)]);
    if (!this.#exited) this.#child.kill('SIGKILL');
  }
}

/** Whether something listens on addr:port (tcp or udp) in a namespace. */
export async function listening(
  namespace: string,
  proto: 'tcp' | 'udp',
  addr: string,
  port: number,
): Promise<boolean> {
  const r = await inNs(namespace, ['ss', '-Hln', proto === 'tcp' ? '-t' : '-u', `src ${addr}:${port}`]);
  return r.stdout.trim().length > 0;
}

/** A UDP receiver in the internet namespace: every datagram's payload ends up in `output`. */
export async function udpReceiver(addr: string, port: number): Promise<Probe> {
  const p = new Probe('internet', ['socat', '-u', `UDP4-RECV:${port},bind=${addr},reuseaddr`, 'STDOUT']);
  await p.until(`udp receiver ${addr}:${port}`, () => listening('internet', 'udp', addr, port));
  return p;
}

/** A TCP listener in the internet namespace that accepts any number of connections (and discards what they send). */
export async function tcpListener(addr: string, port: number): Promise<Probe> {
  const p = new Probe('internet', [
    'socat',
    '-u',
    `TCP4-LISTEN:${port},bind=${addr},reuseaddr,fork`,
    'OPEN:/dev/null',
  ]);
  await p.until(`tcp listener ${addr}:${port}`, () => listening('internet', 'tcp', addr, port));
  return p;
}

/** A packet capture on the internet side of the uplink (isp0); one line per packet in `output`. */
export async function capture(filter: string): Promise<Probe> {
  const p = new Probe('internet', ['tcpdump', '-l', '-n', '-i', 'isp0', filter]);
  await p.until(`tcpdump ${filter}`, () => p.errors.includes('listening on'));
  return p;
}

/** Send one UDP datagram from a namespace. */
export async function sendUdp(namespace: string, addr: string, port: number, payload: string): Promise<void> {
  await inNs(namespace, [
    'bash',
    '-c',
    `printf '%s\\n' "$1" | socat -u - UDP4-SENDTO:${addr}:${port}`,
    'send',
    payload,
  ]);
}

/** The system's python3 (raw sockets for ESP, a connected UDP socket for ICMP errors). */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Send one raw ESP packet (IP protocol 50: SPI, sequence number, payload) from a namespace. */
export async function sendEsp(namespace: string, addr: string, payload: string): Promise<void> {
  const py =
    'import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,50)\ns.sendto(b"\\x00\\x00\\x10\\x01\\x00\\x00\\x00\\x01"+sys.argv[2].encode(),(sys.argv[1],0))';
  const r = await inNs(namespace, [PYTHON, '-c', py, addr, payload]);
  if (r.code !== 0) throw new Error(`ESP send failed: ${r.stderr}`);
}

/** TCP connect from a namespace (nc -z), true when it connected. */
export async function connects(namespace: string, host: string, port: number, seconds = 2): Promise<boolean> {
  return (await inNs(namespace, ['nc', '-z', '-w', String(seconds), host, String(port)])).code === 0;
}

/** A marker unique to this run, for payloads and URL paths. */
export function marker(what: string): string {
  return `${what}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A BPF filter for TCP segments whose payload starts with `prefix` (exactly 4 ASCII
 * bytes), e.g. `PLAI` or `SSH-`: what the uplink's far side received, whatever the port.
 */
export function tcpPayloadStarts(prefix: string): string {
  if (prefix.length !== 4) throw new Error(`tcpPayloadStarts: the prefix must be 4 bytes, got "${prefix}"`);
  return `tcp and tcp[((tcp[12]&0xf0)>>2):4] = 0x${Buffer.from(prefix, 'latin1').toString('hex')}`;
}

/** Send `payload` over TCP from a namespace and half-close; the exit code of nc (124: timed out). */
export async function sendTcp(
  namespace: string,
  addr: string,
  port: number,
  payload: string,
  seconds = 3,
): Promise<number> {
  const r = await inNs(namespace, [
    'bash',
    '-c',
    `printf '%s\\n' "$1" | timeout ${seconds} nc -q1 ${addr} ${port}`,
    'send',
    payload,
  ]);
  return r.code;
}

/** Send one WireGuard handshake initiation shape (type 1, 148 bytes) carrying `payload`, from a namespace. */
export async function sendWireGuardInit(
  namespace: string,
  addr: string,
  port: number,
  payload: string,
): Promise<void> {
  const py =
    'import socket,sys\np=b"\\x01\\x00\\x00\\x00"+sys.argv[3].encode()\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(p+b"\\x00"*(148-len(p)),(sys.argv[1],int(sys.argv[2])))';
  const r = await inNs(namespace, [PYTHON, '-c', py, addr, String(port), payload]);
  if (r.code !== 0) throw new Error(`WireGuard send failed: ${r.stderr}`);
}

/** An HTTPS proxy (HTTP CONNECT) in the internet namespace; it prints `CONNECT <target>` per request. */
export async function connectProxy(
  addr: string,
  port: number,
  hosts: Readonly<Record<string, string>>,
): Promise<Probe> {
  const py = `
import socket, sys, threading
hosts = dict(a.split('=', 1) for a in sys.argv[3:])
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
def handle(c):
    try:
        buf = b''
        while b'\\r\\n\\r\\n' not in buf:
            d = c.recv(4096)
            if not d:
                return
            buf += d
        method, target = buf.split(b'\\r\\n')[0].decode().split(' ')[:2]
        print(method, target, flush=True)
        host, p = target.rsplit(':', 1)
        u = socket.create_connection((hosts.get(host, host), int(p)), timeout=5)
        c.sendall(b'HTTP/1.1 200 Connection established\\r\\n\\r\\n')
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        pipe(c, u)
    except OSError:
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;
  const p = new Probe('internet', [
    PYTHON,
    '-c',
    py,
    addr,
    String(port),
    ...Object.entries(hosts).map(([k, v]) => `${k}=${v}`),
  ]);
  await p.until(`CONNECT proxy ${addr}:${port}`, () => listening('internet', 'tcp', addr, port));
  return p;
}
