/**
 * Runs inside the secvm namespace for the benchmarks: compiles a policy with many VMs
 * and a large deny set and applies it as one transaction, through the backends app.ts
 * gives the service (with libnftables, a big transaction goes through the nft binary);
 * prints timings as JSON.
 *
 *   ip netns exec secvm tsx test/bench/apply-in-secvm.ts --vms 50 --deny 100000 [--backend libnftables]
 */
import { parseArgs } from 'node:util';
import { loadTopology } from '../../appliance/lab/topology.js';
import { DEFAULT_TOPOLOGY } from '../../appliance/lab/builder.js';
import { NftApplier } from '../../gateway/src/nft/applier.js';
import { NftCli, openNftBackend } from '../../gateway/src/nft/cli.js';
import { compile } from '../../gateway/src/policy/compile.js';
import { groupByPrefix } from '../../gateway/src/policy/intervals.js';
import { labServiceConfig } from '../../appliance/lab/builder.js';
import { benchPolicy, denyEntries } from './fixtures.js';
import type { GatewayNetwork } from '../../gateway/src/policy/network.js';

process.env.TZ = 'UTC';
const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '50' },
    deny: { type: 'string', default: '100000' },
    backend: { type: 'string', default: 'auto' },
  },
});
const t = loadTopology(DEFAULT_TOPOLOGY);
const network = (labServiceConfig(t, '/tmp') as { network: GatewayNetwork }).network;
const deny = denyEntries(Number(values.deny));
const policy = benchPolicy(t, Number(values.vms) - t.guests.length, []);
const t0 = performance.now();
const ruleset = compile({ policy, network, now: new Date(), lists: { deny: groupByPrefix(deny) } });
const compileMs = performance.now() - t0;
const backend = await openNftBackend(values.backend as 'auto');
const applier = new NftApplier(backend, backend.kind === 'libnftables' ? { bulk: new NftCli() } : {});
const r = await applier.apply(ruleset);
const elements = ruleset.sets.reduce((n, s) => n + s.elements.length, 0);
process.stdout.write(
  JSON.stringify({
    backend: backend.kind,
    compileMs,
    applyMs: r.ms,
    totalMs: compileMs + r.ms,
    commands: r.commands,
    elements,
    vms: policy.vms.length,
  }) + '\n',
);
backend.close();
