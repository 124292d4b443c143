import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { dashboardPlugin } from '../../dashboard/plugin.js';
import { DhcpServer } from '../../gateway/src/dhcp/dnsmasq.js';
import { EventBus } from '../../gateway/src/events.js';
import { QueryLog } from '../../gateway/src/dns/query-log.js';
import { DnsFilter } from '../../gateway/src/dns/server.js';
import { dnsRoutes } from '../../gateway/src/http/dns.js';
import { makeErrorHandler, rejectedCounter } from '../../gateway/src/http/error-handler.js';
import { API_PREFIX, registerApi } from '../../gateway/src/http/index.js';
import { ipsRoutes } from '../../gateway/src/http/ips.js';
import { parentalRoutes } from '../../gateway/src/http/parental.js';
import { vmStateRoutes } from '../../gateway/src/http/vm-state.js';
import type { Policy } from '../../gateway/src/policy/model.js';
import { clientPolicies } from '../../gateway/src/parental/client-policy.js';
import { BudgetController } from '../../gateway/src/parental/controller.js';
import { PolicyService } from '../../gateway/src/control/policy-service.js';
import { Store } from '../../gateway/src/store/store.js';
import { makePolicy } from '../../gateway/src/store/test-fixtures.js';

/** The one device in the DHCP leases that is no VM of the seed policy. */
export const NEW_DEVICE = { mac: '52:54:00:aa:bb:cc', ipv4: '10.20.0.50', hostname: 'Kids-Tablet' } as const;

/** The dashboard over the real API, store and policy service, with an enforcer that records what it is given. */
export interface DashboardServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly policy: PolicyService;
  /** Every policy the service put into force, oldest first. */
  readonly applied: Policy[];
  /** What `/vms/:name/queries` reads: record look-ups here. */
  readonly queryLog: QueryLog;
  close(): Promise<void>;
}

/**
 * Serves what `buildApp` serves on the management address — the API, the VM state,
 * parental, IPS and DNS routes, `/metrics` and the dashboard — without nftables, DNS,
 * DHCP or Suricata (their parts are built but never started; the DHCP leases file holds
 * {@link NEW_DEVICE}; the IPS is not enabled), on 127.0.0.1 and a free port.
 */
export async function startDashboardServer(
  options: { token?: string; policy?: Policy } = {},
): Promise<DashboardServer> {
  const events = new EventBus();
  const store = Store.open({ path: ':memory:', events });
  store.replacePolicy(options.policy ?? makePolicy(), 'seed');
  const applied: Policy[] = [];
  const policy = new PolicyService({
    store,
    events,
    enforcer: {
      async apply(next: Policy) {
        applied.push(next);
      },
    },
  });
  await policy.start();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-dashboard-'));
  const budgets = new BudgetController({
    policy: () => policy.current(),
    readCounters: async () => new Map(),
    onChange: async () => undefined,
    stateFile: join(dir, 'budgets.json'),
  });
  const dhcp = new DhcpServer({ iface: 'lan0', gateway: '10.20.0.1', prefix: 24, leaseTime: '12h', dir });
  // dnsmasq's lease file, as dnsmasq writes it: one VM the policy knows, one new device
  const expiry = Math.floor(Date.now() / 1000) + 12 * 3600;
  writeFileSync(
    join(dir, 'dnsmasq.leases'),
    [
      `${expiry} 52:54:00:00:00:01 10.20.0.11 kid 01:52:54:00:00:00:01`,
      `${expiry} ${NEW_DEVICE.mac} ${NEW_DEVICE.ipv4} ${NEW_DEVICE.hostname} *`,
      '',
    ].join('\n'),
  );

  // the DNS filter is never started (no look-ups here): its verdicts, and a query log the test fills
  const dns = new DnsFilter({
    listen: [{ address: '127.0.0.1', port: 0 }],
    upstreams: [{ address: '127.0.0.1', port: 53 }],
    identify: () => undefined,
    blockPage: { v4: '10.20.0.1' },
  });
  const queryLog = new QueryLog(100);
  const client = (vm: string) =>
    [...clientPolicies(policy.current(), new Date(), new Map()).values()].find((c) => c.vm.name === vm)
      ?.policy;

  const registry = new Registry();
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  await app.register(registerApi, {
    prefix: API_PREFIX,
    policy,
    store,
    registry,
    events,
    token: options.token,
  });
  await app.register(
    async (scope) => {
      scope.setErrorHandler(makeErrorHandler(rejectedCounter(registry)));
      await scope.register(vmStateRoutes, { policy });
      await scope.register(parentalRoutes, { policy, budgets, dhcp });
      // no Suricata here: /alerts reads the store, /ips answers SURICATA_FAILED
      await scope.register(ipsRoutes, { ips: undefined, store });
      await scope.register(dnsRoutes, {
        dns: { queryLog: (c, o) => queryLog.get(c, o), verdict: (n, p) => dns.verdict(n, p) },
        client,
      });
    },
    { prefix: API_PREFIX },
  );
  await app.register(dashboardPlugin, { apiPrefix: API_PREFIX });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });

  return {
    url,
    app,
    store,
    policy,
    applied,
    queryLog,
    async close() {
      await app.close();
      await policy.stop();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
