import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, realpath } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { dashboardPlugin } from '../../dashboard/plugin.js';
import { readQueueStats } from './bundles/health.js';
import { bundleUpdaterOptions } from './bundles/local.js';
import { BundleService, type BundleRuntime } from './bundles/service.js';
import { JsonBundleSettings } from './bundles/settings.js';
import { suricataRuleTester } from './bundles/stage.js';
import { ENFORCED_RULES } from './bundles/versions.js';
import { bundleRoutes } from './http/bundles.js';
import type { Config } from './config.js';
import { DhcpServer, procDnsmasqTable } from './dhcp/dnsmasq.js';
import { listSourcesFromDir, type ListSource } from './dns/lists.js';
import { ClientDirectory } from './dns/identity.js';
import { DnsFilter, type PreparedLists } from './dns/server.js';
import { PortcullisError } from './errors.js';
import type { EventBus } from './events.js';
import { API_PREFIX, registerApi } from './http/index.js';
import { backupRoutes } from './http/backup.js';
import { captureRoutes } from './http/captures.js';
import { CaptureService } from './capture/service.js';
import { installAuth } from './http/auth.js';
import { hostPolicy } from './auth/host-check.js';
import { vmsOf } from './auth/access.js';
import { dnsRoutes } from './http/dns.js';
import { ipsRoutes } from './http/ips.js';
import { parentalRoutes } from './http/parental.js';
import { vmStateRoutes } from './http/vm-state.js';
import type { Logger } from './log.js';
import { NftApplier } from './nft/applier.js';
import type { NftBackend } from './nft/backend.js';
import { openIdleCpu } from './process/idle-cpu.js';
import type { Conntrack } from './nft/conntrack.js';
import { readCounters, readVmCounters } from './nft/counters.js';
import { AddressLearner } from './nft/learned.js';
import type { Neighbours } from './nft/neighbours.js';
import type { QueueKind } from './nft/queue.js';
import { NftSync } from './nft/sync.js';
import type { QueueSettings } from './nft/types.js';
import { AccessRequestIntake } from './parental/access-requests.js';
import { BlockPageServer } from './parental/block-page.js';
import { clientPolicies, explain } from './parental/client-policy.js';
import { BudgetController } from './parental/controller.js';
import { LibcRawIpSender } from './process/raw-ip.js';
import { loadAddressList } from './control/address-list-file.js';
import { groupByPrefix } from './policy/intervals.js';
import type { PrefixGroups } from './policy/compile.js';
import type { Policy } from './policy/model.js';
import { parseIpv4Range } from './policy/net.js';
import { PolicyService } from './control/policy-service.js';
import { ChildRunners } from './process/runner.js';
import { SHUTDOWN_BUDGET_MS } from './process/supervisor.js';
import { collectProcessMetrics } from './metrics/process.js';
import { SuricataMetrics } from './metrics/suricata.js';
import { TrafficMetrics } from './metrics/traffic.js';
import { TrafficHistory } from './metrics/history.js';
import { blockCategory } from './dns/metrics.js';
import { liveRoutes } from './http/live.js';
import { subscribeServices } from './subscribers.js';
import { parsePolicyYaml } from './policy/yaml.js';
import { RetentionJob } from './store/retention.js';
import type { Store } from './store/store.js';
import { applianceSuricataSetup, IpsService } from './suricata/ips.js';
import { countRules, ruleLoadTimeoutMs } from './suricata/reload.js';
import { EMPTY_NAME_LISTS } from './suricata/names.js';
import { PolicyRules, policyRulesFile, readNameLists, type PreparedNames } from './suricata/policy-rules.js';
import { systemClock, type Clock } from './clock.js';

/**
 * What the service needs from the outside world, opened by `main.ts` (tests choose
 * their own). `buildApp` only wires them; `start()` is the first to use them.
 */
export interface AppDeps {
  readonly log: Logger;
  /** nftables: libnftables in-process or the nft binary (`openNftBackend`). */
  readonly nft: NftBackend;
  /**
   * For big transactions and listings: the nft binary, so that a listing does not fill
   * the in-process context's cache with every set element. Default `nft`.
   */
  readonly nftBulk?: NftBackend;
  /** The store, open and migrated. The app does not close it: whoever opened it does. */
  readonly store: Store;
  /** The event bus the store publishes on; the app's parts talk over it too. */
  readonly events: EventBus;
  readonly conntrack?: Conntrack;
  /** The LAN's permanent neighbour and bridge entries of the guests (`IpNeighbours`). */
  readonly neighbours?: Neighbours;
  /**
   * How this kernel hands packets to Suricata (`detectQueueKind`), needed when the
   * config says `suricata.queueKind: auto` and the IPS is enabled.
   */
  readonly queueKind?: QueueKind;
  /** The clock, in ms since the epoch. Default Date.now. */
  readonly now?: Clock;
  /** Start DHCP (dnsmasq). Default: config.dhcp.enabled. */
  readonly dhcp?: boolean;
  /** Seconds between samples of the dashboard's traffic history. Default 60. */
  readonly historyStepSeconds?: number;
  /** The config file the service was started with: backups include it. */
  readonly configFile?: string;
  /** Restart the service (to apply a restore staged by the API); absent: at the next start. */
  readonly restart?: () => void;
  /**
   * The management listener's certificate and key (PEM), from `ensureTls`; absent:
   * plain HTTP (tests, or `api.tls.enabled: false`).
   */
  readonly tls?: { readonly cert: string; readonly key: string };
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
  /** Vendor rule updates; undefined when the config has no `bundles`. */
  readonly bundles: BundleService | undefined;
  /** Read the lists, seed and apply the policy, then start DHCP, DNS, the block page and the IPS. */
  start(): Promise<void>;
  /** Stop everything `start()` started, in reverse; the kernel keeps the last ruleset. */
  stop(): Promise<void>;
}

/**
 * Wire the parts of the service over the adapters in `deps`, in the order they start:
 * kernel sync and policy, budgets, DHCP, DNS, block page, IPS, HTTP. Pure wiring: no
 * file, socket, child process or kernel is touched before `start()`, and HTTP never
 * listens (`main.ts` does; tests use `http.inject()`).
 * @throws CONFIG_INVALID for a config it cannot wire (a malformed DHCP range; queue
 *   kind `auto` without `deps.queueKind`).
 */
/** Seconds of a lease time in the config's syntax (`10m`, `1h`). */
function leaseSeconds(text: string): number {
  const n = Number(text.slice(0, -1));
  return text.endsWith('h') ? n * 3600 : n * 60;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const { log, store, events } = deps;
  const now = deps.now ?? systemClock;
  const registry = new Registry();
  collectProcessMetrics(registry);
  // the pool, and how many unknown MACs a port may use at a time: each keeps its place for a lease time
  const unassigned = config.dhcp.unassignedRange
    ? {
        ...parseIpv4Range(config.dhcp.unassignedRange),
        ...(config.dhcp.unknownPerPort !== undefined ? { perPort: config.dhcp.unknownPerPort } : {}),
        holdSeconds: leaseSeconds(config.dhcp.unassignedLeaseTime ?? '10m'),
      }
    : undefined;

  // bundle lists: read by start(), handed to the compiler as the same object until replaced
  let lists: { readonly deny?: PrefixGroups } = {};
  let bypass: {
    readonly doh?: readonly string[];
    readonly tor?: readonly string[];
    readonly vpn?: readonly string[];
  } = {};

  const lister = deps.nftBulk ?? deps.nft;
  const applier = new NftApplier(deps.nft, {
    log: log.child({ part: 'nft' }),
    now,
    ...(lister !== deps.nft ? { bulk: lister } : {}),
  });
  // the IPS: how packets reach Suricata on this kernel (nft queue, or the xtables target)
  const suricata = config.suricata?.enabled ? config.suricata : undefined;
  const queue: QueueSettings | undefined = suricata
    ? { kind: queueKind(suricata.queueKind, deps.queueKind), num: suricata.queue }
    : undefined;
  const sync = new NftSync({
    applier,
    network: config.network,
    conntrack: deps.conntrack,
    neighbours: deps.neighbours,
    registry,
    log: log.child({ part: 'nft-sync' }),
    now,
    driftIntervalSeconds: config.nft.driftInterval,
    lists: () => lists,
    bypass: () => bypass,
    // budgets is built below, before anything applies a ruleset
    budgetBlocked: (): ReadonlyMap<string, Date> => budgets.blocked(),
    unassigned,
    queue: () => queue,
  });

  const policy = new PolicyService({
    store,
    enforcer: {
      apply: async (next: Policy, prev: Policy) => {
        await sync.apply(next, prev);
        // Suricata's rules from the policy too, before the change returns (an approval
        // holds at once); a failure there is logged and does not undo the change
        await policyRules
          ?.update(next)
          .catch((err: unknown) => log.error({ err }, 'Suricata rules from the policy: update failed'));
      },
    },
    events,
    logger: log.child({ part: 'policy' }),
    now,
  });

  const budgets = new BudgetController({
    policy: () => policy.current(),
    readCounters: () => readVmCounters(lister),
    onChange: async () => {
      await sync.apply(policy.current());
      // DNS follows at once too (names, not just addresses)
      refreshClients();
    },
    stateFile: join(config.dataDir, 'budgets.json'),
    sampleSeconds: config.parental?.sampleSeconds,
    now,
    log: log.child({ part: 'budgets' }),
  });

  // --- DNS: who asks, by source address; learned addresses into the VM's sets ---------
  const clients = new ClientDirectory({ unassigned });
  const refreshClients = (): void =>
    clients.update(clientPolicies(policy.current(), new Date(now()), budgets.blocked()));
  const learner = new AddressLearner({
    applier,
    policy: () => sync.policy,
    vm: (client) => clients.vm(client)?.vm,
    inService: (vm, name, svc) => dns.inService(name, vm.name, svc),
    now,
    log,
  });
  const dns: DnsFilter = new DnsFilter({
    listen: config.dns.listen.map((address) => ({ address, port: config.dns.port })),
    upstreams: config.dns.upstream.map((address) => ({ address, port: 53 })),
    identify: (ip) => clients.identify(ip)?.policy,
    blockPage: { v4: config.network.lan.ipv4 },
    ...(config.dns.safeSearchTargets ? { safeSearchTargets: config.dns.safeSearchTargets } : {}),
    limits: { queriesPerSecond: 300, maxUpstream: 64, upstreamPerSecond: 50, ...config.dns.limits },
    rebinding: {
      internal: [`${config.network.lan.ipv4}/${config.network.lan.prefix}`],
      allowNames: config.dns.internalNames ?? [],
    },
    registry,
    logger: log.child({ part: 'dns' }),
    onResolved: (e) => learner.learn(e),
    onBlocked: (e) =>
      events.emit('dns.blocked', {
        vm: e.client,
        name: e.name,
        category: blockCategory(e.verdict) ?? 'other',
        at: now(),
      }),
  });

  const runners = new ChildRunners({
    runner: config.processes?.runner ?? 'direct',
    dataDir: config.dataDir,
    log: log.child({ part: 'children' }),
  });
  const dnsmasqLaunch = runners.dnsmasq();
  const dhcp = new DhcpServer({
    ...(dnsmasqLaunch.spawner ? { spawner: dnsmasqLaunch.spawner } : {}),
    ...(dnsmasqLaunch.processes ? { processes: { ...procDnsmasqTable, ...dnsmasqLaunch.processes } } : {}),
    iface: config.network.lan.iface,
    gateway: config.network.lan.ipv4,
    prefix: config.network.lan.prefix,
    leaseTime: config.dhcp.leaseTime,
    dir: join(config.dataDir, 'dhcp'),
    log: log.child({ part: 'dhcp' }),
    events,
    registry,
    ...(config.dhcp.unassignedRange ? { unassignedRange: config.dhcp.unassignedRange } : {}),
    ...(config.dhcp.unassignedLeaseTime ? { unassignedLeaseTime: config.dhcp.unassignedLeaseTime } : {}),
  });

  // "ask a parent": one set of rules for the block page and the API
  const intake = new AccessRequestIntake({
    store,
    registry,
    now,
    log: log.child({ part: 'access-requests' }),
    ...(config.parental?.accessRequests ? { limits: config.parental.accessRequests } : {}),
  });
  const retention = new RetentionJob({
    store,
    now,
    log: log.child({ part: 'retention' }),
    ...(config.retention ? { settings: config.retention } : {}),
  });

  const blockPort = config.network.blockPagePort ?? 80;
  const blockPage = new BlockPageServer({
    address: config.network.lan.ipv4,
    port: blockPort,
    explain: (ip, host) => {
      const who = clients.identify(ip);
      if (!who?.vm) return undefined;
      return { vm: who.vm.name, reason: explain(dns.verdict(host, who.policy), who.blocked) };
    },
    intake,
    log: log.child({ part: 'block-page' }),
  });

  // rule bundles: Suricata's first rule file and the lists come from bundles/current/
  const bundleDir = config.bundles ? join(config.dataDir, 'bundles') : undefined;
  const bundleCurrent = bundleDir ? join(bundleDir, 'current') : undefined;
  /** The lists folder in force (or of a bundle folder): the bundle's, if it has lists, else the configured one. */
  const listsDirInForce = async (bundle = bundleCurrent): Promise<string | undefined> => {
    if (bundle && (await listSourcesFromDir(join(bundle, 'lists'))).length > 0) return join(bundle, 'lists');
    return config.dns.listsDir;
  };
  /** DoH address files in force (or of a bundle folder): the configured ones and the bundle's. */
  const dohAddressFiles = (bundle = bundleCurrent): string[] => {
    const files = [...(config.bypass?.doh ?? [])];
    if (bundle) {
      const f = join(bundle, 'lists', 'bypass', 'doh-addresses.txt');
      if (existsSync(f)) files.push(f);
    }
    return files;
  };
  // the DNS lists in the data path: rules and datasets generated from the policy
  const policyRulesDir = join(config.dataDir, 'suricata', 'policy');
  const policyRules =
    suricata && queue
      ? new PolicyRules({
          dir: policyRulesDir,
          lists: async () => {
            const dir = await listsDirInForce();
            return dir ? readNameLists(dir, dohAddressFiles()) : EMPTY_NAME_LISTS;
          },
          // a whole engine rebuild (the bundle's rules too): at a low priority, as a switch's
          reload: async () => {
            if (ips?.supervisor.status().status === 'running') await ips.reloadInlineRules();
          },
          log: log.child({ part: 'suricata-policy' }),
          now,
        })
      : undefined;
  const suricataSetup =
    suricata && queue
      ? applianceSuricataSetup(
          config.dataDir,
          queue.num,
          [
            ...(bundleCurrent ? [join(bundleCurrent, ENFORCED_RULES)] : []),
            ...suricata.ruleFiles,
            policyRulesFile(policyRulesDir),
          ],
          [`${config.network.lan.ipv4}/${config.network.lan.prefix}`],
          suricata.bypass,
        )
      : undefined;
  // where a rule reload builds Suricata's new engine: the idle CPU class if the machine has one
  const idleCpu = suricataSetup && suricata?.reloadIdleCpu !== false ? await openIdleCpu() : undefined;
  if (suricataSetup)
    log.info(
      { idleCpu: idleCpu !== undefined },
      idleCpu
        ? "rule reloads build Suricata's engine at nice 19 in the idle CPU class (cgroup v1 cpu.idle)"
        : suricata?.reloadIdleCpu === false
          ? "rule reloads build Suricata's engine at nice 19 (suricata.reloadIdleCpu is false)"
          : "rule reloads build Suricata's engine at nice 19 (no cgroup v1 cpu controller with cpu.idle here)",
    );
  const ips =
    suricata && queue && suricataSetup
      ? new IpsService({
          setup: suricataSetup,
          kind: queue.kind,
          lanIface: config.network.lan.iface,
          // what the appliance needs is never blocked, whatever a guest provokes
          neverBlock: [...config.dns.upstream, config.api.listen, ...(suricata.neverBlock ?? [])].filter(
            (a) => isIP(a.split('/')[0] ?? '') !== 0,
          ),
          applier,
          policy,
          registry,
          events,
          log: log.child({ part: 'ips' }),
          now,
          ...(policyRules ? { policyRules } : {}),
          runners,
          ...(idleCpu ? { idleCpu } : {}),
          // blocked plain HTTP gets the block page from the service, in the server's place
          ...(blockPort > 0
            ? {
                blockPage: {
                  url: `http://${config.network.lan.ipv4}${blockPort === 80 ? '' : `:${blockPort}`}`,
                  sender: new LibcRawIpSender(),
                },
              }
            : {}),
        })
      : undefined;

  /** The DNS list sources in force (or of a bundle folder): the bundle's lists, else the configured folder. */
  const dnsSources = async (bundle = bundleCurrent): Promise<ListSource[] | undefined> => {
    const dir = await listsDirInForce(bundle);
    return dir ? listSourcesFromDir(dir) : undefined;
  };
  /** What the last `prepare` built for a version folder (by its real path), until `activate` uses it. */
  let prepared:
    | {
        readonly dir: string;
        readonly dns: PreparedLists | undefined;
        readonly names: PreparedNames | undefined;
        readonly addresses: Awaited<ReturnType<typeof readAddressLists>>;
      }
    | undefined;
  const runtime: BundleRuntime = {
    ...(suricataSetup ? { test: suricataRuleTester(suricataSetup) } : {}),
    ...(ips && queue
      ? {
          health: {
            rulesetStats: () => ips.control.rulesetStats(),
            sample: async () => {
              const st = ips.supervisor.status();
              return {
                pid: st.status === 'running' ? st.pid : undefined,
                answers: await ips.control.ping(2000),
                queue: await readQueueStats(queue.num),
              };
            },
          },
        }
      : {}),
    // the heavy list work (a million names: seconds of CPU) happens here, before the
    // switch, while the version in force still enforces; activate() then only swaps
    async prepare(dir) {
      const t0 = performance.now();
      const sources = await dnsSources(dir);
      const dnsPrepared = sources ? await dns.prepareLists(sources) : undefined;
      const listsDir = await listsDirInForce(dir);
      const names =
        policyRules &&
        (await policyRules.prepareLists(
          listsDir ? await readNameLists(listsDir, dohAddressFiles(dir)) : EMPTY_NAME_LISTS,
          policy.current(),
        ));
      const addresses = await readAddressLists(config, log, dir);
      prepared = { dir: await realpath(dir), dns: dnsPrepared, names, addresses };
      log.info({ part: 'bundles', dir, ms: Math.round(performance.now() - t0) }, 'bundle lists prepared');
    },
    async activate(dir) {
      // where the time of a switch goes, in the log (bench:bundle reads it)
      const steps: Record<string, number> = {};
      let t0 = performance.now();
      const lap = (step: string): void => {
        const t = performance.now();
        steps[step] = Math.round(t - t0);
        t0 = t;
      };
      const real = await realpath(dir).catch(() => dir);
      const ready = prepared?.dir === real ? prepared : undefined;
      prepared = undefined;
      if (ready?.dns) dns.useLists(ready.dns);
      else if (!ready) {
        const sources = await dnsSources();
        if (sources) await dns.loadLists(sources);
      }
      lap('dnsMs');
      ({ lists, bypass } = ready?.addresses ?? (await readAddressLists(config, log, bundleCurrent)));
      await sync.apply(policy.current());
      lap('nftMs');
      // Suricata's names come from the same lists: rewritten here, loaded by the reload below
      await policyRules?.reloadLists(policy.current(), {
        reload: false,
        ...(ready?.names ? { prepared: ready.names } : {}),
      });
      lap('suricataListsMs');
      if (ips) {
        const rules = countRules(await readFile(join(dir, ENFORCED_RULES), 'utf8').catch(() => ''));
        // a ruleset that passed `suricata -T` can still kill the running Suricata at the
        // reload (e.g. the new engine beside the old one needs more memory than the
        // appliance has): an unhealthy switch, rolled back like a failed health check
        const r = await ips.reloadRules({ timeoutMs: ruleLoadTimeoutMs(rules) }).catch((err: unknown) => {
          const st = ips.supervisor.status();
          throw new PortcullisError(
            'BUNDLE_UNHEALTHY',
            `the rule reload after the switch failed: ${(err as Error).message}; Suricata is ${st.status}${st.reason ? ` (${st.reason})` : ''}`,
            { cause: err },
          );
        });
        steps.reloadInlineMs = r.inlineMs;
        steps.reloadIdsMs = r.idsMs;
      }
      log.info({ part: 'bundles', dir, ...steps }, 'bundle switch: lists and rules in force');
    },
  };
  const bundles =
    config.bundles && bundleDir
      ? new BundleService({
          dir: bundleDir,
          updater: bundleUpdaterOptions(config.bundles),
          runtime,
          settings: new JsonBundleSettings(join(bundleDir, 'settings.json')),
          store,
          events,
          registry,
          log: log.child({ part: 'bundles' }),
          now,
          pollSeconds: config.bundles.pollSeconds,
          jitterSeconds: config.bundles.jitterSeconds,
          keep: config.bundles.keep,
          healthWindowMs: config.bundles.healthSeconds * 1000,
        })
      : undefined;

  // packet captures of a VM or an alert's flow (tcpdump), admins only
  const captures = new CaptureService({
    dir: join(config.dataDir, 'captures'),
    lanIface: config.network.lan.iface,
    policy: () => policy.current(),
    alerts: store.alerts,
    audit: (entry) => store.record(entry),
    limits: {
      ...(config.capture
        ? {
            maxSeconds: config.capture.maxSeconds,
            maxBytes: config.capture.maxMiB * 1024 * 1024,
            concurrent: config.capture.concurrent,
            keep: config.capture.keep,
          }
        : {}),
    },
    ...(config.capture ? { tcpdump: config.capture.tcpdump } : {}),
    registry,
    log: log.child({ part: 'capture' }),
    now,
  });

  // subscribers of the event bus: the alert log, webhooks, metrics; removed at stop
  const unsubscribe = subscribeServices(events, { store, registry, log });
  // metrics read from the kernel and from Suricata when Prometheus scrapes
  new TrafficMetrics({
    registry,
    read: () => readCounters(lister),
    vms: () => sync.policy?.vms.map((vm) => vm.name) ?? [],
    log: log.child({ part: 'metrics' }),
  });
  // the dashboard's charts: a day of per-minute samples in memory
  let dnsBlocks = 0;
  events.on('history', 'dns.blocked', () => dnsBlocks++);
  const history = new TrafficHistory({
    read: () => readCounters(lister),
    vms: () => sync.policy?.vms.map((vm) => vm.name) ?? [],
    dns: () => ({ queries: dns.totalQueries(), blocks: dnsBlocks }),
    ...(deps.historyStepSeconds ? { stepSeconds: deps.historyStepSeconds } : {}),
    now,
    log: log.child({ part: 'history' }),
  });
  // only where Suricata runs: its absence is no outage
  if (ips) new SuricataMetrics({ registry, source: () => ips.control, log: log.child({ part: 'metrics' }) });
  events.on('app', 'policy.applied', ({ policy: p }) => {
    refreshClients();
    dhcp.setVms(p.vms);
  });

  const http = deps.tls
    ? (Fastify({
        logger: false,
        bodyLimit: 8 << 20,
        https: { cert: deps.tls.cert, key: deps.tls.key },
      }) as unknown as FastifyInstance)
    : Fastify({ logger: false, bodyLimit: 8 << 20 });
  // who may do what: Host and Origin checks, sessions and tokens, roles; before any route
  const authRoutes = await installAuth(http, {
    store,
    policy,
    hosts: hostPolicy(config.api.listen, config.api.names),
    secure: deps.tls !== undefined,
    session: {
      idleMs: (config.api.session?.idleMinutes ?? 60) * 60_000,
      absoluteMs: (config.api.session?.absoluteHours ?? 12) * 3_600_000,
    },
    loginsPerAddress: config.api.loginLimits?.perAddress,
    failuresPerUser: config.api.loginLimits?.failuresPerUser,
    configToken: config.api.token,
    scrapers: config.api.metricsScrapers,
    apiPrefix: API_PREFIX,
    registry,
    log: log.child({ part: 'auth' }),
    now,
  });
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
    accessRequests: intake,
    // resources the service adds beside the policy API: same errors and OpenAPI
    plugins: [
      async (scope) => {
        await scope.register(authRoutes);
        await scope.register(vmStateRoutes, {
          policy,
          now,
          budgetBlocked: () => budgets.blocked(),
        });
        await scope.register(parentalRoutes, { policy, budgets, dhcp });
        await scope.register(ipsRoutes, { ips, store });
        await scope.register(dnsRoutes, { dns, client: (vm) => clients.vm(vm)?.policy });
        await scope.register(bundleRoutes, { bundles });
        await scope.register(liveRoutes, {
          events,
          history,
          // a parent hears of their VMs only
          scope: (req) => {
            const p = req.principal;
            if (p?.role !== 'parent') return undefined;
            const mine = vmsOf(p, policy.current().vms);
            return (vm) => vm !== undefined && mine.has(vm);
          },
        });
        await scope.register(captureRoutes, { captures });
        await scope.register(backupRoutes, {
          dataDir: config.dataDir,
          configFile: deps.configFile,
          restart: deps.restart,
          log: log.child({ part: 'backup' }),
        });
      },
    ],
  });
  // the OpenAPI document, also at the root
  http.get('/openapi.json', async (_req, reply) => reply.redirect(`${API_PREFIX}/openapi.json`));
  // the dashboard at / (one exact route per file: never shadows the API or /metrics)
  await http.register(dashboardPlugin, { apiPrefix: API_PREFIX });

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
    bundles,
    async start() {
      await bundles?.init();
      ({ lists, bypass } = await readAddressLists(config, log, bundleCurrent));
      seedPolicy(store, config, log);
      if (queue) log.info({ queue: queue.kind, num: queue.num }, QUEUE_KIND_LOG[queue.kind]);
      await policy.start();
      const current = policy.current();
      budgets.start();
      history.start();
      retention.start();
      await captures.start();
      refreshClients();
      sync.start();
      if (startDhcp) await dhcp.start(current.vms);
      const sources = await dnsSources();
      if (sources) await dns.loadLists(sources);
      await dns.start();
      if (blockPort > 0) await blockPage.start();
      // Suricata last: fail-closed VMs wait for it, everything else already flows
      if (ips) await ips.start();
      bundles?.start();
      // schedule windows, pauses and budgets switch DNS behaviour as time passes
      scheduleTimer = setInterval(refreshClients, 15_000);
      scheduleTimer.unref();
      log.info({ vms: current.vms.length, backend: deps.nft.kind }, 'portcullis is enforcing');
    },
    async stop() {
      // every child gets SIGKILL at this deadline at the latest: one budget for all
      const children = { deadline: Date.now() + SHUTDOWN_BUDGET_MS };
      if (scheduleTimer) clearInterval(scheduleTimer);
      await http.close();
      await captures.stop();
      await bundles?.stop();
      // the guests' services first: their sockets are free at once for a new instance
      await Promise.all([blockPage.stop(), dns.stop()]);
      // Suricata takes seconds to stop; the kernel keeps the ruleset meanwhile
      await Promise.all([dhcp.stop(children), ips?.stop(children)]);
      budgets.stop();
      history.stop();
      retention.stop();
      sync.stop();
      await policy.stop();
      events.off('app');
      events.off('history');
      unsubscribe();
    },
  };
}

const QUEUE_KIND_LOG: Record<QueueKind, string> = {
  nft: 'IPS queue: nft queue statement',
  xt: 'IPS queue: this kernel has no nft queue expression; using the xtables NFQUEUE target',
};

/** The queue kind in force: the config's, or what main probed when the config says `auto`. */
function queueKind(configured: QueueKind | 'auto', probed: QueueKind | undefined): QueueKind {
  if (configured !== 'auto') return configured;
  if (probed === undefined)
    throw new PortcullisError(
      'CONFIG_INVALID',
      'suricata.queueKind is auto but nobody probed the kernel: pass deps.queueKind (detectQueueKind) or set nft or xt',
    );
  return probed;
}

/**
 * The address lists of the config and of the bundle in force (`bundle`: its folder, whose
 * `lists/bypass/{doh-addresses,tor-relays,vpn-endpoints}.txt` add to the configured files).
 */
async function readAddressLists(
  config: Config,
  log: Logger,
  bundle?: string,
): Promise<{ lists: { deny: PrefixGroups }; bypass: { doh: string[]; tor: string[]; vpn: string[] } }> {
  const read = (files: readonly string[] | undefined): string[] =>
    (files ?? []).flatMap((f) => loadAddressList(f));
  const fromBundle = async (name: string): Promise<string[]> => {
    if (!bundle) return [];
    const dir = join(bundle, 'lists', 'bypass');
    const names = await readdir(dir).catch(() => [] as string[]);
    return names.includes(name) ? loadAddressList(join(dir, name)) : [];
  };
  const deny = read(config.lists?.deny);
  if (deny.length > 0) log.info({ entries: deny.length }, 'deny lists loaded');
  const unique = (a: readonly string[]): string[] => [...new Set(a)];
  return {
    // kept grouped only: a million strings would stay on the heap for nothing
    lists: { deny: groupByPrefix(deny) },
    bypass: {
      doh: unique([...read(config.bypass?.doh), ...(await fromBundle('doh-addresses.txt'))]),
      tor: unique([...read(config.bypass?.tor), ...(await fromBundle('tor-relays.txt'))]),
      vpn: unique([...read(config.bypass?.vpn), ...(await fromBundle('vpn-endpoints.txt'))]),
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
