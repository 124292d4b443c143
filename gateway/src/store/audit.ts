import type { Database, Statement } from 'better-sqlite3';
import type { AuditInput, AuditRecord, Page } from './types.js';

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  reason: string | null;
  before: string | null;
  after: string | null;
}

/** Filters and paging for `AuditRepository.list`. */
export interface AuditQuery {
  /** Page size, 1 to 500; default 50. */
  readonly limit?: number;
  /** Only entries with an id below this (the previous page's `nextBefore`). */
  readonly before?: number;
  readonly actor?: string;
  readonly action?: string;
  /** Exact target (`vm/kid`), or a prefix ending in `/` (`vm/`). */
  readonly target?: string;
}

function fromRow(r: AuditRow): AuditRecord {
  const rec: AuditRecord = { id: r.id, at: r.at, actor: r.actor, action: r.action, target: r.target };
  if (r.reason !== null) rec.reason = r.reason;
  if (r.before !== null) rec.before = JSON.parse(r.before);
  if (r.after !== null) rec.after = JSON.parse(r.after);
  return rec;
}

/**
 * The audit log: append-only. Entries are written by the Store inside the transaction
 * of the change they describe; `list` reads them newest first.
 */
export class AuditRepository {
  readonly #db: Database;
  readonly #insert: Statement;
  readonly #get: Statement;

  constructor(db: Database) {
    this.#db = db;
    this.#insert = db.prepare(
      'INSERT INTO audit_log (at, actor, action, target, reason, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#get = db.prepare('SELECT * FROM audit_log WHERE id = ?');
  }

  /** Write one entry (no transaction of its own: the caller's). */
  insert(entry: AuditInput, at: Date): AuditRecord {
    const info = this.#insert.run(
      at.toISOString(),
      entry.actor,
      entry.action,
      entry.target,
      entry.reason ?? null,
      entry.before === undefined ? null : JSON.stringify(entry.before),
      entry.after === undefined ? null : JSON.stringify(entry.after),
    );
    return this.get(Number(info.lastInsertRowid))!;
  }

  /** One entry by id. */
  get(id: number): AuditRecord | undefined {
    const row = this.#get.get(id) as AuditRow | undefined;
    return row && fromRow(row);
  }

  /** Entries newest first, filtered, one page at a time. */
  list(q: AuditQuery = {}): Page<AuditRecord> {
    const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.before !== undefined) {
      where.push('id < ?');
      args.push(q.before);
    }
    if (q.actor !== undefined) {
      where.push('actor = ?');
      args.push(q.actor);
    }
    if (q.action !== undefined) {
      where.push('action = ?');
      args.push(q.action);
    }
    if (q.target !== undefined) {
      if (q.target.endsWith('/')) {
        where.push('substr(target, 1, length(?)) = ?');
        args.push(q.target, q.target);
      } else {
        where.push('target = ?');
        args.push(q.target);
      }
    }
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = this.#db.prepare(sql).all(...args, limit + 1) as AuditRow[];
    const items = rows.slice(0, limit).map(fromRow);
    const last = items.at(-1);
    return rows.length > limit && last ? { items, nextBefore: last.id } : { items };
  }

  /**
   * Delete entries written before `before` (ISO time) and all but the newest `keep`;
   * returns how many were deleted. The retention job records the trim itself as an entry.
   */
  trim(before: string, keep: number): number {
    return this.#db.transaction(() => {
      const byAge = this.#db.prepare('DELETE FROM audit_log WHERE at < ?').run(before).changes;
      const last = this.#db.prepare('SELECT max(id) AS id FROM audit_log').get() as { id: number | null };
      const byCount =
        last.id === null
          ? 0
          : this.#db
              .prepare('DELETE FROM audit_log WHERE id <= ?')
              .run(last.id - Math.max(0, Math.trunc(keep))).changes;
      return byAge + byCount;
    })();
  }

  /** How many entries there are. */
  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n;
  }
}
