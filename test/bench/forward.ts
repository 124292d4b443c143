/**
 * bench:forward — iperf3 throughput kid → internet through the gateway with the full
 * baseline ruleset (50 VMs with port identity, a 100,000-entry deny set), against the
 * same topology with no ruleset at all, in the same run; plus the time to apply that
 * ruleset. Two more figures split the cost: conntrack alone (a forward chain that
 * accepts by connection state), and the smallest stateful NAT gateway (that chain and a
 * masquerade, nothing else), the floor that any NAT firewall's forwarding pays; so the
 * output says how much of the cost is state, how much address translation and how much
 * Portcullis' own rules. Each round measures the four in turn (the order alternates
 * from round to round, so that a drift of the machine does not favour one).
 *
 *   npm run bench:forward            (root; builds and removes its own lab)
 *   BENCH_ROUNDS=11 BENCH_SECONDS=6  (defaults 9 and 4)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULT_TOPOLOGY, labDown, labUp, REPO } from '../../appliance/lab/builder.js';
import { loadTopology, ns as labNs } from '../../appliance/lab/topology.js';

const STATE = '/run/portcullis-bench-forward';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const t = loadTopology(DEFAULT_TOPOLOGY);
const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

function sh(ns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', labNs(ns), ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
}

/** A forward chain that accepts by connection state: what conntrack alone costs. */
const STATEFUL = [
  'add table inet floor',
  'add chain inet floor forward { type filter hook forward priority filter; policy drop; }',
  'add rule inet floor forward ct state established,related accept',
  'add rule inet floor forward ct state new accept',
];

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

    type Variant = 'empty' | 'conntrack' | 'nat' | 'full';
    const runs: Record<Variant, number[]> = { empty: [], conntrack: [], nat: [], full: [] };
    const applies: Array<{
      applyMs: number;
      compileMs: number;
      totalMs: number;
      elements: number;
      backend: string;
    }> = [];
    const prepare: Record<Variant, () => void> = {
      empty: () => sh('secvm', 'nft', 'flush', 'ruleset'),
      conntrack: () => {
        sh('secvm', 'nft', 'flush', 'ruleset');
        sh('secvm', 'nft', STATEFUL.join('; '));
      },
      nat: () => {
        sh('secvm', 'nft', 'flush', 'ruleset');
        sh(
          'secvm',
          'nft',
          [
            ...STATEFUL,
            'add chain inet floor nat { type nat hook postrouting priority srcnat; }',
            'add rule inet floor nat oifname "wan0" masquerade', // the lab's uplink (builder.ts)
          ].join('; '),
        );
      },
      full: () => {
        sh('secvm', 'nft', 'flush', 'ruleset');
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
      },
    };
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order: Variant[] =
        round % 2 === 1 ? ['empty', 'conntrack', 'nat', 'full'] : ['full', 'nat', 'conntrack', 'empty'];
      for (const v of order) {
        prepare[v]();
        runs[v].push(iperf());
      }
      ratios.push(runs.full.at(-1)! / runs.empty.at(-1)!);
      console.error(
        `round ${round}/${ROUNDS}: empty ${runs.empty.at(-1)!.toFixed(2)} Gbit/s, conntrack ${runs.conntrack.at(-1)!.toFixed(2)}, nat floor ${runs.nat.at(-1)!.toFixed(2)}, ` +
          `full ${runs.full.at(-1)!.toFixed(2)} (${ratios.at(-1)!.toFixed(3)} of empty), apply ${applies.at(-1)!.totalMs.toFixed(0)} ms`,
      );
    }
    const e = median(runs.empty);
    const c = median(runs.conntrack);
    const n = median(runs.nat);
    const f = median(runs.full);
    const a = applies.map((x) => x.totalMs);
    const result = {
      benchmark: 'forward',
      empty_ruleset_gbit_s: +e.toFixed(2),
      conntrack_gbit_s: +c.toFixed(2),
      nat_floor_gbit_s: +n.toFixed(2),
      full_ruleset_gbit_s: +f.toFixed(2),
      ratio: +(f / e).toFixed(3),
      ratio_range: [+Math.min(...ratios).toFixed(3), +Math.max(...ratios).toFixed(3)],
      // each round's full/empty, then their median: a drift of the machine between rounds cancels out
      ratio_median_of_rounds: +median(ratios).toFixed(3),
      ratio_target: 0.95,
      conntrack_ratio: +(c / e).toFixed(3),
      nat_floor_ratio: +(n / e).toFixed(3),
      ratio_to_nat_floor: +(f / n).toFixed(3),
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
      `ratio full/empty = ${result.ratio} (rounds ${result.ratio_range.join('-')}, their median ${result.ratio_median_of_rounds}; target >= 0.95, with port identity and the lists: issue 10); ` +
        `conntrack alone ${result.conntrack_ratio} of empty, conntrack + masquerade ${result.nat_floor_ratio}, the full ruleset ${result.ratio_to_nat_floor} of that; ` +
        `apply ${result.apply_ms_median} ms (target < 1000 ms)`,
    );
  } finally {
    await labDown({ stateDir: STATE, topology: t });
  }
}

await main();
