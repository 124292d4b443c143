import type { Database, Statement } from 'better-sqlite3';
import { PortcullisError } from '../errors.js';
import type {
  AccessRequest,
  AccessRequestStatus,
  Alert,
  AlertInput,
  AuditInput,
  Bundle,
  BundleStatus,
} from './types.js';
import type { Clock } from '../clock.js';

/**
 * Runs `fn` in one transaction together with the audit entry it returns, and
 * publishes the entry once the transaction has committed. Provided by the Store.
 */
export type Audited = <T>(fn: () => { readonly result: T; readonly audit: AuditInput }) => T;

/** The repositories' view of the Store. */
export interface RepositoryContext {
  readonly db: Database;
  readonly audited: Audited;
  readonly now: Clock;
}

interface AccessRequestRow {
  id: number;
  vm: string;
  domain: string;
  url: string | null;
  reason: string | null;
  status: AccessRequestStatus;
  created_at: string;
  decided_by: string | null;
  decided_at: string | null;
  until: string | null;
  rule_id: string | null;
}

function accessRequestFromRow(r: AccessRequestRow): AccessRequest {
  const out: AccessRequest = {
    id: r.id,
    vm: r.vm,
    domain: r.domain,
    status: r.status,
    createdAt: r.created_at,
  };
  if (r.url !== null) out.url = r.url;
  if (r.reason !== null) out.reason = r.reason;
  if (r.decided_by !== null) out.decidedBy = r.decided_by;
  if (r.decided_at !== null) out.decidedAt = r.decided_at;
  if (r.until !== null) out.until = r.until;
  if (r.rule_id !== null) out.ruleId = r.rule_id;
  return out;
}

/** What a guest asks for. */
export interface AccessRequestInput {
  readonly vm: string;
  readonly domain: string;
  readonly url?: string | undefined;
  readonly reason?: string | undefined;
}

/** A parent's decision on a request. */
export interface AccessDecision {
  readonly status: 'approved' | 'denied';
  readonly decidedBy: string;
  /** ISO time the approval ends; absent: no end. */
  readonly until?: string | undefined;
  /** The VM rule the approval created. */
  readonly ruleId?: string | undefined;
}

/** Guests' access requests and their decisions. Every change is audited. */
export class AccessRequestRepository {
  readonly #ctx: RepositoryContext;
  readonly #get: Statement;
  readonly #insert: Statement;
  readonly #decide: Statement;
  readonly #pendingFor: Statement;

  constructor(ctx: RepositoryContext) {
    this.#ctx = ctx;
    this.#get = ctx.db.prepare('SELECT * FROM access_requests WHERE id = ?');
    this.#insert = ctx.db.prepare(
      `INSERT INTO access_requests (vm, domain, url, reason, status, created_at) VALUES (?, ?, ?, ?, 'pending', ?)`,
    );
    this.#decide = ctx.db.prepare(
      `UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ?, until = ?, rule_id = ? WHERE id = ? AND status = 'pending'`,
    );
    this.#pendingFor = ctx.db.prepare(
      `SELECT * FROM access_requests WHERE vm = ? AND status = 'pending' ORDER BY id`,
    );
  }

  /** One request, or undefined. */
  get(id: number): AccessRequest | undefined {
    const row = this.#get.get(id) as AccessRequestRow | undefined;
    return row && accessRequestFromRow(row);
  }

  /** Requests newest first, optionally only those with `status`; at most `limit` (default 100, up to 1000). */
  list(filter: { status?: AccessRequestStatus; vm?: string; limit?: number } = {}): AccessRequest[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.status !== undefined) {
      where.push('status = ?');
      args.push(filter.status);
    }
    if (filter.vm !== undefined) {
      where.push('vm = ?');
      args.push(filter.vm);
    }
    const limit = Math.min(Math.max(Math.trunc(filter.limit ?? 100), 1), 1000);
    const sql = `SELECT * FROM access_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.#ctx.db.prepare(sql).all(...args, limit) as AccessRequestRow[]).map(accessRequestFromRow);
  }

  /** The pending requests of one VM, oldest first. */
  pendingFor(vm: string): AccessRequest[] {
    return (this.#pendingFor.all(vm) as AccessRequestRow[]).map(accessRequestFromRow);
  }

  /**
   * Delete requests created before `before` (ISO time) and all but the newest `keep`,
   * except approvals still in force (no end, or an end after `now`). Returns how many
   * were deleted. Not audited here: the caller records one entry for the whole trim.
   */
  trim(before: string, keep: number): number {
    const now = new Date(this.#ctx.now()).toISOString();
    const removable = `NOT (status = 'approved' AND (until IS NULL OR until > @now))`;
    const db = this.#ctx.db;
    return db.transaction(() => {
      const byAge = db
        .prepare(`DELETE FROM access_requests WHERE created_at < @before AND ${removable}`)
        .run({
          before,
          now,
        }).changes;
      const byCount = db
        .prepare(
          `DELETE FROM access_requests WHERE ${removable} AND id NOT IN (SELECT id FROM access_requests ORDER BY id DESC LIMIT @keep)`,
        )
        .run({ now, keep: Math.max(0, Math.trunc(keep)) }).changes;
      return byAge + byCount;
    })();
  }

  /** Record a new pending request. */
  create(input: AccessRequestInput, actor: string): AccessRequest {
    return this.#ctx.audited(() => {
      const info = this.#insert.run(
        input.vm,
        input.domain,
        input.url ?? null,
        input.reason ?? null,
        new Date(this.#ctx.now()).toISOString(),
      );
      const created = this.get(Number(info.lastInsertRowid))!;
      return {
        result: created,
        audit: {
          actor,
          action: 'access-request.create',
          target: `access-request/${created.id}`,
          after: created,
        },
      };
    });
  }

  /**
   * Approve or deny a pending request.
   * @throws ACCESS_REQUEST_NOT_FOUND if there is no such request; CONFLICT if it was already decided.
   */
  decide(id: number, decision: AccessDecision, reason?: string): AccessRequest {
    return this.#ctx.audited(() => {
      const before = this.get(id);
      if (!before)
        throw new PortcullisError('ACCESS_REQUEST_NOT_FOUND', `no access request ${id}`, {
          path: '/params/id',
        });
      if (before.status !== 'pending') {
        throw new PortcullisError('CONFLICT', `access request ${id} was already ${before.status}`, {
          path: '/params/id',
        });
      }
      this.#decide.run(
        decision.status,
        decision.decidedBy,
        new Date(this.#ctx.now()).toISOString(),
        decision.until ?? null,
        decision.ruleId ?? null,
        id,
      );
      const after = this.get(id)!;
      return {
        result: after,
        audit: {
          actor: decision.decidedBy,
          action: decision.status === 'approved' ? 'access-request.approve' : 'access-request.deny',
          target: `access-request/${id}`,
          reason,
          before,
          after,
        },
      };
    });
  }
}

interface AlertRow {
  id: number;
  at: string;
  vm: string | null;
  src: string | null;
  dest: string | null;
  proto: string | null;
  signature_id: number | null;
  signature: string;
  category: string | null;
  severity: number | null;
  action: string | null;
  data: string | null;
}

function alertFromRow(r: AlertRow): Alert {
  const a: Alert = { id: r.id, at: r.at, signature: r.signature };
  if (r.vm !== null) a.vm = r.vm;
  if (r.src !== null) a.src = r.src;
  if (r.dest !== null) a.dest = r.dest;
  if (r.proto !== null) a.proto = r.proto;
  if (r.signature_id !== null) a.signatureId = r.signature_id;
  if (r.category !== null) a.category = r.category;
  if (r.severity !== null) a.severity = r.severity;
  if (r.action !== null) a.action = r.action;
  if (r.data !== null) a.data = JSON.parse(r.data);
  return a;
}

/**
 * Recent IPS alerts, at most `max` of them: adding one beyond drops the oldest.
 * Alerts are observations, not changes, so they are not audited.
 */
export class AlertRepository {
  readonly #db: Database;
  readonly #max: number;
  readonly #insert: Statement;
  readonly #trim: Statement;

  /** @param max how many alerts to keep, at least 1. */
  constructor(db: Database, max: number) {
    this.#db = db;
    this.#max = Math.max(1, Math.trunc(max));
    this.#insert = db.prepare(
      `INSERT INTO alerts (at, vm, src, dest, proto, signature_id, signature, category, severity, action, data)
       VALUES (@at, @vm, @src, @dest, @proto, @signatureId, @signature, @category, @severity, @action, @data)`,
    );
    this.#trim = db.prepare('DELETE FROM alerts WHERE id <= ?');
  }

  /** Keep one alert; returns it with its id. */
  add(alert: AlertInput): Alert {
    return this.#db.transaction(() => {
      const info = this.#insert.run({
        at: alert.at,
        vm: alert.vm ?? null,
        src: alert.src ?? null,
        dest: alert.dest ?? null,
        proto: alert.proto ?? null,
        signatureId: alert.signatureId ?? null,
        signature: alert.signature,
        category: alert.category ?? null,
        severity: alert.severity ?? null,
        action: alert.action ?? null,
        data: alert.data === undefined ? null : JSON.stringify(alert.data),
      });
      const id = Number(info.lastInsertRowid);
      if (id > this.#max) this.#trim.run(id - this.#max);
      return { ...alert, id };
    })();
  }

  /** The newest alerts first, at most `limit` (default 100), optionally of one VM. */
  recent(limit = 100, vm?: string): Alert[] {
    const n = Math.min(Math.max(Math.trunc(limit), 1), this.#max);
    const rows =
      vm === undefined
        ? this.#db.prepare('SELECT * FROM alerts ORDER BY id DESC LIMIT ?').all(n)
        : this.#db.prepare('SELECT * FROM alerts WHERE vm = ? ORDER BY id DESC LIMIT ?').all(vm, n);
    return (rows as AlertRow[]).map(alertFromRow);
  }

  /** One alert by id, while it is kept. */
  get(id: number): Alert | undefined {
    const row = this.#db.prepare('SELECT * FROM alerts WHERE id = ?').get(id) as AlertRow | undefined;
    return row && alertFromRow(row);
  }

  /** How many alerts are kept now. */
  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM alerts').get() as { n: number }).n;
  }
}

interface BundleRow {
  version: string;
  sha256: string;
  installed_at: string;
  status: BundleStatus;
  detail: string | null;
}

function bundleFromRow(r: BundleRow): Bundle {
  const b: Bundle = { version: r.version, sha256: r.sha256, installedAt: r.installed_at, status: r.status };
  if (r.detail !== null) b.detail = r.detail;
  return b;
}

/** The history of installed rule bundles. Every change is audited. */
export class BundleRepository {
  readonly #ctx: RepositoryContext;
  readonly #get: Statement;

  constructor(ctx: RepositoryContext) {
    this.#ctx = ctx;
    this.#get = ctx.db.prepare('SELECT * FROM bundles WHERE version = ?');
  }

  /** One bundle by version. */
  get(version: string): Bundle | undefined {
    const row = this.#get.get(version) as BundleRow | undefined;
    return row && bundleFromRow(row);
  }

  /** Every bundle, newest installation first. */
  list(): Bundle[] {
    return (
      this.#ctx.db
        .prepare('SELECT * FROM bundles ORDER BY installed_at DESC, rowid DESC')
        .all() as BundleRow[]
    ).map(bundleFromRow);
  }

  /** The bundle in force, if any. */
  active(): Bundle | undefined {
    const row = this.#ctx.db.prepare(`SELECT * FROM bundles WHERE status = 'active'`).get() as
      BundleRow | undefined;
    return row && bundleFromRow(row);
  }

  /**
   * Record a bundle; installing it as `active` marks the previously active one `superseded`.
   * @throws CONFLICT if that version is already recorded.
   */
  record(
    bundle: { version: string; sha256: string; status: BundleStatus; detail?: string },
    actor: string,
  ): Bundle {
    return this.#ctx.audited(() => {
      if (this.get(bundle.version)) {
        throw new PortcullisError('CONFLICT', `bundle ${bundle.version} is already recorded`, {
          path: '/version',
        });
      }
      if (bundle.status === 'active') this.#supersede();
      this.#ctx.db
        .prepare('INSERT INTO bundles (version, sha256, installed_at, status, detail) VALUES (?, ?, ?, ?, ?)')
        .run(
          bundle.version,
          bundle.sha256,
          new Date(this.#ctx.now()).toISOString(),
          bundle.status,
          bundle.detail ?? null,
        );
      const after = this.get(bundle.version)!;
      return {
        result: after,
        audit: { actor, action: 'bundle.record', target: `bundle/${bundle.version}`, after },
      };
    });
  }

  /** Change a bundle's status (activate, fail, roll back). */
  setStatus(version: string, status: BundleStatus, actor: string, detail?: string): Bundle {
    return this.#ctx.audited(() => {
      const before = this.get(version);
      if (!before) throw new PortcullisError('NOT_FOUND', `no bundle ${version}`, { path: '/version' });
      if (status === 'active') this.#supersede();
      this.#ctx.db
        .prepare('UPDATE bundles SET status = ?, detail = coalesce(?, detail) WHERE version = ?')
        .run(status, detail ?? null, version);
      const after = this.get(version)!;
      return {
        result: after,
        audit: { actor, action: `bundle.${status}`, target: `bundle/${version}`, before, after },
      };
    });
  }

  #supersede(): void {
    this.#ctx.db.prepare(`UPDATE bundles SET status = 'superseded' WHERE status = 'active'`).run();
  }
}
