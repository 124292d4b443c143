/**
 * bench:ips — a bulk HTTPS download and an iperf3 TCP flow from the internet to a
 * guest, each through a VM in `ips` mode with Suricata's bypass, through a VM with
 * IPS off, and through `ips` without bypass, in the same run. Suricata runs with the
 * kid profile's lists and bypass rules loaded (the lab's `dns.listsDir`: names.ts).
 * Prints the figures, the ratios against IPS off, and the CPU time each process took
 * during each download (Suricata, the TLS or iperf3 server, the client, the service).
 *
 * Rounds (BENCH_ROUNDS, default 3) alternate the order (off first, then ips first),
 * so that neither case always runs on a cold or a warm machine; the JSON has the
 * medians and every round.
 *
 * Alert → block: a guest in a profile that blocks on alerts sends a UDP stream (one
 * datagram a millisecond) to a remote host; one datagram triggers an alert; the time
 * from sending it to sending the first datagram that never arrives (the kernel drops
 * everything to the blocked remote from then on) is `alert_to_block_ms`, over
 * BENCH_ALERT_TRIALS (default 20) trials, the block removed between them.
 *
 *   npm run bench:ips      (root; builds and removes its own lab)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_TOPOLOGY, labDown, labUp, readState, startService } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';

const STATE = process.env.PORTCULLIS_BENCH_DIR ?? '/run/portcullis-bench-ips';
const NS = (n: string): string => `${process.env.PORTCULLIS_LAB_NS_PREFIX ?? ''}${n}`;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ALERT_TRIALS = Number(process.env.BENCH_ALERT_TRIALS ?? 20);
const HTTPS_BYTES = Number(process.env.BENCH_HTTPS_BYTES ?? 400_000_000);
const t = loadTopology(DEFAULT_TOPOLOGY);
const web = t.internet.web;
const mgmt = t.mgmt.secvm.split('/')[0]!;

function sh(ns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NS(ns), ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 120_000,
  });
}

function api(method: string, path: string, body?: unknown): string {
  const auth = readState(STATE)?.auth;
  if (!auth) throw new Error(`the bench lab in ${STATE} is not up`);
  // the service speaks TLS with a self-signed certificate; the lab's admin token
  const args = ['curl', '-sS', '--cacert', auth.cert, '-H', `authorization: Bearer ${auth.token}`];
  args.push('-X', method, `https://${mgmt}:${t.api.port}${path}`);
  if (body !== undefined)
    args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
  // quiet: waitRunning polls while the service restarts
  return execFileSync('ip', ['netns', 'exec', NS('host'), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/** Until the inline Suricata, and the passive one if there is one, run. */
async function waitRunning(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    try {
      const s = JSON.parse(api('GET', '/api/v1/ips')) as {
        suricata: { status: string };
        ids?: { status: string } | null;
      };
      if (s.suricata.status === 'running' && (!s.ids || s.ids.status === 'running')) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('Suricata did not start');
}

/** CPU seconds (user + system, all threads) of a process, from /proc; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/** The pids of a namespace whose command line matches. */
function pidsIn(ns: string, match: (cmdline: string, comm: string) => boolean): number[] {
  const out = execFileSync('ip', ['netns', 'pids', NS(ns)], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        return match(cmd, comm);
      } catch {
        return false;
      }
    });
}

/** The processes whose CPU time each run reports. */
function watched(): Record<string, number[]> {
  return {
    suricata: pidsIn(
      'secvm',
      (c, comm) => (comm === 'Suricata-Main' || comm === 'suricata') && c.includes(' -q '),
    ),
    suricata_ids: pidsIn(
      'secvm',
      (c, comm) => (comm === 'Suricata-Main' || comm === 'suricata') && c.includes('--af-packet'),
    ),
    service: pidsIn('secvm', (c) => c.includes('node') && c.includes(' serve ')),
    tls_server: pidsIn('internet', (c) => c.includes('internet-server')),
    iperf3_server: pidsIn('internet', (c) => c.startsWith('iperf3 ')),
  };
}

type Cpu = Record<string, number>;

/**
 * Run `fn` (which returns its client's CPU seconds) and the CPU seconds each watched
 * process took meanwhile; a process that started or ended in between (the passive
 * Suricata restarting) does not count.
 */
function withCpu<T>(fn: () => { value: T; client: number }): { value: T; cpu: Cpu; wall: number } {
  const procs = watched();
  const before = new Map(
    Object.values(procs).flatMap((pids) => pids.map((p) => [p, cpuSeconds(p)] as const)),
  );
  const t0 = process.hrtime.bigint();
  const { value, client } = fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu: Cpu = { client: +client.toFixed(2) };
  for (const [k, pids] of Object.entries(procs)) {
    let sum = 0;
    for (const p of pids) {
      const after = cpuSeconds(p);
      if (after > 0 && after >= before.get(p)!) sum += after - before.get(p)!;
    }
    cpu[k] = +sum.toFixed(2);
  }
  return { value, cpu, wall: +wall.toFixed(2) };
}

/** A client command in a guest under /usr/bin/time: its output and its CPU seconds. */
function timed(guest: string, argv: string[]): { out: string; cpu: number } {
  const file = `/tmp/portcullis-bench-ips-time-${process.pid}`;
  const out = sh(guest, '/usr/bin/time', '-f', '%U %S', '-o', file, ...argv);
  const [u, st] = readFileSync(file, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { out, cpu: u! + st! };
}

/** Download direction (internet → guest), like a browser fetching a large file. */
function iperf(guest: string): { value: number; client: number } {
  const r = timed(guest, ['iperf3', '-c', web, '-t', String(SECONDS), '-O', '1', '-R', '-J']);
  const gbit =
    (JSON.parse(r.out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received
      .bits_per_second / 1e9;
  return { value: gbit, client: r.cpu };
}

function https(guest: string): { value: number; client: number } {
  const r = timed(guest, [
    'curl',
    '-sk',
    '-o',
    '/dev/null',
    '--max-time',
    '60',
    '-w',
    '%{speed_download}',
    `https://${web}/bytes?n=${HTTPS_BYTES}`,
  ]);
  return { value: (Number(r.out) * 8) / 1e9, client: r.cpu };
}

function queued(): number {
  // packets sent to userspace so far: the id sequence of queue 0 (8th field of nfnetlink_queue)
  const line = sh('secvm', 'cat', '/proc/net/netfilter/nfnetlink_queue').trim().split('\n')[0] ?? '';
  return Number(line.trim().split(/\s+/)[7] ?? 0);
}

async function restartWithBypass(bypass: boolean): Promise<void> {
  const state = readState(STATE)!;
  const file = join(STATE, 'secvm.yaml');
  const cfg = parse(readFileSync(file, 'utf8')) as { suricata: { bypass: boolean } };
  cfg.suricata.bypass = bypass;
  writeFileSync(file, stringify(cfg));
  const pid = state.services.find((s) => s.name === 'portcullis')?.pid;
  if (pid) process.kill(-pid, 'SIGTERM');
  // like systemd: the new instance starts once the old one has stopped (Suricata takes seconds)
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 300 && pid !== undefined && alive(pid); i++)
    await new Promise((r) => setTimeout(r, 100));
  startService(state);
  await waitRunning();
}

/** Names Suricata loaded from the generated datasets (the kid's lists). */
function namesLoaded(): number {
  const dir = join(STATE, 'secvm-data', 'suricata', 'policy');
  return readdirSync(dir)
    .filter((f) => f.startsWith('pc-names-') && f.endsWith('.lst'))
    .reduce((n, f) => n + readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).length, 0);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const percentile = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * Alert → block, in ms, per trial: `guest` streams UDP to `remote`:9001, datagram 100
 * carries the lab rule's ALERTME (sid 1000005, severity 1); the remote records what
 * arrives. The same clock (CLOCK_MONOTONIC) stamps the sends in both namespaces.
 */
async function alertToBlock(guest: string, remote: string): Promise<number[]> {
  const rx = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9001))
s.settimeout(1.5)
seen = []
print('ready', flush=True)
try:
    while True:
        seen.append(int(s.recv(256).split(b' ')[0]))
except socket.timeout:
    pass
print(' '.join(map(str, seen)), flush=True)
`;
  const tx = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = []
start = time.monotonic_ns()
for i in range(700):
    while time.monotonic_ns() < start + i * 1_000_000:
        pass
    sent.append(time.monotonic_ns())
    s.sendto(f'{i} {"ALERTME" if i == 100 else "x"}'.encode(), (sys.argv[1], 9001))
print(' '.join(map(str, sent)))
`;
  const out: number[] = [];
  let invalid = 0;
  while (out.length < ALERT_TRIALS) {
    if (invalid > ALERT_TRIALS) throw new Error(`alert → block: ${invalid} trials without a measurement`);
    const receiver = spawn('ip', ['netns', 'exec', NS('internet'), 'python3', '-c', rx, remote]);
    let received = '';
    receiver.stdout.on('data', (b: Buffer) => (received += b.toString()));
    for (let i = 0; i < 100 && !received.includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
    const sent = sh(guest, 'python3', '-c', tx, remote).trim().split(' ').map(Number);
    await new Promise<void>((r) => receiver.on('exit', () => r()));
    const seen = new Set(received.split('\n')[1]!.trim().split(' ').filter(Boolean).map(Number));
    let first = sent.length;
    while (first > 101 && !seen.has(first - 1)) first--;
    // a lost trigger (a loaded machine) or no block within the stream: not a measurement
    if (!seen.has(100) || first === sent.length) invalid++;
    else out.push((sent[first]! - sent[100]!) / 1e6);
    api('DELETE', `/api/v1/ips/blocks/${remote}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  if (invalid > 0)
    console.error(`bench:ips: alert → block: ${invalid} trials lost the trigger or saw no block`);
  return out;
}

async function main(): Promise<void> {
  console.error('bench:ips: building the lab');
  await labUp({ topology: t, topologyFile: DEFAULT_TOPOLOGY, stateDir: STATE });
  try {
    execFileSync('ip', ['netns', 'exec', NS('internet'), 'iperf3', '-s', '-D', '-B', web]);
    api('PATCH', '/api/v1/vms/work', { profile: 'open' });
    // the passive Suricata restarts for the new set of ids VMs
    await new Promise((r) => setTimeout(r, 2000));
    await waitRunning();
    const names = namesLoaded();
    console.error(`bench:ips: Suricata has the kid's lists: ${names} names`);
    type Run = { gbit: number; cpu: Cpu; wall: number };
    const runs: Record<string, Run[]> = { https_bypass: [], https_off: [], tcp_bypass: [], tcp_off: [] };
    const queuedBy: Record<string, number[]> = { https_bypass: [], tcp_bypass: [] };
    const run = (key: string, fn: () => { value: number; client: number }): void => {
      const q0 = queued();
      const { value, cpu, wall } = withCpu(fn);
      runs[key]!.push({ gbit: +value.toFixed(3), cpu, wall });
      if (key in queuedBy) queuedBy[key]!.push(queued() - q0);
      console.error(`bench:ips: ${key} ${value.toFixed(2)} Gbit/s cpu ${JSON.stringify(cpu)}`);
    };
    // kid: ips, fail-closed; work: IPS off. Rounds alternate which goes first.
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ['off', 'bypass'] : ['bypass', 'off'];
      for (const o of order) run(`https_${o}`, () => https(o === 'off' ? 'work' : 'kid'));
      for (const o of order) run(`tcp_${o}`, () => iperf(o === 'off' ? 'work' : 'kid'));
    }

    // alert → block: browse in a profile that blocks the remote on any alert
    api('POST', '/api/v1/profiles', {
      name: 'bench-alert',
      internet: 'open',
      rules: [],
      reach: [],
      ips: { mode: 'ips', failure: 'fail-open' },
      alerts: { block: { maxSeverity: 3, duration: 600 } },
    });
    api('PATCH', '/api/v1/vms/browse', { profile: 'bench-alert' });
    const blockMs = await alertToBlock('browse', t.internet.hosts['other.test']!);
    console.error(
      `bench:ips: alert → block over ${blockMs.length} trials: p50 ${percentile(blockMs, 50).toFixed(1)} ms, p99 ${percentile(blockMs, 99).toFixed(1)} ms, max ${Math.max(...blockMs).toFixed(1)} ms; every trial: ${blockMs.map((x) => x.toFixed(1)).join(' ')}`,
    );

    console.error('bench:ips: restarting with bypass off');
    await restartWithBypass(false);
    const q0 = queued();
    const noBypassHttps = withCpu(() => https('kid'));
    const noBypassTcp = withCpu(() => iperf('kid'));
    const noBypassQueued = queued() - q0;

    const med = (key: string): number => +median(runs[key]!.map((x) => x.gbit)).toFixed(3);
    const ratios = (kind: 'https' | 'tcp'): number[] =>
      runs[`${kind}_bypass`]!.map((x, i) => +(x.gbit / runs[`${kind}_off`]![i]!.gbit).toFixed(3));
    const out = {
      benchmark: 'ips',
      names_loaded: names,
      rounds: ROUNDS,
      gbit_s: {
        https: {
          ips_bypass: med('https_bypass'),
          off: med('https_off'),
          ips_no_bypass: +noBypassHttps.value.toFixed(3),
        },
        tcp: {
          ips_bypass: med('tcp_bypass'),
          off: med('tcp_off'),
          ips_no_bypass: +noBypassTcp.value.toFixed(3),
        },
      },
      ratio_vs_off: {
        https_bypass: +median(ratios('https')).toFixed(3),
        https_bypass_rounds: ratios('https'),
        https_no_bypass: +(noBypassHttps.value / med('https_off')).toFixed(3),
        tcp_bypass: +median(ratios('tcp')).toFixed(3),
        tcp_bypass_rounds: ratios('tcp'),
        tcp_no_bypass: +(noBypassTcp.value / med('tcp_off')).toFixed(3),
      },
      packets_queued: {
        https_bypass: median(queuedBy.https_bypass!),
        tcp_bypass: median(queuedBy.tcp_bypass!),
        no_bypass_both: noBypassQueued,
      },
      /** CPU seconds per process during each download, every round (`wall` in seconds). */
      cpu_s: {
        ...runs,
        https_no_bypass: [{ gbit: noBypassHttps.value, cpu: noBypassHttps.cpu, wall: noBypassHttps.wall }],
        tcp_no_bypass: [{ gbit: noBypassTcp.value, cpu: noBypassTcp.cpu, wall: noBypassTcp.wall }],
      },
      alert_to_block_ms: {
        trials: blockMs.length,
        p50: +percentile(blockMs, 50).toFixed(1),
        max: +Math.max(...blockMs).toFixed(1),
      },
      alert_to_block_p99_ms: +percentile(blockMs, 99).toFixed(1),
      targets: { https_bypass: 0.85, tcp_bypass: 0.85, alert_to_block_p99_ms: 50 },
    };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await labDown({ stateDir: STATE, topology: t });
  }
}

await main();
