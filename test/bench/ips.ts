/**
 * bench:ips — a bulk HTTPS download and an iperf3 TCP flow from the internet to a
 * guest, each through a VM in `ips` mode with Suricata's bypass, through a VM with
 * IPS off, and through `ips` without bypass, in the same run. Prints the six figures
 * and the ratios against IPS off.
 *
 *   npm run bench:ips      (root; builds and removes its own lab)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_TOPOLOGY, labDown, labUp, readState, startService } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';

const STATE = '/run/portcullis-bench-ips';
const NS = (n: string): string => `${process.env.PORTCULLIS_LAB_NS_PREFIX ?? ''}${n}`;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
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
  const args = ['curl', '-sS', '-X', method, `http://${mgmt}:${t.api.port}${path}`];
  if (body !== undefined)
    args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
  return sh('host', ...args);
}

async function waitRunning(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    try {
      if (
        (JSON.parse(api('GET', '/api/v1/ips')) as { suricata: { status: string } }).suricata.status ===
        'running'
      )
        return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('Suricata did not start');
}

/** Download direction (internet → guest), like a browser fetching a large file. */
function iperf(guest: string): number {
  const out = sh(guest, 'iperf3', '-c', web, '-t', String(SECONDS), '-O', '1', '-R', '-J');
  return (
    (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received
      .bits_per_second / 1e9
  );
}

function https(guest: string): number {
  const out = sh(
    guest,
    'curl',
    '-sk',
    '-o',
    '/dev/null',
    '--max-time',
    '60',
    '-w',
    '%{speed_download}',
    `https://${web}/bytes?n=${HTTPS_BYTES}`,
  );
  return (Number(out) * 8) / 1e9;
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

async function main(): Promise<void> {
  console.error('bench:ips: building the lab');
  await labUp({ topology: t, topologyFile: DEFAULT_TOPOLOGY, stateDir: STATE });
  try {
    execFileSync('ip', ['netns', 'exec', NS('internet'), 'iperf3', '-s', '-D', '-B', web]);
    api('PATCH', '/api/v1/vms/work', { profile: 'open' });
    await waitRunning();
    const r: Record<string, number> = {};
    // kid: ips, fail-closed; work: IPS off
    let q0 = queued();
    r.https_ips_bypass = https('kid');
    r.https_ips_bypass_queued = queued() - q0;
    r.https_off = https('work');
    q0 = queued();
    r.tcp_ips_bypass = iperf('kid');
    r.tcp_ips_bypass_queued = queued() - q0;
    r.tcp_off = iperf('work');
    console.error('bench:ips: restarting with bypass off');
    await restartWithBypass(false);
    q0 = queued();
    r.https_ips_no_bypass = https('kid');
    r.tcp_ips_no_bypass = iperf('kid');
    r.no_bypass_queued = queued() - q0;
    const out = {
      benchmark: 'ips',
      gbit_s: {
        https: {
          ips_bypass: +r.https_ips_bypass!.toFixed(3),
          off: +r.https_off!.toFixed(3),
          ips_no_bypass: +r.https_ips_no_bypass!.toFixed(3),
        },
        tcp: {
          ips_bypass: +r.tcp_ips_bypass!.toFixed(3),
          off: +r.tcp_off!.toFixed(3),
          ips_no_bypass: +r.tcp_ips_no_bypass!.toFixed(3),
        },
      },
      ratio_vs_off: {
        https_bypass: +(r.https_ips_bypass! / r.https_off!).toFixed(3),
        https_no_bypass: +(r.https_ips_no_bypass! / r.https_off!).toFixed(3),
        tcp_bypass: +(r.tcp_ips_bypass! / r.tcp_off!).toFixed(3),
        tcp_no_bypass: +(r.tcp_ips_no_bypass! / r.tcp_off!).toFixed(3),
      },
      packets_queued: {
        https_bypass: r.https_ips_bypass_queued,
        tcp_bypass: r.tcp_ips_bypass_queued,
        no_bypass_both: r.no_bypass_queued,
      },
      targets: { https_bypass: 0.85, tcp_bypass: 0.5 },
    };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await labDown({ stateDir: STATE, topology: t });
  }
}

await main();
