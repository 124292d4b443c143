import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../gateway/src/app.js';
import type { Config } from '../../gateway/src/config.js';
import type { PolicyService } from '../../gateway/src/control/policy-service.js';
import type { QueryLog } from '../../gateway/src/dns/query-log.js';
import { EventBus } from '../../gateway/src/events.js';
import { silentLogger } from '../../gateway/src/log.js';
import type { NftBackend } from '../../gateway/src/nft/backend.js';
import type { Policy } from '../../gateway/src/policy/model.js';
import { Store } from '../../gateway/src/store/store.js';
import { hashPassword } from '../../gateway/src/auth/password.js';
import { TestVendor, testBundlesConfig } from '../../gateway/src/bundles/test-fixtures.js';
import { makePolicy } from '../../gateway/src/store/test-fixtures.js';

/** The one device in the DHCP leases that is no VM of the seed policy. */
export const NEW_DEVICE = { mac: '52:54:00:aa:bb:cc', ipv4: '10.20.0.50', hostname: 'Kids-Tablet' } as const;

/** The dashboard over the real service (`buildApp`), with a kernel that only accepts what it is given. */
export interface DashboardServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly policy: PolicyService;
  /** Every policy the service put into force since it started, oldest first. */
  readonly applied: Policy[];
  /** What `/vms/:name/queries` reads: record look-ups here. */
  readonly queryLog: QueryLog;
  /** The service's event bus: publish alerts, blocks … as the parts would. */
  readonly events: EventBus;
  close(): Promise<void>;
}

/** nftables without a kernel: every transaction succeeds, listings are empty. */
const acceptingNft: NftBackend = {
  kind: 'nft-cli',
  run: async () => '',
  runText: async () => '{"nftables":[]}',
  close: () => undefined,
};

/**
 * The service as `portcullis serve` builds it — logins, the API with its token, the VM state,
 * parental, IPS and DNS routes, `/metrics` and the dashboard — started on loopback:
 * nftables accepts every transaction without a kernel; DHCP is off (its lease file holds
 * {@link NEW_DEVICE}), the DNS filter answers on 127.0.0.1 and a free port, the block
 * page and the IPS are off; rule updates only with `bundles`. HTTP on 127.0.0.1 and a free port.
 */
export async function startDashboardServer(
  options: {
    token?: string;
    policy?: Policy;
    historyStepSeconds?: number;
    /** kid downloads: each counter listing shows 50 kB more to it (the charts draw a line). */
    kidDownloads?: boolean;
    /** Users to create, each with its password. */
    users?: ReadonlyArray<{ name: string; role: string; people?: string[]; password: string }>;
    /** Rule updates configured: a test vendor's repository in a folder, on demand only. */
    bundles?: boolean;
  } = {},
): Promise<DashboardServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-dashboard-'));
  const events = new EventBus();
  const store = Store.open({ path: ':memory:', events });
  store.replacePolicy(options.policy ?? makePolicy(), 'seed');
  for (const u of options.users ?? []) {
    const passwordHash = await hashPassword(u.password);
    store.auth.addUser({ name: u.name, role: u.role, people: u.people ?? [], passwordHash }, 'test');
  }
  // dnsmasq's lease file, as dnsmasq writes it: one VM the policy knows, one new device
  const expiry = Math.floor(Date.now() / 1000) + 12 * 3600;
  mkdirSync(join(dir, 'dhcp'));
  writeFileSync(
    join(dir, 'dhcp', 'dnsmasq.leases'),
    [
      `${expiry} 52:54:00:00:00:01 10.20.0.11 kid 01:52:54:00:00:00:01`,
      `${expiry} ${NEW_DEVICE.mac} ${NEW_DEVICE.ipv4} ${NEW_DEVICE.hostname} *`,
      '',
    ].join('\n'),
  );
  const config: Config = {
    network: {
      lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
      wan: { iface: 'wan0' },
      mgmt: { iface: 'mgmt0', ports: [8080] },
      blockPagePort: 0,
    },
    api: { listen: '127.0.0.1', port: 0, ...(options.token ? { token: options.token } : {}) },
    dns: { listen: ['127.0.0.1'], port: 0, upstream: ['127.0.0.1'] },
    dhcp: { enabled: false, leaseTime: '12h' },
    dataDir: dir,
    nft: { backend: 'nft-cli', driftInterval: 0 },
  };
  if (options.bundles) {
    const vendor = await new TestVendor(join(dir, 'vendor')).init();
    config.bundles = testBundlesConfig(vendor.repo.dir, vendor.rootFile);
  }
  let kidBytes = 0;
  const downloading: NftBackend = {
    ...acceptingNft,
    runText: async () => {
      kidBytes += 50_000;
      const counter = {
        family: 'inet',
        table: 'portcullis',
        name: 'vmin_kid',
        packets: kidBytes / 1000,
        bytes: kidBytes,
      };
      return JSON.stringify({ nftables: [{ counter }] });
    },
  };
  const service = await buildApp(config, {
    log: silentLogger,
    nft: options.kidDownloads ? downloading : acceptingNft,
    store,
    events,
    ...(options.historyStepSeconds ? { historyStepSeconds: options.historyStepSeconds } : {}),
  });
  const applied: Policy[] = [];
  events.on('dashboard-server', 'policy.applied', ({ policy }) => applied.push(policy));
  await service.start();
  const url = await service.http.listen({ host: config.api.listen, port: config.api.port });

  return {
    url,
    app: service.http,
    store,
    policy: service.policy,
    applied,
    queryLog: service.dns.queries,
    events,
    async close() {
      await service.stop();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
