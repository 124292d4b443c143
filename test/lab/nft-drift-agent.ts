/**
 * The service's nftables part alone, in a scratch network namespace, for the drift
 * tests (test/lab/nft-drift.test.ts): the libnftables applier with the nft binary for
 * listings and bulk transactions and the netlink generation, as app.ts wires them,
 * behind NftSync. Reads one JSON command a line on stdin, answers one JSON line each:
 *
 *   {"op":"apply"}                      apply the policy (the lab's VMs, 20 more, a deny list)
 *   {"op":"addRule"}                    apply it with one more rule for kid
 *   {"op":"learn","values":["…"]}       addElements to a DNS-learned set and the IPS block set
 *   {"op":"check"}                      NftSync.checkDrift(): {"drift": …, "listings": n}
 */
import { createInterface } from 'node:readline';
import { DEFAULT_TOPOLOGY, labServiceConfig } from '../../appliance/lab/builder.js';
import { loadTopology } from '../../appliance/lab/topology.js';
import { NftApplier } from '../../gateway/src/nft/applier.js';
import type { NftBackend } from '../../gateway/src/nft/backend.js';
import { NftCli, openNftBackend } from '../../gateway/src/nft/cli.js';
import { NftSync } from '../../gateway/src/nft/sync.js';
import { groupByPrefix } from '../../gateway/src/policy/intervals.js';
import type { Policy } from '../../gateway/src/policy/model.js';
import type { GatewayNetwork } from '../../gateway/src/policy/network.js';
import { benchPolicy, denyEntries } from '../bench/fixtures.js';

process.env.TZ = 'UTC';
const t = loadTopology(DEFAULT_TOPOLOGY);
const network = (labServiceConfig(t, '/tmp') as { network: GatewayNetwork }).network;
const lists = { deny: groupByPrefix(denyEntries(Number(process.env.DENY ?? '100000'))) };

let listings = 0;
const lister = new NftCli();
const counted: NftBackend = {
  kind: lister.kind,
  run: (c, o) => lister.run(c, o),
  runText: (text, o) => {
    listings++;
    return lister.runText(text, o);
  },
  close: () => lister.close(),
};
const backend = await openNftBackend('libnftables');
const applier = new NftApplier(backend, { bulk: counted });
const sync = new NftSync({ applier, network, lists: () => lists });
const base: Policy = benchPolicy(t, 20, []);
const withRule: Policy = {
  ...base,
  vms: base.vms.map((v) =>
    v.name === 'kid'
      ? { ...v, rules: [...(v.rules ?? []), { id: 'x', action: 'drop', to: { cidr: '198.51.100.7' } }] }
      : v,
  ),
};

const handlers: Record<string, (cmd: { values?: string[] }) => Promise<unknown>> = {
  apply: async () => sync.apply(base),
  addRule: async () => sync.apply(withRule),
  learn: async ({ values = [] }) => {
    const learned = applier.applied!.sets.find((s) => s.dynamic && s.name.startsWith('r4_'))!.name;
    await applier.addElements(learned, values, 60);
    await applier.addElements('ips_block4', values, 60);
    return { sets: [learned, 'ips_block4'] };
  },
  check: async () => {
    listings = 0;
    const drift = await sync.checkDrift();
    return { drift: drift ?? null, listings };
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as { op: string; values?: string[] };
  try {
    const result = await handlers[cmd.op]!(cmd);
    process.stdout.write(JSON.stringify({ ok: true, ...(result as object) }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: (err as Error).message }) + '\n');
  }
}
backend.close();
