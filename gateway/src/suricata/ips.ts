import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { dispatchDecisions, type Enforcer } from '../actions/dispatch.js';
import { ActionEngine, withFlowTuple } from '../actions/engine.js';
import { DEFAULT_ALERT_ACTIONS, type AlertActions } from '../actions/model.js';
import { ProtectedAddresses } from '../actions/protected.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { NftApplier } from '../nft/applier.js';
import { IPS_BLOCK4, IPS_BLOCK6, IPS_VMBLOCK4, IPS_VMBLOCK6 } from '../nft/names.js';
import { installXtQueue, type QueueKind } from '../nft/queue.js';
import { effectiveProfiles } from '../policy/builtins.js';
import { alertActionsOf, profileInForce } from '../policy/in-force.js';
import type { Policy } from '../policy/model.js';
import type { PolicyService } from '../control/policy-service.js';
import type { SuricataSetup } from './config.js';
import { SuricataControl, type RulesetStats } from './control.js';
import {
  atLowPriority,
  type LowPriorityOptions,
  type ReloadPriority,
  reloadPriority,
  reniceFailure,
} from './reload.js';
import type { PolicyRules } from './policy-rules.js';
import { blockPageReply, isBlockPageAlert } from './block-response.js';
import type { RawIpSender } from '../process/raw-ip.js';
import type { AlertRaw } from './eve/types.js';
import { EveIngest } from './eve/ingest.js';
import { LeaseTable } from './eve/leases.js';
import { EveMetrics } from './eve/metrics.js';
import { EvePipeline } from './eve/pipeline.js';
import { EveSocketReader } from './eve/socket-reader.js';
import {
  procProcessTable,
  SuricataSupervisor,
  type StopOptions,
  type SuricataSupervisorOptions,
} from './supervisor.js';
import type { IdleCpu } from '../process/idle-cpu.js';
import { readOwnQueues, type ChildRunners, type SuricataInstance } from '../process/runner.js';
import { Serial } from '../util/serial.js';
import { systemClock, type Clock } from '../clock.js';

export interface IpsOptions {
  readonly setup: SuricataSetup;
  /** Interface facing the guests: where the passive (`ids`) instance listens. */
  readonly lanIface: string;
  readonly kind: QueueKind;
  readonly applier: NftApplier;
  readonly policy: PolicyService;
  readonly registry: Registry;
  /** Where alerts, decisions and their outcomes are published (`ips.*`), and Suricata's status. */
  readonly events: EventBus;
  /**
   * Addresses and prefixes the IPS never blocks: the upstream resolvers, the bundle
   * server, the management network, the config's allowlist. The policy's update
   * servers are added to them. Default none.
   */
  readonly neverBlock?: readonly string[];
  readonly log?: Logger;
  readonly now?: Clock;
  /**
   * The rules generated from the policy and the DNS lists (names.ts), written before
   * Suricata starts (the policy's enforcer keeps them in step later). Its file must be
   * among `setup.ruleFiles`.
   */
  readonly policyRules?: PolicyRules;
  /** How the Suricatas run (process/runner.ts). Default: the service's own children. */
  readonly runners?: ChildRunners;
  /** Where a rule reload's engine build runs (process/idle-cpu.ts `openIdleCpu`). Default: nice only. */
  readonly idleCpu?: IdleCpu;
  /**
   * Blocked plain HTTP gets the block page: the service answers the guest in the
   * server's place with a redirect to `url` (the block page, `http://192.168.50.1`),
   * sent through `sender` (block-response.ts). Without it the guest's request is
   * dropped and the server reset, and the guest waits for its own time-out.
   */
  readonly blockPage?: { readonly url: string; readonly sender: RawIpSender };
}

/** The spawner and process table of a Suricata instance under `runners`. */
function suricataLaunch(
  runners: ChildRunners | undefined,
  instance: SuricataInstance,
): Pick<SuricataSupervisorOptions, 'spawner' | 'processes'> {
  const launch = runners?.suricata(instance);
  if (!launch?.spawner) return {};
  // another user's Suricata: its /proc is hidden from the service, the queue table is not
  return {
    spawner: launch.spawner,
    processes: { ...procProcessTable, ...launch.processes, readQueues: () => readOwnQueues() },
  };
}

/** An active IPS block of a remote host: for one VM, or for every VM when `vm` is absent. */
export interface IpsBlock {
  readonly address: string;
  readonly until: string;
  readonly vm?: string;
}

/**
 * The inline IPS at run time: Suricata supervised on the queue, its EVE stream parsed,
 * mapped to VMs and turned into actions. It blocks the remote host in the kernel and
 * quarantines the VM itself; everything else subscribes to what it publishes
 * (`ips.alert`, `ips.decision`, `ips.action`): the alert log, webhooks, metrics.
 */
export class IpsService {
  readonly #o: IpsOptions;
  readonly #log: Logger;
  readonly supervisor: SuricataSupervisor;
  readonly control: SuricataControl;
  readonly #reader: EveSocketReader;
  readonly #leases = new LeaseTable();
  readonly #engine: ActionEngine;
  readonly #pipeline: EvePipeline;
  readonly #enforcer: Enforcer;
  readonly #blockPageReplies: Counter<'result'>;
  /** Flows answered with the block page, the newest last: one answer a flow (bounded). */
  readonly #answeredFlows = new Set<number>();
  #policy: Policy | undefined;
  #protected: ProtectedAddresses;
  /** The passive instance for VMs in IPS mode `ids`, with the BPF filter it runs with. */
  #ids: { supervisor: SuricataSupervisor; filter: string; control: SuricataControl } | undefined;
  readonly #idsChange = new Serial();
  #started = false;

  constructor(options: IpsOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    const now = options.now ?? systemClock;
    this.supervisor = new SuricataSupervisor({
      setup: options.setup,
      log: this.#log.child({ part: 'suricata' }),
      events: options.events,
      ...suricataLaunch(options.runners, 'inline'),
    });
    this.control = new SuricataControl({ path: options.setup.commandSocket });
    this.#protected = new ProtectedAddresses(options.neverBlock ?? []);
    this.#engine = new ActionEngine({
      clock: now,
      actionsFor: (vm) => this.#actionsFor(vm),
      isProtected: (remote) => this.#protected.has(remote),
    });
    const engine = this.#engine;
    new Gauge({
      name: 'portcullis_ips_blocks_refused',
      help: 'IPS blocks not made, by reason: protected (an address the appliance needs or the allowlist), inbound (alerts on traffic to a VM do not count towards quarantine)',
      labelNames: ['reason'],
      registers: [options.registry],
      collect() {
        const s = engine.stats();
        this.set({ reason: 'protected' }, s.blocksProtected);
        this.set({ reason: 'inbound' }, s.quarantineIgnored);
      },
    });
    this.#blockPageReplies = new Counter({
      name: 'portcullis_block_page_replies_total',
      help: 'Alerts of blocked plain HTTP (the name in Host) answered with a redirect to the block page (sent), or not, by why: not_dropped (a passive instance), no_packet, not_tcp_to_server, send_failed, off (no block page configured)',
      labelNames: ['result'],
      registers: [options.registry],
    });
    const metrics = new EveMetrics(options.registry);
    this.#pipeline = new EvePipeline({ resolver: this.#leases, engine: this.#engine, metrics });
    this.#enforcer = {
      blockHost: async (remote, seconds, vm, global) => {
        const v6 = remote.includes(':');
        if (global || vm === undefined) {
          await options.applier.addElements(v6 ? IPS_BLOCK6 : IPS_BLOCK4, [remote], seconds);
          return;
        }
        // for the alerting VM only: its address (anti-spoofing binds it to the VM) . the remote
        const v = this.#policy?.vms.find((x) => x.name === vm);
        const own = v6 ? v?.ipv6 : v?.ipv4;
        if (own === undefined) {
          this.#log.warn({ vm, remote }, 'IPS: no address of the VM in this family; remote not blocked');
          return;
        }
        await options.applier.addElements(
          v6 ? IPS_VMBLOCK6 : IPS_VMBLOCK4,
          [{ concat: [own, remote] }],
          seconds,
        );
      },
      quarantine: async (vm, reason) => {
        const current = options.policy.current().vms.find((v) => v.name === vm);
        if (!current || current.quarantine) return;
        await options.policy.quarantine(vm, reason, { actor: 'ips', reason });
      },
    };
    const ingest = new EveIngest({
      handler: (event) => {
        // the guest waits for an answer: before anything else
        if (event.event_type === 'alert' && isBlockPageAlert(event.raw)) this.#replyBlockPage(event.raw);
        return dispatchDecisions(
          // the alert log keeps the flow's protocol and ports (a capture of its flow uses them)
          withFlowTuple(this.#pipeline.handle(event).decisions, event.raw),
          this.#enforcer,
          options.events,
          this.#log,
        );
      },
      log: this.#log.child({ part: 'eve' }),
      metrics,
    });
    this.#reader = new EveSocketReader({
      path: options.setup.eveSocket,
      sink: ingest,
      log: this.#log.child({ part: 'eve' }),
    });
    options.events.on(this, 'policy.applied', ({ policy }) => this.#setPolicy(policy));
    // a VM let out of quarantine starts with a clean slate of alerts
    options.events.on(this, 'vm.released', ({ vm }) => this.#engine.release(vm));
  }

  /** Answer a blocked HTTP request with a redirect to the block page, in the server's place. */
  #replyBlockPage(raw: AlertRaw): void {
    const page = this.#o.blockPage;
    if (!page) {
      this.#blockPageReplies.inc({ result: 'off' });
      return;
    }
    // the rules of several label counts can alert on the same packet; the flow is dropped after it
    const flow = raw.flow_id;
    if (flow !== undefined) {
      if (this.#answeredFlows.has(flow)) return;
      this.#answeredFlows.add(flow);
      if (this.#answeredFlows.size > 1024)
        this.#answeredFlows.delete(this.#answeredFlows.values().next().value as number);
    }
    const reply = blockPageReply(raw, page.url);
    if (typeof reply === 'string') {
      this.#blockPageReplies.inc({ result: reply });
      this.#log.warn({ reason: reply, flow: raw.flow_id }, 'block page: blocked HTTP request not answered');
      return;
    }
    try {
      page.sender.send(reply.packet, reply.to);
      this.#blockPageReplies.inc({ result: 'sent' });
    } catch (err) {
      this.#blockPageReplies.inc({ result: 'send_failed' });
      this.#log.warn({ err, to: reply.to, host: reply.host }, 'block page: redirect not sent');
    }
  }

  #setPolicy(policy: Policy): void {
    this.#policy = policy;
    // update servers stay reachable for every VM: never blocked
    this.#protected = new ProtectedAddresses([...(this.#o.neverBlock ?? []), ...policy.updateServers]);
    for (const vm of policy.vms) {
      this.#leases.add({ vm: vm.name, address: vm.ipv4 });
      if (vm.ipv6) this.#leases.add({ vm: vm.name, address: vm.ipv6 });
    }
    if (this.#started)
      void this.#idsChange
        .run(() => this.#syncIds())
        .catch((err: unknown) => this.#log.error({ err }, 'IDS instance update failed'));
  }

  /** The BPF filter of the VMs whose profile in force has IPS mode `ids` (never quarantined ones); empty when none. */
  #idsFilter(): string {
    const p = this.#policy;
    if (!p) return '';
    const profiles = effectiveProfiles(p.profiles);
    const macs = p.vms
      .filter((v) => !v.quarantine && profileInForce(v, profiles).ips.mode === 'ids')
      .map((v) => v.mac.toLowerCase())
      .sort();
    return macs.map((m) => `ether host ${m}`).join(' or ');
  }

  /**
   * IPS mode `ids` (copy, never drop): a second, passive Suricata on AF_PACKET that sees
   * only those VMs' frames; its alerts go through the same actions. Restarted when the
   * set of such VMs changes.
   */
  async #syncIds(): Promise<void> {
    const filter = this.#idsFilter();
    if (this.#ids && this.#ids.filter === filter) return;
    if (this.#ids) {
      await this.#ids.supervisor.stop();
      this.#ids = undefined;
    }
    if (filter === '') return;
    const base = this.#o.setup;
    const dir = join(dirname(base.configFile), '..', 'suricata-ids');
    mkdirSync(dir, { recursive: true });
    const setup: SuricataSetup = {
      ...base,
      configFile: join(dir, 'suricata.yaml'),
      logDir: dir,
      pidFile: join(dir, 'suricata.pid'),
      commandSocket: join(dir, 'command.socket'),
      afPacket: { interface: this.#o.lanIface, bpfFilter: filter },
    };
    const supervisor = new SuricataSupervisor({
      setup,
      log: this.#log.child({ part: 'suricata-ids' }),
      ...suricataLaunch(this.#o.runners, 'ids'),
    });
    this.#ids = { supervisor, filter, control: new SuricataControl({ path: setup.commandSocket }) };
    await supervisor.start();
    this.#log.info({ filter }, 'IDS: passive Suricata on AF_PACKET for VMs in mode ids');
  }

  /**
   * The passive (`ids`) instance reloads its rule files too (a rule bundle switch), if it
   * runs; the inline instance is the caller's (`control`). Its main thread builds the new
   * engine at a low priority (reload.ts).
   * @param options.timeoutMs how long the reload may take, ms (`ruleLoadTimeoutMs`).
   */
  async reloadIdsRules(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    const ids = this.#ids;
    const st = ids?.supervisor.status();
    if (ids && st?.status === 'running')
      await atLowPriority(
        st.pid,
        () => ids.control.reloadRules({ blocking: true, ...options }),
        this.#lowPriority('ids', st.pid),
      );
  }

  /**
   * Reload the inline instance's rule files (its policy rules changed, or an admin asked),
   * its main thread building the new engine at a low priority as in a bundle switch.
   * @returns the rule counts after the reload (`SuricataControl.reloadRules`).
   */
  async reloadInlineRules(options: { readonly timeoutMs?: number } = {}): Promise<readonly RulesetStats[]> {
    const st = this.supervisor.status();
    const pid = st.status === 'running' ? st.pid : undefined;
    return atLowPriority(
      pid,
      () => this.control.reloadRules({ blocking: true, ...options }),
      this.#lowPriority('inline', pid),
    );
  }

  /**
   * Reload the rule files of both instances after a rule bundle switch: the inline one
   * first (it enforces), then the passive one, never both at once (on 2 cores two engine
   * builds at once starve the packet threads and each other). Each builds its new engine
   * in its main thread at a low priority, so inspection keeps the cores.
   * @param options.timeoutMs how long each reload may take, ms (`ruleLoadTimeoutMs`).
   * @returns how long each reload took, ms (0: that instance does not run).
   */
  async reloadRules(
    options: { readonly timeoutMs?: number } = {},
  ): Promise<{ readonly inlineMs: number; readonly idsMs: number }> {
    const t0 = performance.now();
    const st = this.supervisor.status();
    if (st.status === 'running')
      await atLowPriority(
        st.pid,
        () => this.control.reloadRules({ blocking: true, ...options }),
        this.#lowPriority('inline', st.pid),
      );
    const t1 = performance.now();
    await this.reloadIdsRules(options);
    return { inlineMs: Math.round(t1 - t0), idsMs: Math.round(performance.now() - t1) };
  }

  /**
   * How a reload lowers Suricata's main thread (reload.ts): nice 19, the idle CPU class
   * where the machine has one; what fails is said, since the build then competes with
   * inspection.
   */
  #lowPriority(instance: 'inline' | 'ids', pid: number | undefined): LowPriorityOptions {
    return {
      ...(this.#o.idleCpu ? { idle: this.#o.idleCpu } : {}),
      onUnchanged: (err, how) => this.#log.warn({ err, instance, pid }, reniceFailure(err, how)),
    };
  }

  /**
   * How each running Suricata would build a new engine now (`reloadPriority`): whether
   * its main thread can be reniced and the idle CPU class is there. Null: not running.
   */
  reloadPriority(): { readonly inline: ReloadPriority | null; readonly ids: ReloadPriority | null } {
    const of = (pid: number | undefined): ReloadPriority | null =>
      pid === undefined ? null : reloadPriority(pid, this.#o.idleCpu ? { idle: this.#o.idleCpu } : {});
    const running = (st: ReturnType<SuricataSupervisor['status']> | undefined): number | undefined =>
      st?.status === 'running' ? st.pid : undefined;
    return {
      inline: of(running(this.supervisor.status())),
      ids: of(running(this.#ids?.supervisor.status())),
    };
  }

  /** State of the passive (`ids`) instance, if one runs. */
  idsStatus(): ReturnType<SuricataSupervisor['status']> | undefined {
    return this.#ids?.supervisor.status();
  }

  #actionsFor(vm: string | undefined): AlertActions {
    const p = this.#policy;
    const v = vm === undefined ? undefined : p?.vms.find((x) => x.name === vm);
    if (!p || !v) return DEFAULT_ALERT_ACTIONS;
    return alertActionsOf(profileInForce(v, effectiveProfiles(p.profiles)));
  }

  /** Active blocks of remote hosts: for every VM, then per VM. */
  blocks(): IpsBlock[] {
    const byAddress = new Map<string, string>();
    for (const v of this.#policy?.vms ?? []) {
      byAddress.set(v.ipv4, v.name);
      if (v.ipv6) byAddress.set(v.ipv6, v.name);
    }
    const global = [IPS_BLOCK4, IPS_BLOCK6].flatMap((set) =>
      this.#o.applier
        .dynamicElements(set)
        .map((e) => ({ address: String(e.val), until: e.expiresAt.toISOString() })),
    );
    const perVm = [IPS_VMBLOCK4, IPS_VMBLOCK6].flatMap((set) =>
      this.#o.applier.dynamicElements(set).map((e) => {
        const [own, remote] = (e.val as { concat: [string, string] }).concat;
        const vm = byAddress.get(own);
        return { address: remote, until: e.expiresAt.toISOString(), ...(vm ? { vm } : {}) };
      }),
    );
    return [...global, ...perVm];
  }

  /** Undo the blocks of `address`, for every VM (the parent or admin disagrees with the IPS). */
  async unblock(address: string): Promise<boolean> {
    const v6 = address.includes(':');
    const set = v6 ? IPS_BLOCK6 : IPS_BLOCK4;
    const vmSet = v6 ? IPS_VMBLOCK6 : IPS_VMBLOCK4;
    const perVm = this.#o.applier
      .dynamicElements(vmSet)
      .map((e) => e.val)
      .filter((val) => (val as { concat: [string, string] }).concat[1] === address);
    const had = perVm.length > 0 || this.#o.applier.dynamicElements(set).some((e) => e.val === address);
    await this.#o.applier.deleteElements(set, [address]);
    if (perVm.length > 0) await this.#o.applier.deleteElements(vmSet, perVm);
    // the engine forgets it too, so the next alert blocks it again
    this.#engine.unblock(address);
    return had;
  }

  async start(): Promise<void> {
    this.#setPolicy(this.#o.policy.current());
    if (this.#o.kind === 'xt') await installXtQueue(this.#o.setup.nfq.queue);
    mkdirSync(this.#o.setup.logDir, { recursive: true });
    await this.#reader.start();
    await this.#o.policyRules?.start(this.#o.policy.current());
    await this.supervisor.start();
    this.#started = true;
    await this.#syncIds();
    this.#log.info({ queue: this.#o.setup.nfq.queue, kind: this.#o.kind }, 'IPS: Suricata on NFQUEUE');
  }

  /** Stop both Suricatas (SIGKILL at `options.deadline` at the latest) and the EVE reader. */
  async stop(options: StopOptions = {}): Promise<void> {
    this.#o.events.off(this);
    this.#started = false;
    await this.#idsChange.idle();
    await Promise.all([this.#ids?.supervisor.stop(options), this.supervisor.stop(options)]);
    await this.#reader.stop();
    this.#o.blockPage?.sender.close();
  }
}

/** The Suricata setup of the appliance, from the service's data dir. */
export function applianceSuricataSetup(
  dataDir: string,
  queue: number,
  ruleFiles: readonly string[],
  homeNet: readonly string[],
  bypass = true,
): SuricataSetup {
  const dir = join(dataDir, 'suricata');
  return {
    configFile: join(dir, 'suricata.yaml'),
    logDir: dir,
    pidFile: join(dir, 'suricata.pid'),
    commandSocket: join(dir, 'command.socket'),
    eveSocket: join(dir, 'eve.socket'),
    ruleFiles,
    nfq: { queue, mode: 'repeat' },
    bypass: { stream: bypass, tls: bypass },
    homeNet,
  };
}
