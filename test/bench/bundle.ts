/**
 * bench:bundle — a vendor rule update of 40,000 Suricata rules and 1,000,000 list entries
 * through the lab: the lab's vendor serves it over HTTPS, the appliance verifies, stages
 * (`suricata -T`), switches, reloads Suricata and the DNS lists, and checks its health.
 * Measures the time from "update found" (the update starts: metadata refresh) to "new
 * rules and lists in force" (the service's `enforcedMs`: after the DNS lists, the nft sets
 * and Suricata's blocking `reload-rules` are done, before the health window), and the
 * throughput to the kid VM (inline IPS) from the switch until the new version is in
 * force (the phases as the service's live stream announces them), taken from the
 * gateway's byte counter for the kid while a download that starts with the switch and
 * outlasts it (90 s at the speed measured first, `BENCH_DOWNLOAD_S`)
 * runs, against the same download without a switch just before and just after it
 * (`switch_ratio`; `whole_download_ratio` is the whole download's, which a download much
 * longer than the switch dilutes). The last line is JSON; it says whether the reloads ran
 * in the idle CPU class (`idle_cpu`, process/idle-cpu.ts).
 *
 *   npm run bench:bundle      (root; builds and removes its own lab)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TOPOLOGY, labDown, labUp, readState } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';
import { labVendorKeys, labVendorPaths } from '../../appliance/lab/vendor.js';
import { buildChanged } from '../../gateway/src/bundles/test-fixtures.js';
import { VendorRepository } from '../../rules/src/repository.js';
import { benchNames, benchRelays, benchRules } from './bundle-material.js';

const STATE = '/run/portcullis-bench-bundle';
const NS = (n: string): string => `${process.env.PORTCULLIS_LAB_NS_PREFIX ?? ''}${n}`;
const RULES = Number(process.env.BENCH_RULES ?? 40_000);
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Names the malware list gains each round (a daily update). */
const DAILY = Number(process.env.BENCH_DAILY ?? 2000);
/** Seconds a download takes through the IPS (measured at the start): longer than a switch. */
const DOWNLOAD_S = Number(process.env.BENCH_DOWNLOAD_S ?? 90);
/** Tor relays in the bundle (the real list has about 8,000). */
const RELAYS = Number(process.env.BENCH_RELAYS ?? 8000);
const t = loadTopology(DEFAULT_TOPOLOGY);
const web = t.internet.web;
const mgmt = t.mgmt.secvm.split('/')[0]!;

function sh(ns: string, argv: string[], timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', NS(ns), ...argv],
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: timeoutMs },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${argv.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const auth = readState(STATE)?.auth;
  if (!auth) throw new Error(`the bench lab in ${STATE} is not up`);
  // the service speaks TLS with a self-signed certificate; the lab's admin token
  const args = ['curl', '-sS', '--max-time', '900', '--cacert', auth.cert];
  args.push(
    '-H',
    `authorization: Bearer ${auth.token}`,
    '-X',
    method,
    `https://${mgmt}:${t.api.port}${path}`,
  );
  if (body !== undefined)
    args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
  return JSON.parse(await sh('host', args, 910_000)) as T;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitRunning(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await api<{ suricata: { status: string } }>('GET', '/api/v1/ips')).suricata.status === 'running')
        return;
    } catch {
      /* not up yet */
    }
    await sleep(500);
  }
  throw new Error('Suricata did not start');
}

/**
 * `BENCH_ENDPOINTS=first`: the download's two ends (the lab's web server and curl) get a
 * scheduling group above the appliance's (autogroup nice -10), as if they ran on other
 * machines, which they do in production: then the ratio shows what the switch costs the
 * forwarding and inspection, not what the appliance's CPU work takes from the lab's own
 * client and server on the same 2 cores. Default `shared`: everything at equal standing.
 */
const ENDPOINTS = process.env.BENCH_ENDPOINTS === 'first' ? 'first' : 'shared';

/**
 * `BENCH_IDLE_CPU=off`: the lab service builds Suricata's engines at nice 19 only
 * (`suricata.reloadIdleCpu: false`), to compare with the idle CPU class in one session.
 */
if (process.env.BENCH_IDLE_CPU === 'off') process.env.PORTCULLIS_LAB_RELOAD_IDLE_CPU = 'off';

/** Give the session of `pid` (its autogroup) nice -10. */
function endpointFirst(pid: number | undefined): void {
  if (ENDPOINTS !== 'first' || pid === undefined) return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, '-10');
  } catch (err) {
    throw new Error(`cannot raise the scheduling group of pid ${pid}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Bytes the gateway has forwarded to the kid VM so far: its `vmin_kid` counter (one per
 * VM in `to_guests`, policy/compile.ts), so a rate can be taken over any window.
 */
async function kidBytes(): Promise<number> {
  const out = await sh('secvm', ['nft', '-j', 'list', 'counter', 'inet', 'portcullis', 'vmin_kid']);
  const doc = JSON.parse(out) as { nftables: Array<{ counter?: { bytes: number } }> };
  const c = doc.nftables.find((o) => o.counter)?.counter;
  if (!c) throw new Error('the counter vmin_kid is missing from the lab gateway');
  return c.bytes;
}

interface Download {
  /** curl's figure: the body over its whole time. */
  readonly gbps: number;
  /** What the gateway forwarded to the kid meanwhile (`kidBytes`), per second. */
  readonly wireGbps: number;
  readonly end: number;
}

/** Download `bytes` through the kid VM (IPS inline, fail-closed); Gbit/s and when it ended. */
async function download(bytes: number): Promise<Download> {
  const b0 = await kidBytes();
  const t0 = Date.now();
  const argv = [
    'curl',
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{time_total}',
    `http://${web}/bytes?n=${bytes}`,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    // a session of its own, so that its scheduling group can be set (BENCH_ENDPOINTS)
    const child = spawn('ip', ['netns', 'exec', NS('kid'), ...argv], { detached: ENDPOINTS === 'first' });
    endpointFirst(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`curl: ${stderr || `exit ${code}`}`)),
    );
  });
  const [size, secs] = out.trim().split(' ').map(Number);
  if (size !== bytes) throw new Error(`download got ${size} of ${bytes} bytes`);
  const end = Date.now();
  const wireGbps = (((await kidBytes()) - b0) * 8) / ((end - t0) / 1000) / 1e9;
  return { gbps: (size! * 8) / secs! / 1e9, wireGbps, end };
}

type Result = { result: string; version?: number; enforcedMs?: number; code?: string; message?: string };

/** The step timings of the last bundle switch, from the lab service's log (app.ts `activate`). */
function lastSwitchSteps(): Record<string, number> | undefined {
  const log = readState(STATE)?.services.find((x) => x.name === 'portcullis')?.log;
  if (!log) return undefined;
  const line = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.includes('bundle switch: lists and rules in force'))
    .at(-1);
  if (!line) return undefined;
  const o = JSON.parse(line) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(o).filter(([k]) => k.endsWith('Ms'))) as Record<string, number>;
}

/** Whether the lab service builds Suricata's engines in the idle CPU class (its start-up log, app.ts). */
function idleCpuInUse(): boolean | undefined {
  const log = readState(STATE)?.services.find((x) => x.name === 'portcullis')?.log;
  if (!log) return undefined;
  const line = readFileSync(log, 'utf8')
    .split('\n')
    .find((l) => l.includes("rule reloads build Suricata's engine"));
  return line ? (JSON.parse(line) as { idleCpu?: boolean }).idleCpu : undefined;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A rule update's phases as the service announces them (`bundle` events of its live stream). */
interface Phases {
  /** Calls `cb` with each phase from now on; returns the function that stops it. */
  on(cb: (phase: string) => void): () => void;
  close(): void;
}

/**
 * Open the lab service's live stream (`GET /api/v1/events`, Server-Sent Events) once, over
 * one TLS connection for the whole bench: polling `GET /bundles` instead would start a
 * curl with a TLS handshake several times a second on the same 2 cores as the download
 * being measured, and only while an update runs, which would load the switch's side of
 * the ratio alone.
 */
async function bundlePhases(): Promise<Phases> {
  const auth = readState(STATE)?.auth;
  if (!auth) throw new Error(`the bench lab in ${STATE} is not up`);
  const url = `https://${mgmt}:${t.api.port}/api/v1/events`;
  const argv = ['curl', '-sS', '-N', '--cacert', auth.cert, '-H', `authorization: Bearer ${auth.token}`, url];
  const child = spawn('ip', ['netns', 'exec', NS('host'), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const listeners = new Set<(phase: string) => void>();
  let buffered = '';
  let stderr = '';
  let opened: (() => void) | undefined;
  const open = new Promise<void>((resolve, reject) => {
    opened = resolve;
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`the live stream ${url} closed (${code}): ${stderr}`)));
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    opened?.();
    buffered += d.toString();
    let end: number;
    // one SSE event per blank-line-terminated block: `event: bundle` and its `data:` line
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end).split('\n');
      buffered = buffered.slice(end + 2);
      if (!block.includes('event: bundle')) continue;
      const data = block.find((l) => l.startsWith('data: '));
      if (!data) continue;
      const { phase } = JSON.parse(data.slice('data: '.length)) as { phase: string };
      for (const cb of [...listeners]) cb(phase);
    }
  });
  // the stream's first bytes (`retry:`) say it is open
  await Promise.race([
    open,
    sleep(30_000).then(() => Promise.reject(new Error(`${url}: no answer in 30 s`))),
  ]);
  return {
    on(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    close: () => child.kill(),
  };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'bench-bundle-'));
  await labUp({ topology: t, topologyFile: DEFAULT_TOPOLOGY, stateDir: STATE });
  let live: Phases | undefined;
  try {
    await waitRunning();
    endpointFirst(readState(STATE)?.services.find((x) => x.name === 'web')?.pid);
    const stream = (live = await bundlePhases());
    process.stdout.write(`endpoints: ${ENDPOINTS}\n`);
    const keys = await labVendorKeys(STATE);
    const repo = new VendorRepository(labVendorPaths(STATE).repo);
    const online = [keys.targets, keys.snapshot, keys.timestamp];
    let version = 1;
    const first = await api<Result>('POST', '/api/v1/bundles/update', {});
    if (first.result !== 'installed') throw new Error(`version 1: ${JSON.stringify(first)}`);

    // the big bundle's material, written once: realistic rules (protocols, shapes, content
    // of their own, distinct SIDs) and names spread over categories (bundle-material.ts)
    const rules = benchRules(RULES);
    if (new Set(rules.map((r) => /sid:(\d+);/.exec(r)?.[1])).size !== RULES)
      throw new Error('the generated rules do not have distinct SIDs');
    const names = benchNames(ENTRIES);
    const relays = benchRelays(RELAYS);
    const lists = (round: number): Record<string, readonly string[]> => ({
      ...Object.fromEntries([...names].map(([c, ns]) => [`lists/categories/${c}.txt`, ns])),
      // a daily update: the malware list gains names, the other lists are the same files
      'lists/categories/malware.txt': [
        ...names.get('malware')!,
        ...Array.from({ length: DAILY }, (_, i) => `r${round}-${i}.daily-malware.test`),
      ],
      'lists/bypass/tor-relays.txt': relays,
    });
    process.stdout.write(
      `material: ${RULES} rules, ${ENTRIES} names (${[...names].map(([c, n]) => `${c} ${n.length}`).join(', ')}), ` +
        `${RELAYS} Tor relays; each round: 1 rule changed, ${DAILY} malware names added\n`,
    );

    // download size: about DOWNLOAD_S through the IPS, so that it spans the whole switch
    // (both reloads) and a few seconds' swings of this shared machine average out
    const probe = await download(1_000_000_000);
    const bytes = Math.min(40_000_000_000, Math.round(((probe.gbps * 1e9) / 8) * DOWNLOAD_S));
    process.stdout.write(`download probe ${probe.gbps.toFixed(2)} Gbit/s; ${bytes} bytes a download\n`);

    const enforced: number[] = [];
    const ratios: number[] = [];
    const wholeRatios: number[] = [];
    // the baseline of a round: the downloads without a switch just before and just after it
    let before = await download(bytes);
    for (let round = 0; round < ROUNDS; round++) {
      version++;
      // a bundle of the same size each round, differing in one rule, so it is a new version
      const built = await buildChanged(tmp, version, {
        rules: [
          ...rules,
          `alert http any any -> any any (msg:"round ${round}"; content:"round-${round}"; http_uri; sid:3199999; rev:${round + 1};)`,
        ],
        append: lists(round),
      });
      await repo.publish({
        bundle: built.archive,
        info: { name: 'portcullis-default', channel: 'stable', version, minApplianceVersion: '0.1.0' },
        signers: online,
      });
      // the update, and the download started when the switch starts: the service's live
      // stream says when each phase begins (no polling beside the download being measured)
      let switchAt = 0;
      let healthAt = 0;
      const started = Date.now();
      const seen: Record<string, number> = {};
      let during: Promise<Download> | undefined;
      // what the kid received from the switch until the new version was in force
      let atSwitch: Promise<number> | undefined;
      let atHealth: Promise<number> | undefined;
      const off = stream.on((phase) => {
        if (!(phase in seen)) seen[phase] = Date.now();
        if (phase === 'switch' && !switchAt) {
          during = download(bytes);
          atSwitch = kidBytes();
          switchAt = Date.now();
        }
        if ((phase === 'health' || phase === 'idle') && switchAt && !healthAt) {
          atHealth = kidBytes();
          healthAt = Date.now();
        }
      });
      const r = await api<Result>('POST', '/api/v1/bundles/update', {}).finally(off);
      if (r.result !== 'installed' || r.enforcedMs === undefined)
        throw new Error(`update: ${JSON.stringify(r)}`);
      if (!during) throw new Error('the switch was not seen');
      if (!healthAt) throw new Error('the end of the switch (phase health) was not seen');
      const d = await during;
      const overlapped = d.end > healthAt;
      // the rate in the switch's own window when the download outlasted it (else over the download)
      const inSwitch = overlapped
        ? (((await atHealth!) - (await atSwitch!)) * 8) / ((healthAt - switchAt) / 1000) / 1e9
        : d.wireGbps;
      const after = await download(bytes);
      const without = (before.wireGbps + after.wireGbps) / 2;
      const wholeRatio = d.gbps / ((before.gbps + after.gbps) / 2);
      before = after;
      enforced.push(r.enforcedMs);
      ratios.push(inSwitch / without);
      wholeRatios.push(wholeRatio);
      const phases = Object.entries(seen)
        .map(([p, at]) => `${p} +${((at - started) / 1000).toFixed(1)} s`)
        .join(', ');
      process.stdout.write(
        `round ${round + 1}: phases seen ${phases}; switch steps ${JSON.stringify(lastSwitchSteps())}; ` +
          `load average ${loadavg()
            .map((l) => l.toFixed(1))
            .join(' ')}\n`,
      );
      process.stdout.write(
        `round ${round + 1}: update to enforced ${Math.round(r.enforcedMs)} ms (switch to in force ${healthAt - switchAt} ms); ` +
          `to the kid ${without.toFixed(2)} Gbit/s without a switch (downloads before and after), ${inSwitch.toFixed(2)} from the switch until in force` +
          `${overlapped ? '' : ` (the download ended ${((healthAt - d.end) / 1000).toFixed(1)} s before the switch did: over the download)`}: ratio ${(inSwitch / without).toFixed(2)}; ` +
          `the whole download ${d.gbps.toFixed(2)} Gbit/s: ratio ${wholeRatio.toFixed(2)}\n`,
      );
    }
    process.stdout.write(
      `${JSON.stringify({
        rules: RULES,
        list_entries: ENTRIES,
        update_to_enforced_ms_range: [Math.round(Math.min(...enforced)), Math.round(Math.max(...enforced))],
        switch_ratio_range: [Number(Math.min(...ratios).toFixed(3)), Number(Math.max(...ratios).toFixed(3))],
        load_average: Number(loadavg()[0]!.toFixed(1)),
        update_to_enforced_ms: Math.round(median(enforced)),
        switch_ratio: Number(median(ratios).toFixed(3)),
        whole_download_ratio: Number(median(wholeRatios).toFixed(3)),
        rounds: ROUNDS,
        endpoints: ENDPOINTS,
        idle_cpu: idleCpuInUse(),
      })}\n`,
    );
  } finally {
    live?.close();
    await labDown({ stateDir: STATE, topology: t });
    rmSync(tmp, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
