import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from './config.js';
import { DhcpServer } from './dhcp/dnsmasq.js';
import type { ClientPolicy } from './dns/model.js';
import { DnsFilter } from './dns/server.js';
import { EventBus } from './events.js';
import { API_PREFIX, registerApi } from './http/index.js';
import { makeErrorHandler, rejectedCounter } from './http/error-handler.js';
import { vmStateRoutes } from './http/vm-state.js';
import type { Logger } from './log.js';
import { NftApplier } from './nft/applier.js';
import type { NftBackend } from './nft/backend.js';
import type { Conntrack } from './nft/conntrack.js';
import { NftSync } from './nft/sync.js';
import { effectiveProfiles } from './policy/builtins.js';
import { loadAddressList } from './policy/address-list.js';
import { allowSet, ruleSet } from './policy/compile.js';
import type { Policy, Vm } from './policy/model.js';
import { PolicyService } from './policy/service.js';
import { parsePolicyYaml } from './policy/yaml.js';
import { scheduleActive } from './policy/schedule.js';
import { Store } from './store/store.js';

/** What the service needs from the outside world; tests choose their own. */
export interface AppDeps {
  readonly nft: NftBackend;
  readonly log: Logger;
  readonly conntrack?: Conntrack;
  /** The clock. Default Date.now. */
  readonly now?: () => number;
  /** Start DHCP (dnsmasq). Default: config.dhcp.enabled. */
  readonly dhcp?: boolean;
}

/** The service, wired but not listening. `main.ts` starts it and owns the process. */
export interface App {
  readonly http: FastifyInstance;
  readonly registry: Registry;
  readonly events: EventBus;
  readonly store: Store;
  readonly policy: PolicyService;
  readonly sync: NftSync;
  readonly dns: DnsFilter;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Wire the parts of the service in the order they start: kernel sync, store and
 * policy (applies the stored policy), DHCP, DNS, HTTP. Never listens on HTTP.
 */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const log = deps.log;
  const now = deps.now ?? Date.now;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'portcullis_process_' });
  const events = new EventBus(log);
  mkdirSync(config.dataDir, { recursive: true });

  // bundle deny lists: read once here, handed to the compiler as the same array until replaced
  const denyList: string[] = [];
  for (const file of config.lists?.deny ?? []) denyList.push(...loadAddressList(file));
  if (denyList.length > 0) log.info({ entries: denyList.length }, 'deny lists loaded');
  const lists = { deny: denyList };

  const applier = new NftApplier(deps.nft, { log: log.child({ part: 'nft' }), now });
  const sync = new NftSync({
    applier,
    network: config.network,
    conntrack: deps.conntrack,
    registry,
    log: log.child({ part: 'nft-sync' }),
    now,
    driftIntervalSeconds: config.nft.driftInterval,
    lists: () => lists,
  });

  const store = Store.open({
    path: join(config.dataDir, 'portcullis.db'),
    events,
    now: () => new Date(now()),
  });
  seedPolicy(store, config, log);
  const policy = new PolicyService({
    store,
    enforcer: { apply: (next: Policy, prev: Policy) => sync.apply(next, prev) },
    events,
    logger: log.child({ part: 'policy' }),
    now: () => new Date(now()),
  });

  // --- DNS: who asks, by source address; learned addresses into the VM's sets ---------
  let clients = new Map<string, { vm: Vm; policy: ClientPolicy }>();
  const refreshClients = (p: Policy): void => {
    clients = clientPolicies(p, new Date(now()));
  };
  const dns = new DnsFilter({
    listen: config.dns.listen.map((address) => ({ address, port: config.dns.port })),
    upstreams: config.dns.upstream.map((address) => ({ address, port: 53 })),
    identify: (ip) => clients.get(ip)?.policy,
    blockPage: { v4: config.network.lan.ipv4 },
    registry,
    logger: log.child({ part: 'dns' }),
    onResolved: (e) => {
      const entry = [...clients.values()].find((c) => c.vm.name === e.client);
      if (!entry) return;
      void learnAddresses(applier, sync.policy, entry.vm, e.name, e.addresses, e.ttl, now()).catch(
        (err: unknown) =>
          log.warn({ err, vm: e.client, name: e.name }, 'could not add resolved addresses to nftables sets'),
      );
    },
  });

  const dhcp = new DhcpServer({
    iface: config.network.lan.iface,
    gateway: config.network.lan.ipv4,
    prefix: config.network.lan.prefix,
    leaseTime: config.dhcp.leaseTime,
    dir: join(config.dataDir, 'dhcp'),
    log: log.child({ part: 'dhcp' }),
  });

  events.on('app', 'policy.applied', ({ policy: p }) => {
    refreshClients(p);
    dhcp.setVms(p.vms);
  });

  const http = Fastify({ logger: false, bodyLimit: 8 << 20 });
  http.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  await http.register(registerApi, {
    prefix: API_PREFIX,
    policy,
    store,
    registry,
    events,
    token: config.api.token,
  });
  // resources the service adds beside the policy API, answering errors the same way
  await http.register(
    async (scope) => {
      scope.setErrorHandler(makeErrorHandler(rejectedCounter(registry)));
      await scope.register(vmStateRoutes, { policy, now: () => new Date(now()) });
    },
    { prefix: API_PREFIX },
  );
  // the OpenAPI document, also at the root
  http.get('/openapi.json', async (_req, reply) => reply.redirect(`${API_PREFIX}/openapi.json`));

  let scheduleTimer: NodeJS.Timeout | undefined;
  const startDhcp = deps.dhcp ?? config.dhcp.enabled;
  return {
    http,
    registry,
    events,
    store,
    policy,
    sync,
    dns,
    async start() {
      await policy.start();
      const current = policy.current();
      refreshClients(current);
      sync.start();
      if (startDhcp) await dhcp.start(current.vms);
      await dns.start();
      // schedule windows switch DNS behaviour (allowlist-only) at minute boundaries
      scheduleTimer = setInterval(() => refreshClients(policy.current()), 30_000);
      scheduleTimer.unref();
      log.info({ vms: current.vms.length, backend: deps.nft.kind }, 'portcullis is enforcing');
    },
    async stop() {
      if (scheduleTimer) clearInterval(scheduleTimer);
      await http.close();
      await dns.stop();
      dhcp.stop();
      sync.stop();
      await policy.stop();
      events.off('app');
      store.close();
    },
  };
}

/** Seed an empty store from the policy file, once. */
function seedPolicy(store: Store, config: Config, log: Logger): void {
  if (!config.policyFile || !existsSync(config.policyFile)) return;
  const current = store.loadPolicy();
  if (current.vms.length > 0 || current.profiles.length > 0) return;
  const seed = parsePolicyYaml(readFileSync(config.policyFile, 'utf8'));
  store.commitPolicy(seed, {
    actor: 'seed',
    action: 'policy.import',
    target: 'policy',
    before: null,
    after: seed,
  });
  log.info({ file: config.policyFile, vms: seed.vms.length }, 'store seeded from the policy file');
}

/** The DNS view of each VM, by address: its profile's DNS settings, schedules applied. */
export function clientPolicies(p: Policy, at: Date): Map<string, { vm: Vm; policy: ClientPolicy }> {
  const profiles = effectiveProfiles(p.profiles);
  const out = new Map<string, { vm: Vm; policy: ClientPolicy }>();
  for (const vm of p.vms) {
    const profile = vm.quarantine ? profiles.get('quarantine')! : profiles.get(vm.profile)!;
    const allowlistWindow = p.schedules.some(
      (s) => s.mode === 'allowlist-only' && s.vms.includes(vm.name) && scheduleActive(s, at),
    );
    const denyWindow = p.schedules.some(
      (s) => s.mode === 'deny' && s.vms.includes(vm.name) && scheduleActive(s, at),
    );
    const policy: ClientPolicy = {
      client: vm.name,
      ...(profile.dns ?? {}),
      allow: [...(profile.dns?.allow ?? []), ...(profile.allowDomains ?? [])],
      allowlistOnly:
        profile.internet === 'allowlist-only' || allowlistWindow || (profile.dns?.allowlistOnly ?? false),
      paused: denyWindow || (profile.dns?.paused ?? false),
    };
    out.set(vm.ipv4, { vm, policy });
    if (vm.ipv6) out.set(vm.ipv6, { vm, policy });
  }
  return out;
}

/**
 * Addresses of an allowed answer go into the VM's nftables sets: the allowlist set
 * (allowlist-only mode) and the set of every domain rule the name falls under, with
 * the answer's TTL as timeout (capped at the rule's expiry).
 */
async function learnAddresses(
  applier: NftApplier,
  policy: Policy | undefined,
  vm: Vm,
  name: string,
  addresses: { v4: readonly string[]; v6: readonly string[] },
  ttl: number,
  nowMs: number,
): Promise<void> {
  const ruleset = applier.applied;
  if (!policy || !ruleset) return;
  const sets = new Set(ruleset.sets.map((s) => s.name));
  const timeout = Math.max(ttl, 30);
  const lower = name.toLowerCase().replace(/\.$/, '');
  for (const family of [4, 6] as const) {
    const values = family === 4 ? addresses.v4 : addresses.v6;
    if (values.length === 0) continue;
    const allow = allowSet(vm.name, family);
    if (sets.has(allow)) await applier.addElements(allow, values, timeout);
    const profile = effectiveProfiles(policy.profiles).get(vm.profile);
    const rules = [...(vm.rules ?? []), ...(profile?.rules ?? [])];
    for (const [index, rule] of rules.entries()) {
      if (!('domain' in rule.to)) continue;
      const domain = rule.to.domain.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '');
      if (lower !== domain && !lower.endsWith(`.${domain}`)) continue;
      const set = ruleSet(vm.name, rule, index, family);
      if (!sets.has(set)) continue;
      let t = timeout;
      if (rule.expires) t = Math.min(t, Math.floor((Date.parse(rule.expires) - nowMs) / 1000));
      if (t > 0) await applier.addElements(set, values, t);
    }
  }
}
