/**
 * bench:forward — iperf3 throughput kid → internet through the gateway with the full
 * baseline ruleset (50 VMs, a 100,000-entry deny set), against the same topology
 * with no ruleset at all, in the same run; plus the time to apply that ruleset.
 *
 *   npm run bench:forward            (root; builds and removes its own lab)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULT_TOPOLOGY, labDown, labUp, REPO } from '../../appliance/lab/builder.js';
import { loadTopology, ns as labNs } from '../../appliance/lab/topology.js';

const STATE = '/run/portcullis-bench-forward';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const t = loadTopology(DEFAULT_TOPOLOGY);
const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

function sh(ns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', labNs(ns), ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
}

function iperf(): number {
  const out = sh('kid', 'iperf3', '-c', t.internet.web, '-t', String(SECONDS), '-J', '-O', '1');
  const doc = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return doc.end.sum_received.bits_per_second / 1e9;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  console.error('bench:forward: building the lab');
  await labUp({ topology: t, topologyFile: DEFAULT_TOPOLOGY, stateDir: STATE, service: false });
  try {
    const kid = t.guests.find((g) => g.name === 'kid')!;
    sh('kid', 'ip', 'addr', 'add', `${kid.ipv4}/24`, 'dev', 'eth0');
    sh('kid', 'ip', 'route', 'add', 'default', 'via', t.lan.gateway);
    // without masquerade (empty ruleset) the internet needs a route back to the guests
    sh('internet', 'ip', 'route', 'add', t.lan.subnet, 'via', t.wan.secvm.split('/')[0]!);
    sh('internet', 'iperf3', '-s', '-D', '-B', t.internet.web, '--pidfile', `${STATE}/iperf3.pid`);
    await new Promise((r) => setTimeout(r, 500));

    const empty: number[] = [];
    const full: number[] = [];
    const applies: Array<{
      applyMs: number;
      compileMs: number;
      totalMs: number;
      elements: number;
      backend: string;
    }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      sh('secvm', 'nft', 'flush', 'ruleset');
      empty.push(iperf());
      const out = sh(
        'secvm',
        'node',
        '--import',
        tsx,
        join(REPO, 'test', 'bench', 'apply-in-secvm.ts'),
        '--vms',
        '50',
        '--deny',
        '100000',
      );
      applies.push(JSON.parse(out));
      full.push(iperf());
      console.error(
        `round ${round}/${ROUNDS}: empty ${empty.at(-1)!.toFixed(2)} Gbit/s, full ${full.at(-1)!.toFixed(2)} Gbit/s, apply ${applies.at(-1)!.totalMs.toFixed(0)} ms`,
      );
    }
    const e = median(empty);
    const f = median(full);
    const a = applies.map((x) => x.totalMs);
    const result = {
      benchmark: 'forward',
      empty_ruleset_gbit_s: +e.toFixed(2),
      full_ruleset_gbit_s: +f.toFixed(2),
      ratio: +(f / e).toFixed(3),
      ratio_target: 0.95,
      apply_ms_median: +median(a).toFixed(1),
      apply_ms_max: +Math.max(...a).toFixed(1),
      apply_target_ms: 1000,
      compile_ms_median: +median(applies.map((x) => x.compileMs)).toFixed(1),
      elements: applies[0]!.elements,
      backend: applies[0]!.backend,
      rounds: ROUNDS,
      seconds_per_run: SECONDS,
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(
      `ratio full/empty = ${result.ratio} (target >= 0.95, with port identity and the lists: issue 10); apply ${result.apply_ms_median} ms (target < 1000 ms)`,
    );
  } finally {
    await labDown({ stateDir: STATE, topology: t });
  }
}

await main();
