import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import { isPortcullisError, PortcullisError, type ErrorCode } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Bundle } from '../store/types.js';
import { systemClock, type Clock } from '../clock.js';
import { checkHealth, type HealthProbe } from './health.js';
import { stageBundle, type RuleTester } from './stage.js';
import type { BundleSettings } from './settings.js';
import type { RuleSource, SidChange } from './sids.js';
import { BundleUpdater, type BundleProgress, type BundleUpdaterOptions } from './updater.js';
import { BundleVersions } from './versions.js';

/**
 * Vendor rule updates in the running service: poll on a schedule with jitter (or on demand
 * from the API and the CLI) → download with progress → TUF verification, unpacking and
 * anti-rollback (BundleUpdater) → staging (lists parsed, SID changes applied, `suricata
 * -T` with the running configuration) → atomic switch of `current` → rules reloaded and
 * lists swapped (the runtime) → health check → on any failure after the switch, the
 * previous version back by itself. Keeps the last `keep` versions; `rollback()` by hand.
 * Every result is audited, counted in metrics and published (`bundle.progress`,
 * `bundle.result`; the store publishes `bundle.status` for the bundles table).
 */

/** Where an update is. */
export type BundlePhase =
  'idle' | 'check' | 'download' | 'unpack' | 'stage' | 'switch' | 'health' | 'rollback';

/** The progress of the update running now. */
export interface BundleProgressEvent {
  readonly phase: BundlePhase;
  /** Bytes so far (download, unpack). */
  readonly bytes?: number;
  /** Bytes expected (download). */
  readonly total?: number;
  /** The version being installed, once known. */
  readonly version?: number;
}

/** How an update or a rollback ended. */
export interface BundleResult {
  readonly at: string;
  /** `installed`: a new version in force; `current`: nothing newer; `failed`: refused, the running version stays; `rolled-back`: switched, unhealthy, the previous version is back; `manual-rollback`; `reapplied`: the version in force staged again after a change of the SID changes or extra sources. */
  readonly result: 'installed' | 'current' | 'failed' | 'rolled-back' | 'manual-rollback' | 'reapplied';
  readonly version?: number;
  /** The version in force afterwards (undefined: none). */
  readonly active: number | undefined;
  readonly code?: ErrorCode;
  readonly message?: string;
  readonly actor: string;
  /** From "update found" to "new rules and lists in force", ms (installed only). */
  readonly enforcedMs?: number;
}

declare module '../events.js' {
  interface PortcullisEvents {
    /** An update moved on (phase, bytes). */
    'bundle.progress': BundleProgressEvent;
    /** An update or rollback ended. */
    'bundle.result': BundleResult;
  }
}

/** What puts a version folder in force: Suricata's rules and the lists. */
export interface BundleRuntime {
  /** `suricata -T` with the running configuration; absent when the IPS is off. */
  readonly test?: RuleTester;
  /** Ruleset and liveness of Suricata; absent when the IPS is off. */
  readonly health?: HealthProbe;
  /**
   * Read and build what {@link activate} will put in force from a staged version folder
   * (lists parsed and indexed, Suricata's datasets written), while the version in force
   * still enforces, so that the switch itself only swaps. Optional; `activate` of a
   * folder not prepared does the whole work.
   */
  prepare?(dir: string): Promise<void>;
  /**
   * Put a folder's lists (DNS lists, nft address sets: one transaction) and rules (reload
   * through the command socket) in force. `dir` is what `current` points at.
   */
  activate(dir: string): Promise<void>;
}

/** Where the admin's SID changes and extra rule sources are kept. */
export interface BundleSettingsStore {
  read(): Promise<BundleSettings>;
  /** @throws REQUEST_INVALID for bad changes or sources. */
  write(next: BundleSettings): Promise<void>;
  sids(): Promise<readonly SidChange[]>;
  /** Extra plain rule sources, fetched and checked against their pinned sha256. */
  extraSources(): Promise<readonly RuleSource[]>;
}

/** Options of {@link BundleService}. */
export interface BundleServiceOptions {
  /** The bundle folder (versions/, current, metadata/, state.json). */
  readonly dir: string;
  /** The TUF client's settings, without its folder and progress (the service's). */
  readonly updater: Omit<BundleUpdaterOptions, 'dataDir' | 'onProgress'>;
  readonly runtime: BundleRuntime;
  readonly settings?: BundleSettingsStore;
  readonly store: Store;
  readonly events: EventBus;
  readonly registry: Registry;
  readonly log?: Logger;
  readonly now?: Clock;
  /** Seconds between polls; 0: never poll (updates only on demand). Default 21,600 (6 h). */
  readonly pollSeconds?: number;
  /** Up to this many seconds are added to each poll at random, so appliances do not all come at once. Default 1,800. */
  readonly jitterSeconds?: number;
  /** Versions kept on disk (the current one always). Default 3. */
  readonly keep?: number;
  /** How long the health check watches Suricata after a switch, ms. Default 5,000. */
  readonly healthWindowMs?: number;
  /** Randomness for the jitter, [0, 1). Default Math.random. */
  readonly random?: () => number;
}

/** What {@link BundleService.status} says. */
export interface BundleStatusView {
  readonly active: {
    readonly version: number;
    readonly created?: string;
    readonly ageSeconds?: number;
  } | null;
  /** The anti-rollback floor: the newest version verified (in force or refused at staging). */
  readonly installed: number | null;
  readonly versions: readonly number[];
  readonly progress: BundleProgressEvent;
  readonly last: BundleResult | null;
  readonly nextPoll: string | null;
  readonly source: string;
  readonly channel: string;
}

/** Runs updates and rollbacks, one at a time. */
export class BundleService {
  readonly #o: BundleServiceOptions;
  readonly #log: Logger;
  readonly #now: Clock;
  readonly versions: BundleVersions;
  readonly #updater: BundleUpdater;
  #progress: BundleProgressEvent = { phase: 'idle' };
  #last: BundleResult | undefined;
  #busy: Promise<unknown> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextPoll: number | undefined;
  #activeCreated: string | undefined;
  readonly #metrics: {
    version: Gauge;
    age: Gauge;
  };

  constructor(options: BundleServiceOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
    this.versions = new BundleVersions(options.dir);
    this.#updater = new BundleUpdater({
      ...options.updater,
      dataDir: options.dir,
      onProgress: (p) => this.#onProgress(p),
    });
    const registers = [options.registry];
    const created = (): string | undefined => this.#activeCreated;
    const now = this.#now;
    this.#metrics = {
      version: new Gauge({
        name: 'portcullis_bundle_version',
        help: 'Version of the rule bundle in force (0: none)',
        registers,
      }),
      age: new Gauge({
        name: 'portcullis_bundle_age_seconds',
        help: 'Seconds since the bundle in force was built by the vendor',
        registers,
        collect() {
          const c = created();
          if (c) this.set(Math.max(0, (now() - Date.parse(c)) / 1000));
        },
      }),
    };
  }

  /** Make the folder, put the current version in force is the caller's (at start, before Suricata). */
  async init(): Promise<void> {
    await this.versions.init();
    const v = await this.versions.current();
    await this.#setActive(typeof v === 'number' ? v : undefined);
  }

  /** The folder `current` points at (what Suricata and the lists read). */
  get currentDir(): string {
    return this.versions.currentLink;
  }

  /** Start polling (if configured). */
  start(): void {
    this.#schedule();
  }

  stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextPoll = undefined;
    return Promise.resolve(this.#busy).then(
      () => undefined,
      () => undefined,
    );
  }

  #schedule(): void {
    const poll = this.#o.pollSeconds ?? 21_600;
    if (poll <= 0) return;
    const jitter = (this.#o.random ?? Math.random)() * (this.#o.jitterSeconds ?? 1800);
    const ms = Math.round((poll + jitter) * 1000);
    this.#nextPoll = this.#now() + ms;
    this.#timer = setTimeout(() => {
      this.update('poll')
        .catch(() => undefined)
        .finally(() => this.#schedule());
    }, ms);
    this.#timer.unref();
  }

  async status(): Promise<BundleStatusView> {
    const cur = await this.versions.current();
    const active = typeof cur === 'number' ? cur : undefined;
    const created = this.#activeCreated;
    return {
      active:
        active === undefined
          ? null
          : {
              version: active,
              ...(created
                ? { created, ageSeconds: Math.max(0, Math.round((this.#now() - Date.parse(created)) / 1000)) }
                : {}),
            },
      installed: (await this.#updater.installed().catch(() => undefined))?.version ?? null,
      versions: await this.versions.list(),
      progress: this.#progress,
      last: this.#last ?? null,
      nextPoll: this.#nextPoll === undefined ? null : new Date(this.#nextPoll).toISOString(),
      source: this.#o.updater.source,
      channel: this.#o.updater.channel,
    };
  }

  /** Every bundle recorded (in force, refused, rolled back), newest first. */
  history(): Bundle[] {
    return this.#o.store.bundles.list();
  }

  #onProgress(p: BundleProgress): void {
    this.#setProgress({
      ...this.#progress,
      phase: p.phase,
      bytes: p.bytes,
      ...(p.total !== undefined ? { total: p.total } : {}),
    });
  }

  #setProgress(p: BundleProgressEvent): void {
    this.#progress = p;
    this.#o.events.emit('bundle.progress', p);
  }

  async #setActive(version: number | undefined): Promise<void> {
    this.#metrics.version.set(version ?? 0);
    this.#activeCreated = undefined;
    if (version === undefined) return;
    try {
      const m = JSON.parse(await readFile(join(this.versions.folder(version), 'manifest.json'), 'utf8')) as {
        created?: string;
      };
      this.#activeCreated = m.created;
    } catch {
      // a folder without a manifest: age unknown
    }
  }

  /** One operation at a time. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#busy) throw new PortcullisError('CONFLICT', 'a bundle update or rollback is already running');
    const p = fn();
    this.#busy = p;
    try {
      return await p;
    } finally {
      this.#busy = undefined;
      this.#setProgress({ phase: 'idle' });
    }
  }

  /**
   * Look for a new bundle and put it in force.
   * @param actor who asked (`poll`, `api:…`, `cli:…`), for the audit log.
   * @throws the PortcullisError the update failed with (after recording it); the version in
   *   force is then the one before.
   */
  update(actor: string): Promise<BundleResult> {
    return this.#exclusive(() => this.#update(actor));
  }

  async #update(actor: string): Promise<BundleResult> {
    const found = performance.now();
    const before = await this.versions.current();
    const previous = typeof before === 'number' ? before : undefined;
    this.#setProgress({ phase: 'check' });
    let installed;
    try {
      installed = await this.#updater.update();
    } catch (err) {
      throw this.#fail(actor, err, undefined, previous);
    }
    if (installed.status === 'current') {
      return this.#finish({ result: 'current', version: installed.bundle.version, active: previous, actor });
    }
    const { version, sha256, dir } = installed.bundle;
    this.#setProgress({ phase: 'stage', version });
    let expectedRules: number;
    try {
      expectedRules = await this.#stage(dir);
    } catch (err) {
      await this.versions.remove(version);
      throw this.#fail(actor, err, { version, sha256 }, previous);
    }
    this.#setProgress({ phase: 'switch', version });
    try {
      await this.versions.switchTo(version);
      await this.#o.runtime.activate(this.currentDir);
      const enforcedMs = performance.now() - found;
      this.#setProgress({ phase: 'health', version });
      await this.#health(expectedRules);
      this.#record({ version, sha256 }, 'active', actor);
      await this.#setActive(version);
      await this.versions.prune(this.#o.keep ?? 3);
      this.#log.info({ version, previous, ms: Math.round(enforcedMs) }, 'rule bundle in force');
      return this.#finish({ result: 'installed', version, active: version, actor, enforcedMs });
    } catch (err) {
      this.#setProgress({ phase: 'rollback', version });
      await this.#restore(previous);
      throw this.#fail(actor, err, { version, sha256 }, previous, true);
    }
  }

  async #health(expectedRules: number): Promise<void> {
    const probe = this.#o.runtime.health;
    if (!probe) return;
    await checkHealth(probe, { expectedRules }, { windowMs: this.#o.healthWindowMs ?? 5000 });
  }

  /** Put `version` back after a failed switch; a failure here is logged (the switch already failed). */
  async #restore(version: number | undefined): Promise<void> {
    try {
      await this.versions.switchTo(version);
      await this.#o.runtime.activate(this.currentDir);
      await this.#setActive(version);
    } catch (err) {
      this.#log.error({ err, version }, 'could not put the previous rule bundle back in force');
    }
  }

  /**
   * Go back to the newest kept version below the one in force (or `to`), by hand. The
   * anti-rollback floor stays: the version left is not installed again until the vendor
   * publishes a newer one.
   */
  rollback(actor: string, to?: number): Promise<BundleResult> {
    return this.#exclusive(async () => {
      const cur = await this.versions.current();
      const from = typeof cur === 'number' ? cur : undefined;
      const kept = await this.versions.list();
      const target = to ?? kept.find((v) => from === undefined || v < from);
      if (target === undefined || !kept.includes(target) || target === from) {
        throw new PortcullisError(
          'NOT_FOUND',
          to === undefined
            ? `no kept bundle version below ${from ?? 'none'} to roll back to (kept: ${kept.join(', ') || 'none'})`
            : `bundle version ${to} is not kept on this appliance (kept: ${kept.join(', ') || 'none'})`,
          { path: '/version' },
        );
      }
      this.#setProgress({ phase: 'stage', version: target });
      const dir = this.versions.folder(target);
      let expectedRules: number;
      try {
        expectedRules = await this.#stage(dir);
      } catch (err) {
        throw this.#fail(actor, err, undefined, from);
      }
      this.#setProgress({ phase: 'switch', version: target });
      try {
        await this.versions.switchTo(target);
        await this.#o.runtime.activate(this.currentDir);
        this.#setProgress({ phase: 'health', version: target });
        await this.#health(expectedRules);
      } catch (err) {
        await this.#restore(from);
        throw this.#fail(actor, err, undefined, from, true);
      }
      await this.#setActive(target);
      if (from !== undefined && this.#o.store.bundles.get(String(from)))
        this.#o.store.bundles.setStatus(String(from), 'rolled-back', actor, 'rolled back by hand');
      const sha = this.#o.store.bundles.get(String(target))?.sha256;
      if (sha) this.#o.store.bundles.setStatus(String(target), 'active', actor, 'rolled back to by hand');
      return this.#finish({ result: 'manual-rollback', version: target, active: target, actor });
    });
  }

  /**
   * Re-stage and reload the version in force (after a change of the SID changes or the
   * extra sources); rolled back to the previous rules file if it fails.
   */
  reapply(actor: string): Promise<BundleResult> {
    return this.#exclusive(() => this.#reapply(actor));
  }

  /** The SID changes and extra sources. */
  async settings(): Promise<BundleSettings> {
    return this.#o.settings ? this.#o.settings.read() : { sids: [], sources: [] };
  }

  /**
   * Replace the SID changes and extra sources and put them in force on the version in force
   * (staged, tested, reloaded, checked); if that fails the old settings stay.
   */
  changeSettings(actor: string, next: BundleSettings): Promise<BundleResult> {
    return this.#exclusive(async () => {
      const store = this.#o.settings;
      if (!store) throw new PortcullisError('CONFIG_INVALID', 'this service keeps no bundle settings');
      const before = await store.read();
      await store.write(next);
      try {
        const r = await this.#reapply(actor);
        this.#o.store.record({ actor, action: 'bundle.settings', target: 'bundles', before, after: next });
        return r;
      } catch (err) {
        await store.write(before);
        throw err;
      }
    });
  }

  async #reapply(actor: string): Promise<BundleResult> {
    {
      const cur = await this.versions.current();
      const version = typeof cur === 'number' ? cur : undefined;
      const dir = this.versions.folder(version);
      const rulesFile = join(dir, 'enforced.rules');
      const old = await readFile(rulesFile).catch(() => Buffer.alloc(0));
      try {
        this.#setProgress({ phase: 'stage', ...(version !== undefined ? { version } : {}) });
        const rules = await this.#stage(dir);
        this.#setProgress({ phase: 'switch', ...(version !== undefined ? { version } : {}) });
        await this.#o.runtime.activate(this.currentDir);
        await this.#health(rules);
      } catch (err) {
        await writeFile(rulesFile, old);
        await this.#o.runtime.activate(this.currentDir).catch(() => undefined);
        throw this.#fail(actor, err, undefined, version, false);
      }
      return this.#finish({
        result: 'reapplied',
        ...(version !== undefined ? { version } : {}),
        active: version,
        actor,
      });
    }
  }

  #record(
    b: { version: number; sha256: string },
    status: 'active' | 'failed' | 'rolled-back',
    actor: string,
    detail?: string,
  ): void {
    const repo = this.#o.store.bundles;
    const key = String(b.version);
    try {
      if (repo.get(key)) repo.setStatus(key, status, actor, detail);
      else repo.record({ version: key, sha256: b.sha256, status, ...(detail ? { detail } : {}) }, actor);
    } catch (err) {
      this.#log.error({ err, version: b.version }, 'could not record the bundle');
    }
  }

  /** Record, count and publish a failure; returns the error to throw. */
  /** Stage the bundle in `dir` with the admin's SID changes and extra sources; the rules it should load. */
  async #stage(dir: string): Promise<number> {
    const settings = this.#o.settings;
    const staged = await stageBundle({
      dir,
      sids: settings ? await settings.sids() : [],
      extraSources: settings ? await settings.extraSources() : [],
      test: this.#o.runtime.test,
    });
    await this.#o.runtime.prepare?.(dir);
    return staged.sids.rules;
  }

  #fail(
    actor: string,
    err: unknown,
    bundle: { version: number; sha256: string } | undefined,
    active: number | undefined,
    rolledBack = false,
  ): PortcullisError {
    const e = isPortcullisError(err)
      ? err
      : new PortcullisError('INTERNAL', `bundle update failed: ${(err as Error).message}`, { cause: err });
    if (bundle) this.#record(bundle, rolledBack ? 'rolled-back' : 'failed', actor, `${e.code}: ${e.message}`);
    else {
      try {
        this.#o.store.record({
          actor,
          action: 'bundle.rejected',
          target: 'bundles',
          after: { code: e.code, message: e.message, active: active ?? null },
        });
      } catch (noteErr) {
        this.#log.error({ err: noteErr }, 'could not audit the refused bundle');
      }
    }
    this.#log.warn(
      { code: e.code, err: e.message, version: bundle?.version, active },
      rolledBack ? 'rule bundle rolled back' : 'rule bundle refused',
    );
    this.#finish({
      result: rolledBack ? 'rolled-back' : 'failed',
      ...(bundle ? { version: bundle.version } : {}),
      active,
      actor,
      code: e.code,
      message: e.message,
    });
    return e;
  }

  #finish(r: Omit<BundleResult, 'at'>): BundleResult {
    const result: BundleResult = { at: new Date(this.#now()).toISOString(), ...r };
    this.#last = result;
    this.#o.events.emit('bundle.result', result);
    return result;
  }
}
