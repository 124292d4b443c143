/**
 * bench:policy — with 50 VMs and 1,000,000 deny entries (mixed CIDRs) loaded: the full
 * compile + apply, then 1,000 single rule changes through the policy service, each
 * timed until its transaction is in the kernel (p50, p99), and the process RSS.
 * Baseline in the same run: the same 1,000 changes with no deny list loaded, to show
 * what the big list costs. Both run the service's production path: its drift check
 * interval (printed as drift_interval_s), its rule sweep, logs and metrics.
 *
 *   npm run bench:policy     (root; uses its own scratch namespace)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from '../../appliance/lab/builder.js';

const NS = `${process.env.PORTCULLIS_LAB_NS_PREFIX ?? ''}pc-bench-policy`;
const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

function run(deny: number): Record<string, number> {
  execFileSync('ip', ['netns', 'add', NS]);
  try {
    const out = execFileSync(
      'ip',
      [
        'netns',
        'exec',
        NS,
        'node',
        '--import',
        tsx,
        join(REPO, 'test', 'bench', 'policy-in-netns.ts'),
        '--deny',
        String(deny),
      ],
      { encoding: 'utf8', maxBuffer: 16 << 20 },
    );
    return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>;
  } finally {
    execFileSync('ip', ['netns', 'del', NS]);
  }
}

console.error('bench:policy: baseline (no deny list)');
const base = run(0);
console.error('bench:policy: 1,000,000 deny entries');
const big = run(1_000_000);
console.log(JSON.stringify({ baseline: base, loaded: big }, null, 2));
console.log(
  `drift check every ${big.drift_interval_s} s (repairs: ${big.drift_repairs}); ` +
    `full compile+apply ${big.full_compile_apply_ms} ms (target < 3000); rule change p50 ${big.change_p50_ms} ms, p99 ${big.change_p99_ms} ms (target p99 < 20; ` +
    `baseline p99 ${base.change_p99_ms} ms, ratio ${(big.change_p99_ms! / base.change_p99_ms!).toFixed(2)}); RSS ${big.rss_mb} MB (target < 200)`,
);
