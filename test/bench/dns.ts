/**
 * bench:dns — the DNS filter with 1,000,000 list entries against dnsmasq answering the
 * same names directly, same machine, same run, measured with dnsperf.
 *
 *   npm run bench:dns
 *
 * Everything runs on 127.0.0.1: an upstream dnsmasq, a second dnsmasq as the baseline,
 * the filter in a child process (this file with --serve), and a bare Node UDP
 * responder (this file with --echo: flips the QR bit, no DNS work) on one plain dgram
 * socket, which shows where the filter would stand without its batched socket
 * (recvmmsg/sendmmsg, see gateway/src/dns/udp-batch.ts). Per target:
 *   - throughput: dnsperf at saturation (-q outstanding) for BENCH_SECONDS, BENCH_ROUNDS
 *     times, interleaved; the median is reported;
 *   - latency: dnsperf -v at a fixed rate (BENCH_QPS) and at saturation, p50/p99 from
 *     its per-query latencies.
 * The query file mixes allowed A/AAAA names (cached after a warm-up pass) with names
 * on the 1M blocklist (answered with the block page). Every loop is bounded in count
 * and time; all processes are stopped on exit.
 *
 * The filter runs as the service runs it: the asking client is a VM of an applied
 * policy (the lab's VMs and 50 in all, the asking one with a rule on bench.test), and
 * every allowed answer goes through the service's `onResolved` (app.ts's, with
 * nft/learned.ts's `AddressLearner`) into that VM's nftables set, in the kernel. So the whole bench runs
 * in a scratch network namespace of its own (`<PORTCULLIS_LAB_NS_PREFIX>bench-dns`),
 * everything on its loopback.
 *
 * Environment: BENCH_SECONDS (default 10), BENCH_ROUNDS (default 2), BENCH_QPS
 * (default 5000), BENCH_ENTRIES (default 1000000), BENCH_OUTSTANDING (default 100).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Value } from 'typebox/value';
import { DEFAULT_TOPOLOGY, labServiceConfig } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';
import { Config } from '../../gateway/src/config.js';
import { DnsFilter } from '../../gateway/src/dns/server.js';
import { buildQuery, TYPE } from '../../gateway/src/dns/wire.js';
import { NftApplier } from '../../gateway/src/nft/applier.js';
import { NftCli, openNftBackend } from '../../gateway/src/nft/cli.js';
import { AddressLearner } from '../../gateway/src/nft/learned.js';
import { NftSync } from '../../gateway/src/nft/sync.js';
import { groupByPrefix } from '../../gateway/src/policy/intervals.js';
import type { Policy, Vm } from '../../gateway/src/policy/model.js';
import type { GatewayNetwork } from '../../gateway/src/policy/network.js';
import { benchPolicy } from './fixtures.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Math.min(10, Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2)));
const LAT_QPS = Number(process.env.BENCH_QPS ?? 5_000);
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 1_000_000);
const OUTSTANDING = Number(process.env.BENCH_OUTSTANDING ?? 100);
const ALLOWED_A = 900;
const ALLOWED_AAAA = 300;
const BLOCKED = 100;
const BLOCK_PAGE = '192.0.2.80';

const blockEntry = (i: number): string => `ad${i}.trk${i % 1000}.bench-block${i % 7}.com`;

// ---------------------------------------------------------------- child: the filter

async function serve(args: string[]): Promise<void> {
  const opt = (name: string): string => {
    const i = args.indexOf(name);
    const v = i >= 0 ? args[i + 1] : undefined;
    if (v === undefined) throw new Error(`missing ${name}`);
    return v;
  };
  const registry = new Registry();
  const log = pino({ name: 'portcullis', level: 'info' }, pino.destination('/dev/null'));
  // the service's nftables part, wired as app.ts wires it, with the asking VM's policy applied
  const t = loadTopology(DEFAULT_TOPOLOGY);
  const network = (labServiceConfig(t, '/tmp') as { network: GatewayNetwork }).network;
  const base = benchPolicy(t, 50 - t.guests.length, []);
  const asking: Vm = {
    ...base.vms.find((v) => v.name === 'kid')!,
    rules: [{ id: 'bench', action: 'accept', to: { domain: 'bench.test' } }],
  };
  const vmPolicy: Policy = { ...base, vms: base.vms.map((v) => (v.name === asking.name ? asking : v)) };
  const nft = await openNftBackend('libnftables');
  let transactions = 0;
  const run = nft.run.bind(nft);
  nft.run = (c, o) => {
    transactions++;
    return run(c, o);
  };
  const applier = new NftApplier(nft, { log: log.child({ part: 'nft' }), bulk: new NftCli() });
  const { driftInterval } = Value.Default(Config.properties.nft, {}) as Config['nft'];
  const sync = new NftSync({
    applier,
    network,
    registry,
    log: log.child({ part: 'nft-sync' }),
    driftIntervalSeconds: driftInterval,
    lists: () => ({ deny: groupByPrefix([]) }),
  });
  await sync.apply(vmPolicy);
  sync.start();
  transactions = 0;
  const vms = new Map([[asking.name, asking]]);
  let learnFailures = 0;
  let resolved = 0;
  const policy = { client: asking.name, categories: ['bench'], safeSearch: true, blockDoh: true };
  // counts the failures the service would log
  const learnLog = pino({ level: 'warn' }, { write: () => void learnFailures++ });
  const learner = new AddressLearner({
    applier,
    policy: () => sync.policy,
    vm: (client) => vms.get(client),
    inService: (vm, name, svc) => filter.inService(name, vm.name, svc),
    now: Date.now,
    log: learnLog,
  });
  const filter: DnsFilter = new DnsFilter({
    listen: [{ address: '127.0.0.1', port: 0 }],
    upstreams: [{ address: '127.0.0.1', port: Number(opt('--upstream')) }],
    identify: () => policy,
    blockPage: { v4: BLOCK_PAGE },
    cache: { maxEntries: 50_000 },
    registry,
    logger: log.child({ part: 'dns' }),
    // app.ts's hook: the answer's addresses into the VM's sets
    onResolved: (e) => {
      resolved++;
      learner.learn(e);
    },
  });
  const t0 = performance.now();
  const report = await filter.loadLists([{ name: 'bench', kind: 'category', files: [opt('--list')] }]);
  const loadMs = performance.now() - t0;
  await filter.start();
  const rss = process.memoryUsage().rss;
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', port: filter.addresses()[0]?.port, loadMs, entries: report.entries, rssMiB: Math.round(rss / 2 ** 20) })}\n`,
  );
  const stop = async (): Promise<void> => {
    const metrics = await registry.getMetricsAsJSON();
    const value = (name: string): number =>
      (metrics.find((m) => m.name === name)?.values ?? []).reduce(
        (s, v) => s + (v as { value: number }).value,
        0,
      );
    await filter.stop();
    sync.stop();
    const learnedSets = applier.applied!.sets.filter(
      (s) => s.name.startsWith('r4_kid_') || s.name.startsWith('r6_kid_'),
    );
    const learned = learnedSets.reduce((n, s) => n + applier.dynamicElements(s.name).length, 0);
    process.stdout.write(
      `${JSON.stringify({ event: 'stopped', queries: value('portcullis_dns_queries_total'), cacheHits: value('portcullis_dns_cache_hits_total'), upstreamErrors: value('portcullis_dns_upstream_errors_total'), resolved, nftTransactions: transactions, learned, learnFailures })}\n`,
    );
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // never outlive the parent by much
  setTimeout(() => void stop(), 600_000).unref();
}

// ---------------------------------------------------------------- child: the Node floor

/** Answer every datagram with itself, QR set: a plain dgram socket's round trip with no DNS work. */
function echo(): void {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    msg[2] = (msg[2] as number) | 0x80;
    sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ event: 'ready', port: sock.address().port })}\n`);
  });
  process.on('SIGTERM', () => sock.close(() => process.exit(0)));
  setTimeout(() => process.exit(0), 600_000).unref();
}

// ---------------------------------------------------------------- parent: the bench

const children = new Set<ChildProcess>();

function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    [...children].map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
          p.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A dnsmasq on 127.0.0.1 answering the bench names from its own config. */
async function startDnsmasq(
  blockedNames: readonly string[],
  confFile: string,
): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const conf = [
    'address=/bench.test/198.51.100.1',
    'address=/bench.test/2001:db8::1',
    ...blockedNames.map((n) => `address=/${n}/${BLOCK_PAGE}`),
    'local-ttl=3600',
    'cache-size=10000',
  ].join('\n');
  await writeFile(confFile, `${conf}\n`);
  const proc = track(
    spawn(
      'dnsmasq',
      [
        '--no-daemon',
        '--no-resolv',
        '--no-hosts',
        `--conf-file=${confFile}`,
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  await waitForAnswer(port, proc);
  return { port, proc };
}

async function waitForAnswer(port: number, proc: ChildProcess): Promise<void> {
  const q = buildQuery(0xabcd, 'check.bench.test', TYPE.A, 1232);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`process on port ${port} exited with ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      const timer = setTimeout(() => {
        s.close();
        resolve(false);
      }, 200);
      s.on('message', () => {
        clearTimeout(timer);
        s.close();
        resolve(true);
      });
      s.send(q, port, '127.0.0.1');
    });
    if (ok) return;
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

interface PerfResult {
  readonly qps: number;
  readonly avgMs: number;
  readonly lost: number;
  readonly sent: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly p999Ms?: number;
}

/** Run dnsperf, bounded by -l and by a hard timeout. */
function dnsperf(port: number, queryFile: string, extra: string[], verbose: boolean): PerfResult {
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-c', '4', ...extra];
  if (verbose) args.push('-v');
  const r = spawnSync('dnsperf', args, {
    encoding: 'utf8',
    maxBuffer: 512 << 20,
    timeout: (SECONDS + 30) * 1000,
  });
  if (r.status !== 0) throw new Error(`dnsperf failed (${r.status ?? r.signal}): ${r.stderr}`);
  const out = r.stdout;
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const result: PerfResult = {
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lost: num(/Queries lost:\s+(\d+)/),
    sent: num(/Queries sent:\s+(\d+)/),
  };
  if (!verbose) return result;
  const lat: number[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('> ')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) lat.push(v * 1000);
  }
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? NaN;
  return { ...result, p50Ms: pct(50), p99Ms: pct(99), p999Ms: pct(99.9) };
}

function medianRun(rs: PerfResult[]): PerfResult {
  const sorted = [...rs].sort((a, b) => a.qps - b.qps);
  return sorted[Math.floor((sorted.length - 1) / 2)] as PerfResult;
}

interface Child {
  readonly proc: ChildProcess;
  readonly ready: Record<string, unknown>;
  readonly events: Record<string, unknown>[];
}

/** Start this file in another mode; resolves on its `ready` line (JSON on stdout). */
async function startChild(args: string[]): Promise<Child> {
  const proc = track(
    spawn(process.execPath, [...process.execArgv, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const events: Record<string, unknown>[] = [];
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not ready within 60 s`)), 60_000);
    const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      const e = JSON.parse(line) as Record<string, unknown>;
      events.push(e);
      if (e.event === 'ready') {
        clearTimeout(timer);
        resolve(e);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}`));
    });
  });
  return { proc, ready, events };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  // 'close' comes after stdout is drained, so the child's last line has been read
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function main(): Promise<void> {
  for (const tool of ['dnsmasq', 'dnsperf']) {
    if (spawnSync(tool, ['--version']).error !== undefined) {
      throw new Error(
        `${tool} not found: apt-get install ${tool === 'dnsmasq' ? 'dnsmasq-base' : 'dnsperf'}`,
      );
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-dns-'));
  const guard = setTimeout(
    () => {
      console.error('bench:dns: overall time limit reached, stopping');
      void stopAll().then(() => process.exit(2));
    },
    (SECONDS * (3 * ROUNDS + 5) + 180) * 1000,
  );
  try {
    // 1,000,000 synthetic list entries
    const listFile = join(dir, 'blocklist.txt');
    const lines = ['# synthetic bench list'];
    for (let i = 0; i < ENTRIES; i++) lines.push(blockEntry(i));
    await writeFile(listFile, `${lines.join('\n')}\n`);

    // the query file: allowed names (cached after warm-up) and blocked names, shuffled
    const rand = lcg(42);
    const blockedNames = Array.from(
      { length: BLOCKED },
      () => `www.${blockEntry(Math.floor(rand() * ENTRIES))}`,
    );
    const queries = [
      ...Array.from({ length: ALLOWED_A }, (_, i) => `h${i}.bench.test A`),
      ...Array.from({ length: ALLOWED_AAAA }, (_, i) => `h${i}.bench.test AAAA`),
      ...blockedNames.map((n) => `${n} A`),
    ];
    for (let i = queries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [queries[i], queries[j]] = [queries[j] as string, queries[i] as string];
    }
    const queryFile = join(dir, 'queries.txt');
    await writeFile(queryFile, `${queries.join('\n')}\n`);

    const upstream = await startDnsmasq(blockedNames, join(dir, 'upstream.conf'));
    const direct = await startDnsmasq(blockedNames, join(dir, 'direct.conf'));

    // the filter, and the bare Node responder, each in its own process
    const self = fileURLToPath(import.meta.url);
    const filterChild = await startChild([
      self,
      '--serve',
      '--upstream',
      String(upstream.port),
      '--list',
      listFile,
    ]);
    const info = filterChild.ready;
    const filterPort = Number(info.port);
    console.error(
      `bench:dns: filter up on 127.0.0.1:${filterPort}: ${info.entries} entries loaded in ${Math.round(Number(info.loadMs))} ms, RSS ${info.rssMiB} MiB`,
    );
    const echoChild = await startChild([self, '--echo']);
    const echoPort = Number(echoChild.ready.port);

    // warm-up: every query once through the filter (fills the cache)
    dnsperf(filterPort, queryFile, ['-n', '2', '-q', '20'], false);

    const sat = ['-l', String(SECONDS), '-q', String(OUTSTANDING)];
    const paced = ['-l', String(SECONDS), '-q', String(OUTSTANDING), '-Q', String(LAT_QPS)];
    const runs: { dnsmasq: PerfResult[]; echo: PerfResult[]; filter: PerfResult[] } = {
      dnsmasq: [],
      echo: [],
      filter: [],
    };
    for (let round = 1; round <= ROUNDS; round++) {
      runs.dnsmasq.push(dnsperf(direct.port, queryFile, sat, false));
      runs.echo.push(dnsperf(echoPort, queryFile, sat, false));
      runs.filter.push(dnsperf(filterPort, queryFile, sat, false));
      console.error(
        `bench:dns: round ${round}/${ROUNDS} (${SECONDS} s each): dnsmasq ${Math.round(runs.dnsmasq.at(-1)!.qps)} q/s, ` +
          `dgram echo ${Math.round(runs.echo.at(-1)!.qps)} q/s, filter ${Math.round(runs.filter.at(-1)!.qps)} q/s`,
      );
    }
    const dSat = medianRun(runs.dnsmasq);
    const eSat = medianRun(runs.echo);
    const fSat = medianRun(runs.filter);
    console.error(`bench:dns: latency at ${LAT_QPS} q/s and at saturation (dnsperf -v), ${SECONDS} s each`);
    const dLat = dnsperf(direct.port, queryFile, paced, true);
    const fLat = dnsperf(filterPort, queryFile, paced, true);
    const dSatV = dnsperf(direct.port, queryFile, sat, true);
    const fSatV = dnsperf(filterPort, queryFile, sat, true);

    await stopChild(echoChild.proc);
    await stopChild(filterChild.proc);
    const summary = filterChild.events.find((e) => e.event === 'stopped');

    const ratio = fSat.qps / dSat.qps;
    const f2 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(2));
    const row = (name: string, s: PerfResult, l: PerfResult, v: PerfResult): string =>
      `${name.padEnd(10)} ${Math.round(s.qps).toString().padStart(9)} ${f2(s.avgMs).padStart(8)} ${String(s.lost).padStart(6)} | ` +
      `${f2(l.p50Ms).padStart(7)} ${f2(l.p99Ms).padStart(7)} ${f2(l.p999Ms).padStart(7)} ${String(l.lost).padStart(5)} | ` +
      `${f2(v.p50Ms).padStart(7)} ${f2(v.p99Ms).padStart(7)}`;
    console.log('');
    console.log(
      `DNS filter vs dnsmasq, 127.0.0.1, ${queries.length} query names (${ALLOWED_A} A + ${ALLOWED_AAAA} AAAA allowed+cached, ${BLOCKED} blocked), dnsperf -c 4 -q ${OUTSTANDING}`,
    );
    console.log(
      `list: ${info.entries} entries, load+index ${Math.round(Number(info.loadMs))} ms, filter RSS ${info.rssMiB} MiB`,
    );
    console.log('');
    console.log(
      `${''.padEnd(10)} ${'sat. q/s'.padStart(9)} ${'avg ms'.padStart(8)} ${'lost'.padStart(6)} | ${`@${LAT_QPS}/s`.padEnd(7)} p50    p99   p99.9  lost | sat. p50  p99`,
    );
    console.log(row('dnsmasq', dSat, dLat, dSatV));
    console.log(row('filter', fSat, fLat, fSatV));
    console.log(
      `${'dgram echo'.padEnd(10)} ${Math.round(eSat.qps).toString().padStart(9)} ${f2(eSat.avgMs).padStart(8)} ${String(eSat.lost).padStart(6)} |  (plain Node dgram socket, no DNS work)`,
    );
    console.log('');
    console.log(
      `saturation q/s per round: dnsmasq ${runs.dnsmasq.map((r) => Math.round(r.qps)).join(', ')}; ` +
        `filter ${runs.filter.map((r) => Math.round(r.qps)).join(', ')}; dgram echo ${runs.echo.map((r) => Math.round(r.qps)).join(', ')}`,
    );
    console.log(
      `throughput ratio filter/dnsmasq: ${ratio.toFixed(2)} (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'NOT met'})`,
    );
    console.log(
      `dgram echo/dnsmasq: ${(eSat.qps / dSat.qps).toFixed(2)}; filter/dgram echo: ${(fSat.qps / eSat.qps).toFixed(2)}`,
    );
    console.log(
      `filter p99 at ${LAT_QPS} q/s: ${f2(fLat.p99Ms)} ms (target < 5 ms: ${(fLat.p99Ms ?? Infinity) < 5 ? 'met' : 'NOT met'})`,
    );
    if (summary !== undefined) {
      console.log(
        `filter counters: ${summary.queries} queries, ${summary.cacheHits} cache hits, ${summary.upstreamErrors} upstream errors; ` +
          `${summary.resolved} answers learned from: ${summary.learned} addresses in the VM's sets, ${summary.nftTransactions} nft transactions, ${summary.learnFailures} failed`,
      );
    }
    console.log(
      JSON.stringify({
        entries: info.entries,
        loadMs: Math.round(Number(info.loadMs)),
        latencyQps: LAT_QPS,
        dnsmasq: { qps: Math.round(dSat.qps), p99Ms: dLat.p99Ms, satP99Ms: dSatV.p99Ms },
        filter: { qps: Math.round(fSat.qps), p99Ms: fLat.p99Ms, satP99Ms: fSatV.p99Ms },
        dgramEcho: { qps: Math.round(eSat.qps) },
        ratio: Number(ratio.toFixed(3)),
      }),
    );
  } finally {
    clearTimeout(guard);
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--echo')) {
  echo();
} else if (process.argv.includes('--serve')) {
  serve(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.env.PORTCULLIS_BENCH_NETNS === undefined) {
  // the bench again, inside a network namespace of its own (its nftables table is real)
  const netns = `${process.env.PORTCULLIS_LAB_NS_PREFIX ?? ''}bench-dns`;
  spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  const setup = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
  if (setup.status !== 0) throw new Error(`bench:dns: cannot add namespace ${netns}: ${setup.stderr}`);
  let r: ReturnType<typeof spawnSync>;
  try {
    spawnSync('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
    r = spawnSync(
      'ip',
      ['netns', 'exec', netns, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)],
      { stdio: 'inherit', env: { ...process.env, PORTCULLIS_BENCH_NETNS: netns } },
    );
  } finally {
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'inherit' });
  }
  process.exit(r.status ?? 1);
} else {
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  main().catch(async (err: unknown) => {
    console.error(err);
    await stopAll();
    process.exit(1);
  });
}
