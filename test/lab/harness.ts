import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_TOPOLOGY,
  labDown,
  labUp,
  readState,
  startService,
  type LabState,
} from '../../appliance/lab/builder.js';
import { loadTopology, ns, type LabTopology } from '../../appliance/lab/topology.js';

/**
 * Helpers for lab tests: one lab per test file (built in beforeAll, taken down in
 * afterAll), commands in namespaces, the service's API from the management side.
 */

export const STATE_DIR = process.env.PORTCULLIS_TEST_LAB_DIR ?? '/run/portcullis-lab-test';
export const topology: LabTopology = loadTopology(DEFAULT_TOPOLOGY);

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a command in a namespace; never throws on a non-zero exit. */
export function inNs(name: string, argv: string[], timeoutMs = 20_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns(name), ...argv],
      { timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}

/** Like inNs, but throws with the command's stderr when it fails. */
export async function mustNs(ns: string, argv: string[], timeoutMs?: number): Promise<string> {
  const r = await inNs(ns, argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${ns}: ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A download from a guest that takes a while: `n` bytes from the internet namespace's
 * `/bytes` on `host`, read at `rate` (curl's --limit-rate); stdout is the bytes
 * received. Started, not awaited: the test does its work while it runs.
 */
export function download(
  ns: string,
  host: string,
  n: number,
  options: { rate: string; maxTimeS?: number; timeoutMs: number },
): Promise<Result> {
  const argv = ['curl', '-sS', '-o', '/dev/null', '-w', '%{size_download}', '--limit-rate', options.rate];
  if (options.maxTimeS !== undefined) argv.push('--max-time', String(options.maxTimeS));
  return inNs(ns, [...argv, `http://${host}/bytes?n=${n}`], options.timeoutMs);
}

/**
 * An upload from a guest that takes a while: `n` bytes PUT to `/bytes` on `host` in the
 * internet namespace, sent at `rate` (curl's --limit-rate); stdout is the bytes sent.
 * Unlike a download, whose receiver may go quiet for seconds once its socket buffer is
 * full, the guest sends a packet every few tens of ms for as long as it runs. Started,
 * not awaited.
 */
export function upload(
  ns: string,
  host: string,
  n: number,
  options: { rate: string; maxTimeS: number; timeoutMs: number },
): Promise<Result> {
  const curl = `curl -sS -o /dev/null -w '%{size_upload}' --limit-rate ${options.rate} --max-time ${options.maxTimeS}`;
  return inNs(
    ns,
    ['sh', '-c', `head -c ${n} /dev/zero | ${curl} -T - 'http://${host}/bytes?n=0'`],
    options.timeoutMs,
  );
}

/** HTTP(S) GET from a guest; `ok` when curl got a response. */
export async function curl(
  ns: string,
  url: string,
  extra: string[] = [],
  timeoutSec = 4,
): Promise<{ ok: boolean; body: string; code: number }> {
  const r = await inNs(
    ns,
    ['curl', '-sS', '-k', '--max-time', String(timeoutSec), ...extra, url],
    (timeoutSec + 5) * 1000,
  );
  return { ok: r.code === 0, body: r.stdout, code: r.code };
}

/**
 * curl's options to reach the lab service's management listener: its self-signed
 * certificate as the one trusted, and the lab's admin API token (`auth: false`: none).
 */
export function mgmtCurlArgs(options: { auth?: boolean } = {}): string[] {
  const state = readState(STATE_DIR)!;
  const args = ['--cacert', state.auth!.cert];
  if (options.auth !== false) args.push('-H', `authorization: Bearer ${state.auth!.token}`);
  return args;
}

/**
 * Call the API from the management side (the host namespace), with the lab's admin token.
 * @param timeoutS how long the call may take, s. Default 10.
 */
export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  timeoutS = 10,
): Promise<{ status: number; body: T }> {
  const state = readState(STATE_DIR)!;
  const args = [
    'curl',
    '-sS',
    '--max-time',
    String(timeoutS),
    ...mgmtCurlArgs(),
    '-X',
    method,
    '-o',
    '-',
    '-w',
    '\n%{http_code}',
    `${state.api.mgmt}${path}`,
  ];
  if (body !== undefined)
    args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
  const out = await mustNs('host', args, (timeoutS + 10) * 1000);
  const i = out.lastIndexOf('\n');
  const text = out.slice(0, i);
  return { status: Number(out.slice(i + 1)), body: (text ? JSON.parse(text) : undefined) as T };
}

/**
 * The elements of the sets the packet path itself fills (the fast path's verified pairs,
 * the DNS flood meters): traffic state, which comes and lapses within a second of any
 * guest's packet, like a counter's value.
 */
const PACKET_PATH_ELEMENTS =
  /^(\tset (?:verified|dns_flood)[46] \{\n(?:\t\t(?!elements = ).*\n)*)\t\telements = \{[^}]*\}\n/gm;

/**
 * The kernel's ruleset in secvm, as text, without its state (counter values, element
 * expiry, the elements the packet path adds).
 */
export async function nftTable(): Promise<string> {
  const text = await mustNs('secvm', ['nft', '--stateless', 'list', 'table', 'inet', 'portcullis']);
  return text.replace(PACKET_PATH_ELEMENTS, '$1');
}

/** A named counter's packet count in secvm, of the `inet` table or (`bridge`) the guest bridge's. */
export async function counter(
  name: string,
  family: 'inet' | 'bridge' = 'inet',
  table = 'portcullis',
): Promise<number> {
  const out = await mustNs('secvm', ['nft', '-j', 'list', 'counter', family, table, name]);
  const doc = JSON.parse(out) as { nftables: Array<{ counter?: { packets: number } }> };
  return doc.nftables.find((o) => o.counter)?.counter?.packets ?? 0;
}

/** One value of a metric of the service, summed over the series matching `labels`. */
export async function metric(name: string, labels = ''): Promise<number> {
  const text = await mustNs('host', [
    'curl',
    '-sS',
    '--max-time',
    '5',
    ...mgmtCurlArgs(),
    `${state().api.mgmt}/metrics`,
  ]);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      if (labels === '' || line.includes(labels)) sum += Number(line.split(' ').at(-1));
    }
  }
  return sum;
}

/** Requests the lab's internet web server logged. */
export function internetRequests(): Array<{
  client: string;
  path?: string;
  body?: string;
  scheme: string;
  host?: string;
}> {
  try {
    return readFileSync(join(STATE_DIR, 'internet-requests.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { client: string; path?: string; body?: string; scheme: string });
  } catch {
    return [];
  }
}

export async function up(options: { service?: boolean } = {}): Promise<LabState> {
  return labUp({
    topology,
    topologyFile: DEFAULT_TOPOLOGY,
    stateDir: STATE_DIR,
    service: options.service ?? true,
  });
}

export async function down(): Promise<void> {
  await labDown({ stateDir: STATE_DIR, topology });
}

export function state(): LabState {
  const s = readState(STATE_DIR);
  if (!s) throw new Error('the test lab is not up');
  return s;
}

/** The pid of portcullis serve in secvm (the node process). */
export function servicePid(): number | undefined {
  const out = execFileSync('ip', ['netns', 'pids', ns('secvm')], { encoding: 'utf8' });
  for (const pid of out.split('\n').filter(Boolean)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('cli/main.ts') && cmd.includes('serve')) return Number(pid);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/**
 * Start the service again (after a kill or a SIGTERM) and wait for its API. Like
 * systemd, it first waits for the old process to finish stopping.
 */
export async function restartService(): Promise<void> {
  const s = state();
  const stopping = Date.now() + 30_000;
  while (servicePid() !== undefined) {
    if (Date.now() > stopping) throw new Error('the old service did not stop within 30 s');
    await new Promise((res) => setTimeout(res, 100));
  }
  startService(s);
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const r = await inNs('host', [
      'curl',
      '-s',
      '--max-time',
      '1',
      ...mgmtCurlArgs({ auth: false }),
      `${s.api.mgmt}/api/v1/health`,
    ]);
    if (r.code === 0) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('the service did not come back');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The guest of a name in the topology. */
export function guest(name: string): LabTopology['guests'][number] {
  const g = topology.guests.find((x) => x.name === name);
  if (!g) throw new Error(`no guest ${name}`);
  return g;
}

/** One resource record of a dig answer. */
export interface DigRecord {
  readonly name: string;
  readonly ttl: number;
  readonly type: string;
  readonly data: string;
}

/** A DNS answer as a guest sees it: the rcode and the answer and authority sections. */
export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED …; `TIMEOUT` when no answer came. */
  readonly status: string;
  readonly answers: DigRecord[];
  readonly authority: DigRecord[];
}

/** `dig` from a namespace; `server` defaults to the namespace's resolv.conf. Extra args: +tcp, -p … */
export async function dig(
  ns: string,
  name: string,
  type = 'A',
  server?: string,
  extra: string[] = [],
): Promise<DigResult> {
  const args = ['dig', '+time=2', '+tries=1', '+nocmd', '+nostats', ...extra, name, type];
  if (server) args.push(`@${server}`);
  const r = await inNs(ns, args);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? 'TIMEOUT';
  const answers: DigRecord[] = [];
  const authority: DigRecord[] = [];
  let section: DigRecord[] | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith(';; ANSWER SECTION')) section = answers;
    else if (line.startsWith(';; AUTHORITY SECTION')) section = authority;
    else if (line.startsWith(';;') || line.trim() === '') section = line.trim() === '' ? undefined : section;
    else if (section && !line.startsWith(';')) {
      const [owner, ttl, , rtype, ...data] = line.split(/\s+/);
      section.push({
        name: owner!.replace(/\.$/, ''),
        ttl: Number(ttl),
        type: rtype!,
        data: data.join(' ').replace(/\.$/, ''),
      });
    }
  }
  return { status, answers, authority };
}
