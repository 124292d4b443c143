import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import { PortcullisError, isPortcullisError } from '../errors.js';
import type { EventBus } from '../events.js';
import { frozenCopy } from '../policy/fingerprint.js';
import type { Policy, Profile, Rule, Schedule, Vm } from '../policy/model.js';
import { AuditRepository } from './audit.js';
import { AuthRepository } from './auth.js';
import { MIGRATIONS, migrate, schemaVersion, type Migration } from './migrations.js';
import { PolicyTables, type PolicySettings } from './policy-tables.js';
import {
  AccessRequestRepository,
  AlertRepository,
  BundleRepository,
  type RepositoryContext,
} from './records.js';
import type { AuditInput, AuditRecord, Bundle } from './types.js';
import { systemClock, type Clock } from '../clock.js';

/** Options for `Store.open`. */
export interface StoreOptions {
  /** Database file; `:memory:` for a throw-away store (tests). Its folder must exist. */
  readonly path: string;
  /** The clock audit and record times come from; default `() => new Date()`. */
  readonly now?: Clock;
  /** How many recent alerts to keep, at least 1; default 10 000. */
  readonly maxAlerts?: number;
  /** Where `audit` events go once their transaction has committed; default: nowhere. */
  readonly events?: EventBus;
  /** The schema; default `MIGRATIONS` (tests pass their own). */
  readonly migrations?: readonly Migration[];
  /** How long to wait for a lock held by another connection, in ms; default 5000. */
  readonly busyTimeoutMs?: number;
}

/** The part of the Store the policy service needs (so tests can fake it). */
export interface PolicyStore {
  loadPolicy(): Policy;
  commitPolicy(next: Policy, audit: AuditInput): AuditRecord;
}

/**
 * The read side of the policy tables. Writes go through `Store.commitPolicy` or
 * `Store.replacePolicy`, always with an audit entry.
 */
export interface PolicyReader {
  vm(name: string): Vm | undefined;
  /** A stored (custom) profile; built-ins are not stored. */
  profile(name: string): Profile | undefined;
  schedule(name: string): Schedule | undefined;
  rules(owner: { vm: string } | { profile: string }): Rule[];
  settings(): PolicySettings;
}

/**
 * Portcullis' state in SQLite (WAL mode): the policy, the audit log, access requests,
 * recent alerts and the rule bundle history. Every change runs in one transaction
 * together with its audit log entry: both are written or neither is.
 *
 * Open with `Store.open({ path })`, which applies pending migrations; close with `close()`.
 */
export class Store implements PolicyStore {
  readonly #db: Database;
  readonly #now: Clock;
  readonly #events: EventBus | undefined;
  readonly #tables: PolicyTables;
  /** Audit records written by the transaction in progress, published after it commits. */
  #pending: AuditRecord[] = [];
  /** `PRAGMA data_version`: changes when another connection commits. */
  readonly #dataVersion: Statement;
  /**
   * The policy in the tables as this connection last wrote (or read) it, deep-frozen,
   * with the data_version it holds for: spares `commitPolicy` reading every VM, rule and
   * profile back to find what changed. Another connection's commit invalidates it.
   */
  #stored: { readonly policy: Policy; readonly version: number } | undefined;

  /** The audit log (read; entries are written with the changes they describe). */
  readonly audit: AuditRepository;
  /** Guests' access requests. */
  readonly accessRequests: AccessRequestRepository;
  /** Recent IPS alerts, bounded by count. */
  readonly alerts: AlertRepository;
  /** Rule bundle history. */
  readonly bundles: BundleRepository;
  /** Reads of single policy entities. */
  readonly policy: PolicyReader;
  /** Users, login sessions and API tokens. */
  readonly auth: AuthRepository;

  /** Use `Store.open`; this constructor only wires an already migrated database. */
  constructor(db: Database, options: Omit<StoreOptions, 'path' | 'migrations' | 'busyTimeoutMs'> = {}) {
    this.#db = db;
    this.#now = options.now ?? systemClock;
    this.#events = options.events;
    this.#tables = new PolicyTables(db);
    this.#dataVersion = db.prepare('PRAGMA data_version').pluck();
    this.audit = new AuditRepository(db);
    const ctx: RepositoryContext = { db, now: this.#now, audited: (fn) => this.#audited(fn) };
    this.accessRequests = new AccessRequestRepository(ctx);
    this.alerts = new AlertRepository(db, options.maxAlerts ?? 10_000);
    this.bundles = new BundleRepository(ctx);
    this.auth = new AuthRepository(ctx);
    const t = this.#tables;
    this.policy = {
      vm: (name) => t.readVm(name),
      profile: (name) => t.readProfile(name),
      schedule: (name) => t.readSchedule(name),
      rules: (owner) => t.readRules(owner),
      settings: () => t.readSettings(),
    };
  }

  /**
   * Open (or create) the database at `options.path`, switch it to WAL mode with foreign
   * keys on, and apply pending migrations.
   * @throws STORE_FAILED if the file cannot be opened or a migration fails.
   */
  static open(options: StoreOptions): Store {
    let db: Database | undefined;
    try {
      db = new BetterSqlite3(options.path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      migrate(db, options.migrations ?? MIGRATIONS);
      return new Store(db, options);
    } catch (err) {
      db?.close();
      if (isPortcullisError(err)) throw err;
      throw new PortcullisError(
        'STORE_FAILED',
        `cannot open the store at ${options.path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** The schema version (highest applied migration). */
  schemaVersion(): number {
    return schemaVersion(this.#db);
  }

  /** SQLite's journal mode: `wal` for a file database, `memory` for `:memory:`. */
  journalMode(): string {
    return String(this.#db.pragma('journal_mode', { simple: true }));
  }

  /** Whether the database answers; for health checks. */
  ping(): boolean {
    try {
      this.#db.prepare('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  /** The whole policy as stored; the empty policy for a new database. */
  loadPolicy(): Policy {
    return this.#tables.readPolicy();
  }

  /**
   * Store `next` as the whole policy, writing only what differs from the stored one,
   * in one transaction with `audit`. The caller validates; the tables' own checks
   * (CHECK constraints) only catch what validation cannot have let through.
   * A VM's empty rule list is stored as none and reads back absent.
   * @throws STORE_FAILED if the write fails; nothing is then stored, not even the audit entry.
   */
  commitPolicy(next: Policy, audit: AuditInput): AuditRecord {
    return this.#writePolicy(next, () => audit);
  }

  /**
   * Replace the whole policy, audited as `policy.replace` with the whole policy
   * before and after.
   * @throws STORE_FAILED if the write fails; nothing is then stored.
   */
  replacePolicy(policy: Policy, actor: string, reason?: string): AuditRecord {
    return this.#writePolicy(
      policy,
      (before) => ({ actor, action: 'policy.replace', target: 'policy', reason, before, after: policy }),
      {
        fresh: true,
      },
    );
  }

  /**
   * Write the differences between the stored policy and `next`, with the audit entry
   * `audit(before)` makes, in one transaction. The stored policy comes from the cache
   * (unless `fresh`) while no other connection has committed since it was taken; the
   * cache is renewed once the (outermost) transaction has committed, and dropped on any
   * failure.
   */
  #writePolicy(
    next: Policy,
    audit: (before: Policy) => AuditInput,
    options: { fresh?: boolean } = {},
  ): AuditRecord {
    const outermost = !this.#db.inTransaction;
    let written: { policy: Policy; version: number } | undefined;
    try {
      const record = this.#audited(() => {
        const version = this.#dataVersion.get() as number;
        const cached = !options.fresh && this.#stored?.version === version;
        const before = cached ? this.#stored!.policy : this.#tables.readPolicy();
        this.#tables.writeDiff(before, next);
        written = { policy: frozenCopy(next), version };
        return { result: undefined, audit: audit(before) };
      }, true);
      // nested in another transaction: that one may still roll back
      this.#stored = outermost ? written : undefined;
      return record;
    } catch (err) {
      this.#stored = undefined;
      throw err;
    }
  }

  /**
   * Record an event that changed nothing in the store (a drift repair, a login) in
   * the audit log.
   */
  record(entry: AuditInput): AuditRecord {
    return this.#audited(() => ({ result: undefined, audit: entry }), true);
  }

  /** Close the database. The Store is unusable afterwards. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /**
   * Run `fn` and write its audit entry in one transaction. Nested calls join the outer
   * transaction (a savepoint); entries are published once the outermost one commits.
   */
  #audited<T>(fn: () => { readonly result: T; readonly audit: AuditInput }, returnRecord: true): AuditRecord;
  #audited<T>(fn: () => { readonly result: T; readonly audit: AuditInput }): T;
  #audited<T>(
    fn: () => { readonly result: T; readonly audit: AuditInput },
    returnRecord = false,
  ): T | AuditRecord {
    const outermost = !this.#db.inTransaction;
    let out: { result: T; record: AuditRecord };
    try {
      out = this.#db.transaction(() => {
        const { result, audit } = fn();
        const record = this.audit.insert(audit, new Date(this.#now()));
        this.#pending.push(record);
        return { result, record };
      })();
    } catch (err) {
      if (outermost) this.#pending = [];
      if (isPortcullisError(err)) throw err;
      throw new PortcullisError(
        'STORE_FAILED',
        `the store could not write the change: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (outermost) {
      const published = this.#pending;
      this.#pending = [];
      for (const rec of published) {
        this.#events?.emit('audit', rec);
        // a bundle change is published as the bundle too: what the bundle is now
        if (rec.target.startsWith('bundle/') && rec.after !== undefined)
          this.#events?.emit('bundle.status', rec.after as Bundle);
      }
    }
    return returnRecord ? out.record : out.result;
  }
}
