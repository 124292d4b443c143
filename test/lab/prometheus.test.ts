import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ns } from '../../appliance/lab/topology.js';
import { labStorePath } from '../../appliance/lab/builder.js';
import { Store } from '../../gateway/src/store/store.js';
import { curl, dig, down, inNs, mustNs, sleep, STATE_DIR, state, topology, up } from './harness.js';

/**
 * A real Prometheus server (Debian's `prometheus` binary) scrapes the lab's service
 * with the shipped rules (appliance/prometheus/portcullis.rules.yml) and answers
 * PromQL: the kid's bytes go up while it downloads, an alert fires when Suricata is
 * killed, and every query of the Grafana dashboard (appliance/grafana/portcullis.json)
 * returns data.
 *
 * The server runs in the lab's host namespace (the management side), listening on
 * 127.0.0.1:9090 there, its data in the lab's state folder. Its config is the shipped
 * one with short intervals so that a test takes seconds, not minutes: a scrape every
 * 2 s (its timeout too), rule evaluation every second.
 */
const repo = join(import.meta.dirname, '..', '..');
const promDir = join(STATE_DIR, 'prometheus');
const PROM = 'http://127.0.0.1:9090';
const web = topology.internet.web;
let server: ChildProcess | undefined;

interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** An instant PromQL query against the test's Prometheus. */
async function query(promql: string): Promise<Sample[]> {
  const out = await mustNs('host', [
    'curl',
    '-sS',
    '--max-time',
    '10',
    `${PROM}/api/v1/query`,
    '--data-urlencode',
    `query=${promql}`,
  ]);
  const doc = JSON.parse(out) as { status: string; error?: string; data?: { result: Sample[] } };
  if (doc.status !== 'success') throw new Error(`PromQL ${promql} failed: ${doc.error}`);
  return doc.data!.result;
}

/** Poll `promql` until `ok` holds for its result, or fail after `timeoutMs`. */
async function until(promql: string, ok: (r: Sample[]) => boolean, timeoutMs = 60_000): Promise<Sample[]> {
  const end = Date.now() + timeoutMs;
  let last: Sample[] = [];
  while (Date.now() < end) {
    last = await query(promql);
    if (ok(last)) return last;
    await sleep(500);
  }
  throw new Error(`${promql} never held within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

const value = (r: Sample[]): number => (r[0] ? Number(r[0].value[1]) : NaN);

function suricataPid(): number | undefined {
  const out = execFileSync('ip', ['netns', 'pids', ns('secvm')], { encoding: 'utf8' });
  for (const pid of out.split('\n').filter(Boolean)) {
    try {
      if (/^suricata/i.test(readFileSync(`/proc/${pid}/comm`, 'utf8').trim())) return Number(pid);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

beforeAll(async () => {
  await up();
  rmSync(promDir, { recursive: true, force: true });
  mkdirSync(join(promDir, 'data'), { recursive: true });
  const target = new URL(state().api.mgmt).host;
  // the shipped config, with the lab's target and test intervals
  const shipped = readFileSync(join(repo, 'appliance/prometheus/prometheus.yml'), 'utf8');
  const config = shipped
    .replace('scrape_interval: 15s', 'scrape_interval: 2s')
    .replace('evaluation_interval: 15s', 'evaluation_interval: 1s')
    .replace('  - portcullis.rules.yml', `  - ${join(repo, 'appliance/prometheus/portcullis.rules.yml')}`)
    .replace("'10.99.0.2:8080'", `'${target}'`)
    .replaceAll('/etc/prometheus/portcullis-cert.pem', state().auth!.cert)
    .replaceAll('/etc/prometheus/portcullis.token', join(promDir, 'portcullis.token'));
  expect(config).toContain(target);
  // a viewer token, as `portcullis token create --role viewer --name prometheus` makes it
  const store = Store.open({ path: labStorePath(STATE_DIR) });
  try {
    const { token } = store.auth.createToken({ name: 'prometheus', role: 'viewer' }, 'test');
    writeFileSync(join(promDir, 'portcullis.token'), `${token}\n`, { mode: 0o600 });
  } finally {
    store.close();
  }
  writeFileSync(join(promDir, 'prometheus.yml'), config);
  server = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns('host'),
      'prometheus',
      `--config.file=${join(promDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(promDir, 'data')}`,
      '--storage.tsdb.retention.time=1h',
      '--web.listen-address=127.0.0.1:9090',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  server.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const ready = Date.now() + 60_000;
  while ((await inNs('host', ['curl', '-sf', `${PROM}/-/ready`])).code !== 0) {
    if (Date.now() > ready || server.exitCode !== null) throw new Error(`Prometheus did not start: ${log}`);
    await sleep(250);
  }
  await until('up{job="portcullis"}', (r) => value(r) === 1);
  // the shipped rules are loaded (a rule file glob that matches nothing is no error)
  const rules = JSON.parse(await mustNs('host', ['curl', '-sS', `${PROM}/api/v1/rules`])) as {
    data: { groups: Array<{ rules: unknown[] }> };
  };
  expect(rules.data.groups.flatMap((g) => g.rules).length).toBeGreaterThanOrEqual(10);
}, 300_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  rmSync(promDir, { recursive: true, force: true });
  await down();
}, 120_000);

describe('a real Prometheus scraping the lab', () => {
  it("shows the kid's bytes going up while it downloads", async () => {
    const q = 'portcullis_vm_bytes_total{vm="kid",direction="in"}';
    const before = value(await until(q, (r) => r.length === 1));
    // 60 MB at 4 MB/s: fifteen seconds of download, seven scrapes
    let done = false;
    const download = curl(
      'kid',
      `http://${web}/bytes?n=60000000`,
      ['--limit-rate', '4M', '-o', '/dev/null'],
      30,
    );
    void download.finally(() => (done = true));
    // the values Prometheus holds, each time one is higher than the last, while it downloads
    const seen: number[] = [];
    while (!done) {
      const v = value(await query(q));
      if (v > (seen.at(-1) ?? before)) seen.push(v);
      await sleep(1000);
    }
    expect((await download).ok).toBe(true);
    // rising while it downloads: several scrapes in a row, each higher than the last
    expect(seen.length, `values seen: ${seen.join(', ')}`).toBeGreaterThanOrEqual(3);
    const after = value(await until(q, (r) => value(r) - before >= 60_000_000, 15_000));
    expect(after - before).toBeGreaterThanOrEqual(60_000_000);
    // and as a rate the dashboard draws; the control: work downloaded nothing
    expect(
      value(await query('rate(portcullis_vm_bytes_total{vm="kid",direction="in"}[30s])')),
    ).toBeGreaterThan(100_000);
    expect(value(await query('rate(portcullis_vm_bytes_total{vm="work",direction="in"}[30s])'))).toBeLessThan(
      10_000,
    );
  });

  it('fires an alert when Suricata is killed, and not before', async () => {
    await until('portcullis_suricata_up', (r) => value(r) === 1, 90_000);
    const firing = 'ALERTS{alertname="PortcullisSuricataRestarted",alertstate="firing"}';
    expect(await query(firing)).toEqual([]);
    const pid = suricataPid();
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    // Prometheus sees the supervisor count the crash, then the rule fires on it
    await until('portcullis_child_failures_total{child="suricata"}', (r) => value(r) >= 1, 60_000);
    const fired = await until(firing, (r) => r.length > 0, 60_000);
    expect(fired[0]!.metric).toMatchObject({ child: 'suricata', severity: 'warning' });
    // and it comes back by itself
    await until('portcullis_suricata_up', (r) => value(r) === 1, 120_000);
  });

  it("answers every query of the Grafana dashboard's panels with data", async () => {
    // a DNS block to count: kid may not resolve a DoH endpoint's name
    expect((await dig('kid', 'dns.google')).status).toBe('NXDOMAIN');
    await until('portcullis_dns_vm_blocks_total{vm="kid",category="doh"}', (r) => value(r) >= 1, 30_000);
    // two scrapes after the block, so that rates over them see it
    await sleep(3000);
    const dashboard = JSON.parse(readFileSync(join(repo, 'appliance/grafana/portcullis.json'), 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(8);
    const empty: string[] = [];
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        // Grafana's variables as Grafana would fill them in for the last minute
        const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
        if ((await query(promql)).length === 0) empty.push(`${panel.title}: ${promql}`);
      }
    }
    expect(empty).toEqual([]);
  });
});
