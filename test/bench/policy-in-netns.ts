/**
 * The body of bench:policy, run inside a scratch network namespace: the real store,
 * policy service, compiler and libnftables applier, wired as app.ts wires them (the nft
 * binary for bulk transactions and listings, the drift check every
 * `nft.driftInterval` seconds — the config's default —, the rule expiry sweep, metrics,
 * logs at info level, conntrack purges), with 50 VMs and a 1,000,000-entry deny list
 * loaded. Prints JSON.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Value } from 'typebox/value';
import { DEFAULT_TOPOLOGY, labServiceConfig } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';
import { Config } from '../../gateway/src/config.js';
import { EventBus } from '../../gateway/src/events.js';
import { ConntrackCli } from '../../gateway/src/nft/conntrack.js';
import { NftApplier } from '../../gateway/src/nft/applier.js';
import { NftCli, openNftBackend } from '../../gateway/src/nft/cli.js';
import { groupByPrefix } from '../../gateway/src/policy/intervals.js';
import { NftSync } from '../../gateway/src/nft/sync.js';
import type { GatewayNetwork } from '../../gateway/src/policy/network.js';
import { PolicyService } from '../../gateway/src/control/policy-service.js';
import { Store } from '../../gateway/src/store/store.js';
import { benchPolicy, denyEntries } from './fixtures.js';

process.env.TZ = 'UTC';
const { values } = parseArgs({
  options: { changes: { type: 'string', default: '1000' }, deny: { type: 'string', default: '1000000' } },
});
const t = loadTopology(DEFAULT_TOPOLOGY);
const network = (labServiceConfig(t, '/tmp') as { network: GatewayNetwork }).network;
const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
const denyCount = Number(values.deny);
// grouped as the service keeps it; the strings are dropped
const lists = { deny: groupByPrefix(denyEntries(denyCount)) };

const backend = await openNftBackend('libnftables');
const runMs: number[] = [];
const realRun = backend.run.bind(backend);
backend.run = async (c, o) => {
  const t = performance.now();
  const r = await realRun(c, o);
  runMs.push(performance.now() - t);
  return r;
};
// the service's defaults, as a config file that does not set them gets them
const { driftInterval } = Value.Default(Config.properties.nft, {}) as Config['nft'];
// info-level logs as the service writes them, to nowhere
const log = pino({ name: 'portcullis', level: 'info' }, pino.destination('/dev/null'));
const registry = new Registry();
const events = new EventBus(log);
const applier = new NftApplier(backend, { log: log.child({ part: 'nft' }), bulk: new NftCli() });
const spotCheck = new NftCli();
const sync = new NftSync({
  applier,
  network,
  conntrack: new ConntrackCli(),
  registry,
  log: log.child({ part: 'nft-sync' }),
  driftIntervalSeconds: driftInterval,
  lists: () => lists,
  bypass: () => ({ doh: [], tor: [] }),
  budgetBlocked: () => new Map(),
});
const store = Store.open({ path: join(dir, 'bench.db'), events });
store.replacePolicy(benchPolicy(t, 50 - t.guests.length, []), 'bench');

// full compile + apply: the service's start
const t0 = performance.now();
const applyMs: number[] = [];
const policy = new PolicyService({
  store,
  enforcer: {
    apply: async (n, p) => {
      const t = performance.now();
      await sync.apply(n, p);
      applyMs.push(performance.now() - t);
    },
  },
  events,
  logger: log.child({ part: 'policy' }),
});
await policy.start();
const fullMs = performance.now() - t0;
sync.start();

// garbage collection pauses during the changes, to tell them from nft's own time
const gcPauses: number[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push(e.duration);
});
gcObserver.observe({ entryTypes: ['gc'] });

// single rule changes: add one, remove it; each is visible in the kernel when the call returns
const changes = Number(values.changes);
const samples: number[] = [];
let verified = 0;
for (let i = 0; i < changes; i++) {
  const started = performance.now();
  if (i % 2 === 0) {
    await policy.addRule(
      { vm: 'kid' },
      { id: `bench${i}`, action: 'drop', to: { cidr: `198.19.${(i >> 8) & 255}.${i & 255}` } },
      { actor: 'bench' },
    );
  } else {
    await policy.removeRule({ vm: 'kid' }, `bench${i - 1}`, { actor: 'bench' });
  }
  samples.push(performance.now() - started);
  if (i % 100 === 0) {
    // spot check: the rule is in the kernel (another nft, terse: `list chain` would
    // fetch a million set elements first, 15 s of idle time for the service)
    const out = await spotCheck.runText('list ruleset', { terse: true });
    if (!out.includes(`198.19.${(i >> 8) & 255}.${i & 255}`))
      throw new Error(`change ${i} is not visible in the kernel`);
    verified++;
  }
}
samples.sort((a, b) => a - b);
const kernel = applyMs.slice(1).sort((a, b) => a - b);
const pct = (p: number): number =>
  samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
const rss = process.memoryUsage().rss;
// a drift check that repaired anything here would have mistaken our own changes for drift
const driftRepairs = (await registry.getSingleMetricAsString('portcullis_nft_drift_repairs_total'))
  .split('\n')
  .filter((l) => l.startsWith('portcullis_nft_drift_repairs_total'))
  .reduce((n, l) => n + Number(l.split(' ')[1]), 0);
gcObserver.disconnect();
gcPauses.sort((a, b) => a - b);
await policy.stop();
sync.stop();
store.close();
backend.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify({
    vms: 50,
    deny_entries: denyCount,
    drift_interval_s: driftInterval,
    drift_repairs: driftRepairs,
    full_compile_apply_ms: +fullMs.toFixed(0),
    changes,
    change_p50_ms: +pct(50).toFixed(2),
    change_p99_ms: +pct(99).toFixed(2),
    change_max_ms: +samples.at(-1)!.toFixed(2),
    apply_p50_ms: +kernel[Math.floor(kernel.length / 2)]!.toFixed(2),
    apply_p99_ms: +kernel[Math.floor(kernel.length * 0.99)]!.toFixed(2),
    nft_run_p99_ms: +percentile(runMs.slice(1), 99).toFixed(2),
    verified_in_kernel: verified,
    gc_max_pause_ms: +(gcPauses.at(-1) ?? 0).toFixed(1),
    gc_total_ms: +gcPauses.reduce((a, b) => a + b, 0).toFixed(0),
    rss_mb: +(rss / 2 ** 20).toFixed(0),
  }) + '\n',
);

/** The p-th percentile (nearest rank, 0-100) of samples, sorted here. */
function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) * (p / 100))]!;
}
