/**
 * bench:eve — the EVE pipeline against plain JSON.parse, on the same lines, same run.
 *
 *   npm run bench:eve
 *
 * Input: the EVE that Suricata 7 writes over the whole suricata-verify corpus (every
 * capture replayed with its rules, like test/replay), cached in
 * $BENCH_EVE_CACHE (default /tmp/portcullis-bench-eve/corpus.eve.json); set
 * BENCH_EVE_REFRESH=1 to regenerate it. Corpus: PORTCULLIS_CORPUS, else
 * test/fixtures/suricata-verify (in the repository).
 *
 * Measured per line, alternating in rounds after a warm-up:
 *   - baseline: JSON.parse(line);
 *   - pipeline: parseEveLine (typed, validated) → EvePipeline.handle: VM mapping on a
 *     LeaseTable, ActionEngine decisions for alerts (a kid-like profile: block, quarantine,
 *     notify), prom-client counters per event type and per alert severity.
 * Also the parser alone. Throughput is counted per CPU second of this process
 * (process.cpuUsage, GC threads included), median of the rounds, so other processes
 * on a shared machine do not decide the result; the best wall-clock round is printed
 * beside it. Exits 1 when the pipeline is below 150,000 events/s or below 0.6 × JSON.parse
 * (median of the per-round ratios).
 *
 * Environment: BENCH_ROUNDS (default 25), BENCH_PASSES (passes over the lines per round
 * and side, default 1), PORTCULLIS_REPLAY_JOBS (parallel Suricata runs, default 2).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { ActionEngine } from '../../gateway/src/actions/engine.js';
import { LeaseTable, isPrivateAddress } from '../../gateway/src/suricata/eve/leases.js';
import { EveMetrics } from '../../gateway/src/suricata/eve/metrics.js';
import { parseEveLine } from '../../gateway/src/suricata/eve/parse.js';
import { EvePipeline } from '../../gateway/src/suricata/eve/pipeline.js';
import { runSuricataOffline } from '../../gateway/src/replay/suricata.js';
import { systemClock } from '../../gateway/src/clock.js';

const TARGET_EPS = 150_000;
const TARGET_RATIO = 0.6;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const corpus = process.env.PORTCULLIS_CORPUS ?? resolve(repoRoot, 'test', 'fixtures', 'suricata-verify');
const cache = process.env.BENCH_EVE_CACHE ?? join(tmpdir(), 'portcullis-bench-eve', 'corpus.eve.json');
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 25));
const passes = Math.max(1, Number(process.env.BENCH_PASSES ?? 1));
const jobs = Math.max(1, Number(process.env.PORTCULLIS_REPLAY_JOBS ?? 2));

interface Expect {
  readonly simulate_ips: boolean;
  readonly config: string;
}

/** Replay every corpus capture through Suricata and concatenate the eve.json files. */
async function generate(): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(corpus, 'manifest.json'), 'utf8')) as {
    tests: { folder: string }[];
  };
  const parts: string[] = new Array<string>(manifest.tests.length);
  let next = 0;
  let done = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < manifest.tests.length) {
      const i = next++;
      const folder = (manifest.tests[i] as { folder: string }).folder;
      const dir = join(corpus, folder);
      const e = JSON.parse(await readFile(join(dir, 'expect.json'), 'utf8')) as Expect;
      const outdir = await mkdtemp(join(tmpdir(), 'portcullis-bench-run-'));
      try {
        await runSuricataOffline({
          pcap: join(dir, 'input.pcap'),
          rules: join(dir, 'test.rules'),
          outdir,
          simulateIps: e.simulate_ips,
          config: e.config === 'suricata.yaml' ? join(dir, 'suricata.yaml') : undefined,
        });
        parts[i] = await readFile(join(outdir, 'eve.json'), 'utf8');
      } finally {
        await rm(outdir, { recursive: true, force: true });
      }
      done += 1;
      if (done % 50 === 0)
        process.stderr.write(
          `  suricata: ${done}/${manifest.tests.length} captures, ${((Date.now() - started) / 1000).toFixed(0)}s\n`,
        );
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  await mkdir(dirname(cache), { recursive: true });
  await writeFile(cache, parts.join(''));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function main(): Promise<void> {
  if (process.env.BENCH_EVE_REFRESH === '1' || !existsSync(cache) || (await stat(cache)).size === 0) {
    process.stderr.write(`generating EVE: Suricata over ${corpus} → ${cache}\n`);
    await generate();
  } else {
    process.stderr.write(`using cached EVE ${cache} (BENCH_EVE_REFRESH=1 regenerates)\n`);
  }
  const lines = (await readFile(cache, 'utf8')).split('\n').filter((l) => l.length > 0);
  const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);

  // Leases: every private address of the corpus is a guest, 250 VMs round robin.
  const leases = new LeaseTable();
  let vmIndex = 0;
  for (const l of lines) {
    const r = parseEveLine(l);
    if (!r.ok) continue;
    for (const a of [r.event.raw.src_ip, r.event.raw.dest_ip]) {
      if (a !== undefined && isPrivateAddress(a) && !leases.has(a))
        leases.add({ vm: `vm-${vmIndex++ % 250}`, address: a });
    }
  }

  const registry = new Registry();
  const engine = ActionEngine.withActions(
    {
      block: { maxSeverity: 2, duration: 3600 },
      quarantine: { maxSeverity: 2, count: 3, windowMinutes: 10 },
      notify: { url: 'https://parent.example/hook', maxSeverity: 1 },
    },
    systemClock,
  );
  const pipeline = new EvePipeline({ resolver: leases, engine, metrics: new EveMetrics(registry) });

  let sink = 0;
  let parsedOk = 0;
  let parseErrors = 0;
  let decisions = 0;
  let mapped = 0;
  const sides = {
    /** Plain JSON.parse: the baseline. */
    json: (): void => {
      for (let i = 0; i < lines.length; i++) {
        const v = JSON.parse(lines[i] as string) as { event_type?: unknown };
        if (v.event_type === 'alert') sink += 1;
      }
    },
    /** The typed, validating parser alone. */
    parser: (): void => {
      for (let i = 0; i < lines.length; i++) if (parseEveLine(lines[i] as string).ok) parsedOk += 1;
    },
    /** What the service does per line. */
    pipeline: (): void => {
      for (let i = 0; i < lines.length; i++) {
        const r = parseEveLine(lines[i] as string);
        if (!r.ok) {
          parseErrors += 1;
          continue;
        }
        const out = pipeline.handle(r.event);
        decisions += out.decisions.length;
        if (out.match !== undefined) mapped += 1;
      }
    },
  };
  type Side = keyof typeof sides;
  const names = Object.keys(sides) as Side[];

  /** Events per second of one side, by wall clock and by CPU time of this process. */
  const measure = (side: Side): { wall: number; cpu: number } => {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let p = 0; p < passes; p++) sides[side]();
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(cpu0);
    const n = lines.length * passes;
    return { wall: n / wall, cpu: n / ((c.user + c.system) / 1e6) };
  };

  for (const side of names) measure(side); // warm-up
  const runs: Record<Side, { wall: number[]; cpu: number[] }> = {
    json: { wall: [], cpu: [] },
    parser: { wall: [], cpu: [] },
    pipeline: { wall: [], cpu: [] },
  };
  const cpuRatios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // rotate the order: no side always runs right after the same other one
    const got = {} as Record<Side, { wall: number; cpu: number }>;
    for (let k = 0; k < names.length; k++) {
      const side = names[(k + r) % names.length] as Side;
      got[side] = measure(side);
      runs[side].wall.push(got[side].wall);
      runs[side].cpu.push(got[side].cpu);
    }
    cpuRatios.push(got.pipeline.cpu / got.json.cpu);
  }

  const cpu = (side: Side): number => median(runs[side].cpu);
  const wallBest = (side: Side): number => Math.max(...runs[side].wall);
  const ratio = median(cpuRatios);
  const parserRatio = cpu('parser') / cpu('json');
  const types = new Map<string, number>();
  for (const l of lines) {
    const r = parseEveLine(l);
    if (r.ok) types.set(r.event.raw.event_type, (types.get(r.event.raw.event_type) ?? 0) + 1);
  }
  const ok = cpu('pipeline') >= TARGET_EPS && ratio >= TARGET_RATIO;
  const result = {
    lines: lines.length,
    megabytes: +(bytes / 1e6).toFixed(1),
    event_types: Object.fromEntries([...types].sort((a, b) => b[1] - a[1])),
    rounds,
    passes,
    /** Events per CPU second of this process (median of the rounds): what the targets are checked on. */
    cpu: {
      json_parse_events_per_s: Math.round(cpu('json')),
      parser_events_per_s: Math.round(cpu('parser')),
      pipeline_events_per_s: Math.round(cpu('pipeline')),
      parser_ratio: +parserRatio.toFixed(3),
      ratio: +ratio.toFixed(3),
    },
    /** Events per wall-clock second, best round. */
    wall_best: {
      json_parse_events_per_s: Math.round(wallBest('json')),
      parser_events_per_s: Math.round(wallBest('parser')),
      pipeline_events_per_s: Math.round(wallBest('pipeline')),
      ratio: +(wallBest('pipeline') / wallBest('json')).toFixed(3),
    },
    pipeline_mb_per_cpu_s: +((cpu('pipeline') * bytes) / lines.length / 1e6).toFixed(1),
    parse_errors: parseErrors,
    mapped_per_pass: mapped / ((rounds + 1) * passes),
    decisions_per_pass: decisions / ((rounds + 1) * passes),
    engine: engine.stats(),
    /** Kept so the loops' work cannot be optimised away. */
    checks: { baseline_alerts: sink, parsed_ok: parsedOk },
    load_average: loadavg().map((l) => +l.toFixed(2)),
    targets: { events_per_s: TARGET_EPS, ratio: TARGET_RATIO, met: ok },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const line = (label: string, side: Side, extra = ''): string =>
    `  ${label.padEnd(56)}${fmt(cpu(side)).padStart(9)} events/s   [wall, best ${fmt(wallBest(side)).padStart(9)}]${extra}\n`;
  process.stderr.write(
    `\n${fmt(lines.length)} EVE lines (${result.megabytes} MB) × ${passes} pass(es) × ${rounds} rounds, ` +
      `events per CPU second (median), load average ${result.load_average.join(' ')}\n` +
      line('JSON.parse', 'json') +
      line('parseEveLine (typed, validated)', 'parser', `   ratio ${parserRatio.toFixed(2)}`) +
      line(
        'parse + VM mapping + ActionEngine + prom-client update',
        'pipeline',
        `   ratio ${ratio.toFixed(2)}`,
      ) +
      `  targets: pipeline ≥ ${fmt(TARGET_EPS)} events/s: ${cpu('pipeline') >= TARGET_EPS ? 'yes' : 'NO'}; ` +
      `ratio ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'yes' : 'NO'}\n`,
  );
  if (!ok) process.exitCode = 1;
}

await main();
