import type { VmMatch } from '../suricata/eve/leases.js';
import type { AlertEvent } from '../suricata/eve/types.js';
import type { AlertActions } from './model.js';
import type { Clock } from '../clock.js';

/**
 * Alert → decisions: the pure core of the reactive IPS. It sees one alert at a time
 * (already mapped to its VM) and says what to do: always record it; block the remote
 * host for a while; quarantine a VM that keeps alerting; notify a webhook. It performs
 * nothing itself (an {@link ActionExecutor} does), reads time only from the injected
 * clock, and keeps bounded memory: sliding windows hold at most `count` entries per VM,
 * expired state is swept, and every map is capped.
 */

/** The engine's time source (gateway/src/clock.ts): the service passes wall time, replay event time. */
export type { Clock };

/** What the engine needs to know about one alert. */
export interface AlertFacts {
  /** Suricata's timestamp of the alert, as written. */
  readonly timestamp: string;
  readonly vm: string | undefined;
  /** The other side's address, when the VM is known. */
  readonly remote: string | undefined;
  /** The other side is a guest too; guests are never blocked (quarantine is for that). */
  readonly remoteIsGuest: boolean;
  /**
   * The VM sent the packet that raised the alert (its address is the alert's source).
   * Only such alerts count towards quarantine: an alert on traffic *to* a VM can be
   * provoked by anyone, and a frame *from* a VM cannot be forged from another port
   * (anti-spoofing binds a guest's addresses to its MAC and port). Default true.
   */
  readonly fromVm?: boolean;
  readonly srcIp: string | undefined;
  readonly destIp: string | undefined;
  readonly flowId: number | undefined;
  readonly gid: number;
  readonly sid: number;
  readonly rev: number | undefined;
  readonly signature: string;
  readonly category: string;
  readonly severity: number;
  /** Suricata's action: `allowed` or `blocked`. */
  readonly action: string;
}

/** Every alert, for the alert log and the dashboard. */
export interface RecordDecision {
  readonly kind: 'record';
  readonly vm: string | null;
  readonly timestamp: string;
  readonly gid: number;
  readonly sid: number;
  readonly rev: number | null;
  readonly signature: string;
  readonly category: string;
  readonly severity: number;
  readonly action: string;
  readonly src: string | null;
  readonly dest: string | null;
  readonly remote: string | null;
  readonly flowId: number | null;
  /**
   * The flow's protocol and ports as Suricata wrote them (`TCP`, `UDP`, `ICMP`,
   * `IPv6-ICMP` …), added by {@link withFlowTuple} where the EVE event is at hand (the
   * IPS), for the alert log and a capture of the alert's flow. The engine leaves them out.
   */
  readonly proto?: string;
  readonly srcPort?: number;
  readonly destPort?: number;
}

/**
 * The decisions for an alert with the alert's protocol and ports on its `record`
 * (what the engine's facts leave out). Pure; the other decisions are passed as they are.
 */
export function withFlowTuple(
  decisions: readonly Decision[],
  raw: { readonly proto?: string; readonly src_port?: number; readonly dest_port?: number },
): Decision[] {
  return decisions.map((d) =>
    d.kind !== 'record'
      ? d
      : {
          ...d,
          ...(raw.proto !== undefined ? { proto: raw.proto } : {}),
          ...(raw.src_port !== undefined ? { srcPort: raw.src_port } : {}),
          ...(raw.dest_port !== undefined ? { destPort: raw.dest_port } : {}),
        },
  );
}

/** Block `remote` for `vm` (or for every VM when `global`) until `until`. */
export interface BlockDecision {
  readonly kind: 'block';
  readonly vm: string;
  readonly remote: string;
  /** For every VM (the profile marks the signature global); absent or false: for `vm` only. */
  readonly global?: boolean;
  /** ms since the epoch. */
  readonly until: number;
  /** Block duration from now, in seconds. */
  readonly seconds: number;
  readonly sid: number;
  readonly reason: string;
  /** The host was still blocked: this refreshes the timeout, it does not add a block. */
  readonly reassert: boolean;
}

export interface QuarantineDecision {
  readonly kind: 'quarantine';
  readonly vm: string;
  readonly reason: string;
  /** ms since the epoch. */
  readonly at: number;
  /** Signatures of the alerts that filled the window, oldest first. */
  readonly sids: readonly number[];
}

/** The JSON body a webhook receives. */
export interface NotifyPayload {
  readonly event: 'alert' | 'quarantine';
  readonly vm: string | null;
  /** ISO 8601. */
  readonly at: string;
  readonly sid?: number;
  readonly signature?: string;
  readonly severity?: number;
  readonly remote?: string | null;
  readonly reason?: string;
  /** What else was decided for this alert (`block`, `quarantine`). */
  readonly actions?: readonly ('block' | 'quarantine')[];
}

export interface NotifyDecision {
  readonly kind: 'notify';
  readonly url: string;
  readonly vm: string | null;
  readonly payload: NotifyPayload;
}

export type Decision = RecordDecision | BlockDecision | QuarantineDecision | NotifyDecision;

export interface ActionEngineOptions {
  readonly clock: Clock;
  /** The alert actions of a VM's profile; `undefined` VM for alerts no VM was found for. */
  readonly actionsFor: (vm: string | undefined) => AlertActions;
  /** Cap on tracked blocks, notification keys and VM windows each. Default 100,000. */
  readonly maxTracked?: number;
  /** Expired state is swept every this many alerts. Default 1,024. */
  readonly sweepEvery?: number;
  /**
   * Addresses never blocked, whatever the alert: the appliance's upstream resolvers,
   * bundle and update servers, the management network, the config's allowlist.
   */
  readonly isProtected?: (remote: string) => boolean;
}

export interface ActionEngineStats {
  readonly alerts: number;
  readonly activeBlocks: number;
  readonly windows: number;
  readonly notifyKeys: number;
  readonly quarantined: number;
  /** Block decisions not repeated because the host was blocked for long enough still. */
  readonly blocksDeduped: number;
  /** Blocks not made because the remote is protected (`isProtected`). */
  readonly blocksProtected: number;
  /** Alerts on traffic to a VM (not from it): not counted towards quarantine. */
  readonly quarantineIgnored: number;
  readonly notificationsDeduped: number;
}

interface Window {
  readonly windowMs: number;
  /** Times and sids of qualifying alerts, oldest first; at most `count` entries. */
  readonly hits: { t: number; sid: number }[];
}

const DEFAULT_NOTIFY_MAX_SEVERITY = 1;
const DEFAULT_NOTIFY_INTERVAL_S = 300;

/** The facts of an alert event and its VM match (see vmForEvent). */
export function alertFacts(event: AlertEvent, match: VmMatch | undefined): AlertFacts {
  const raw = event.raw;
  const a = raw.alert;
  return {
    timestamp: raw.timestamp,
    vm: match?.vm,
    remote: match?.remoteIp,
    remoteIsGuest: match?.remoteVm !== undefined,
    fromVm: match !== undefined && raw.src_ip !== match.remoteIp,
    srcIp: raw.src_ip,
    destIp: raw.dest_ip,
    flowId: raw.flow_id,
    gid: a.gid ?? 1,
    sid: a.signature_id,
    rev: a.rev,
    signature: a.signature ?? '',
    category: a.category ?? '',
    severity: a.severity,
    action: a.action,
  };
}

export class ActionEngine {
  readonly #clock: Clock;
  readonly #actionsFor: (vm: string | undefined) => AlertActions;
  readonly #maxTracked: number;
  readonly #sweepEvery: number;
  readonly #isProtected: (remote: string) => boolean;
  /** `vm|remote` (`*|remote` for every VM) → blocked until (ms). */
  readonly #blocks = new Map<string, number>();
  /** vm → recent qualifying alerts. */
  readonly #windows = new Map<string, Window>();
  /** `vm|sid` → no notification before (ms). */
  readonly #notifyUntil = new Map<string, number>();
  readonly #quarantined = new Set<string>();
  #alerts = 0;
  #blocksDeduped = 0;
  #blocksProtected = 0;
  #quarantineIgnored = 0;
  #notificationsDeduped = 0;

  constructor(options: ActionEngineOptions) {
    this.#clock = options.clock;
    this.#actionsFor = options.actionsFor;
    this.#maxTracked = options.maxTracked ?? 100_000;
    this.#sweepEvery = options.sweepEvery ?? 1024;
    this.#isProtected = options.isProtected ?? (() => false);
  }

  /** An engine with one configuration for every VM. */
  static withActions(
    actions: AlertActions,
    clock: Clock,
    options: Partial<Omit<ActionEngineOptions, 'clock' | 'actionsFor'>> = {},
  ): ActionEngine {
    return new ActionEngine({ ...options, clock, actionsFor: () => actions });
  }

  /** The decisions for one alert, `record` first. */
  onAlert(f: AlertFacts): Decision[] {
    const now = this.#clock();
    this.#alerts += 1;
    if (this.#alerts % this.#sweepEvery === 0) this.sweep();

    const out: Decision[] = [
      {
        kind: 'record',
        vm: f.vm ?? null,
        timestamp: f.timestamp,
        gid: f.gid,
        sid: f.sid,
        rev: f.rev ?? null,
        signature: f.signature,
        category: f.category,
        severity: f.severity,
        action: f.action,
        src: f.srcIp ?? null,
        dest: f.destIp ?? null,
        remote: f.remote ?? null,
        flowId: f.flowId ?? null,
      },
    ];
    const vm = f.vm;
    if (vm === undefined) return out;
    const cfg = this.#actionsFor(vm);
    const taken: ('block' | 'quarantine')[] = [];

    const block = cfg.block;
    if (block && f.severity <= block.maxSeverity && f.remote !== undefined && !f.remoteIsGuest) {
      if (this.#isProtected(f.remote)) {
        this.#blocksProtected += 1;
      } else {
        const d = this.#block(vm, f, block.duration, block.globalSids?.includes(f.sid) ?? false, now);
        if (d) {
          out.push(d);
          taken.push('block');
        }
      }
    }

    const q = cfg.quarantine;
    let quarantine: QuarantineDecision | undefined;
    if (q && f.severity <= q.maxSeverity && f.fromVm === false) this.#quarantineIgnored += 1;
    else if (q && f.severity <= q.maxSeverity) {
      quarantine = this.#countTowardsQuarantine(
        vm,
        f.sid,
        q.count,
        q.windowMinutes * 60_000,
        q.maxSeverity,
        now,
      );
      if (quarantine) {
        out.push(quarantine);
        taken.push('quarantine');
      }
    }

    const n = cfg.notify;
    if (n) {
      if (quarantine) {
        out.push({
          kind: 'notify',
          url: n.url,
          vm,
          payload: {
            event: 'quarantine',
            vm,
            at: new Date(now).toISOString(),
            reason: quarantine.reason,
            sid: f.sid,
            signature: f.signature,
          },
        });
      }
      if (f.severity <= (n.maxSeverity ?? DEFAULT_NOTIFY_MAX_SEVERITY)) {
        const key = `${vm}|${f.sid}`;
        const notBefore = this.#notifyUntil.get(key);
        if (notBefore !== undefined && now < notBefore) {
          this.#notificationsDeduped += 1;
        } else {
          this.#notifyUntil.delete(key);
          this.#notifyUntil.set(key, now + (n.minInterval ?? DEFAULT_NOTIFY_INTERVAL_S) * 1000);
          this.#cap(this.#notifyUntil);
          out.push({
            kind: 'notify',
            url: n.url,
            vm,
            payload: {
              event: 'alert',
              vm,
              at: new Date(now).toISOString(),
              sid: f.sid,
              signature: f.signature,
              severity: f.severity,
              remote: f.remote ?? null,
              actions: taken,
            },
          });
        }
      }
    }
    return out;
  }

  /** The VM left quarantine: alerts count towards a new one from now. */
  release(vm: string): void {
    this.#quarantined.delete(vm);
    this.#windows.delete(vm);
  }

  /** A block was lifted early (by an admin), for every VM: the next alert blocks again. */
  unblock(remote: string): void {
    for (const key of this.#blocks.keys()) if (key.endsWith(`|${remote}`)) this.#blocks.delete(key);
  }

  /** Drop expired blocks, stale windows and notification keys. Runs by itself every `sweepEvery` alerts. */
  sweep(): void {
    const now = this.#clock();
    for (const [key, until] of this.#blocks) if (until <= now) this.#blocks.delete(key);
    for (const [key, until] of this.#notifyUntil) if (until <= now) this.#notifyUntil.delete(key);
    for (const [vm, w] of this.#windows) {
      const last = w.hits[w.hits.length - 1];
      if (last === undefined || last.t <= now - w.windowMs) this.#windows.delete(vm);
    }
  }

  /** Sizes of the engine's state and its counters: what the memory bounds are checked on. */
  stats(): ActionEngineStats {
    return {
      alerts: this.#alerts,
      activeBlocks: this.#blocks.size,
      windows: this.#windows.size,
      notifyKeys: this.#notifyUntil.size,
      quarantined: this.#quarantined.size,
      blocksDeduped: this.#blocksDeduped,
      blocksProtected: this.#blocksProtected,
      quarantineIgnored: this.#quarantineIgnored,
      notificationsDeduped: this.#notificationsDeduped,
    };
  }

  #block(
    vm: string,
    f: AlertFacts,
    seconds: number,
    global: boolean,
    now: number,
  ): BlockDecision | undefined {
    const remote = f.remote as string;
    const key = `${global ? '*' : vm}|${remote}`;
    const until = this.#blocks.get(key);
    const active = until !== undefined && until > now;
    // Still blocked for more than half the duration: nothing to do. Otherwise refresh
    // the timeout to a full duration (never longer: blocks do not stack).
    if (active && until - now > (seconds * 1000) / 2) {
      this.#blocksDeduped += 1;
      return undefined;
    }
    const next = now + seconds * 1000;
    this.#blocks.delete(key);
    this.#blocks.set(key, next);
    this.#cap(this.#blocks);
    return {
      kind: 'block',
      vm,
      remote,
      ...(global ? { global } : {}),
      until: next,
      seconds,
      sid: f.sid,
      reason: `alert ${f.gid}:${f.sid} "${f.signature}" (severity ${f.severity}) from VM ${vm}`,
      reassert: active,
    };
  }

  #countTowardsQuarantine(
    vm: string,
    sid: number,
    count: number,
    windowMs: number,
    maxSeverity: number,
    now: number,
  ): QuarantineDecision | undefined {
    if (this.#quarantined.has(vm)) return undefined;
    let w = this.#windows.get(vm);
    if (w === undefined || w.windowMs !== windowMs) {
      w = { windowMs, hits: [] };
      this.#windows.set(vm, w);
      this.#cap(this.#windows);
    }
    const hits = w.hits;
    hits.push({ t: now, sid });
    while (hits.length > count) hits.shift();
    while (hits.length > 0 && (hits[0] as { t: number }).t <= now - windowMs) hits.shift();
    if (hits.length < count) return undefined;
    this.#quarantined.add(vm);
    this.#windows.delete(vm);
    const minutes = windowMs / 60_000;
    return {
      kind: 'quarantine',
      vm,
      at: now,
      sids: hits.map((h) => h.sid),
      reason: `${count} alert${count === 1 ? '' : 's'} with severity ≤ ${maxSeverity} within ${minutes} minute${minutes === 1 ? '' : 's'} (last: sid ${sid})`,
    };
  }

  /** Keep a map under the cap by dropping its oldest entries (insertion order). */
  #cap<K, V>(map: Map<K, V>): void {
    if (map.size <= this.#maxTracked) return;
    for (const key of map.keys()) {
      map.delete(key);
      if (map.size <= this.#maxTracked) break;
    }
  }
}
