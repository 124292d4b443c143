import type { Database } from 'better-sqlite3';
import { PortcullisError } from '../errors.js';

/** One schema change. Versions are ascending integers; a released migration never changes. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL to run, or a function for changes SQL alone cannot express. */
  readonly up: string | ((db: Database) => void);
}

/**
 * The schema, as the ordered list of migrations that builds it. Append only.
 *
 * Policy tables keep the model's fields in columns; fields without a column (added to
 * the model later, such as a profile's `dns`) are kept as JSON in `extra`, so a new
 * optional model field needs no migration.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'policy, audit, access requests, alerts, bundles',
    up: `
      CREATE TABLE vms (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        mac TEXT NOT NULL,
        ipv4 TEXT NOT NULL,
        ipv6 TEXT,
        profile TEXT NOT NULL,
        owner TEXT,
        notes TEXT,
        quarantine_reason TEXT,
        quarantine_since TEXT,
        extra TEXT,
        CHECK ((quarantine_reason IS NULL) = (quarantine_since IS NULL))
      ) STRICT;

      CREATE TABLE profiles (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        description TEXT,
        internet TEXT NOT NULL CHECK (internet IN ('open', 'deny', 'allowlist-only')),
        reach TEXT NOT NULL,
        vpn INTEGER CHECK (vpn IN (0, 1)),
        isolated INTEGER CHECK (isolated IN (0, 1)),
        ips_mode TEXT NOT NULL CHECK (ips_mode IN ('off', 'ids', 'ips')),
        ips_failure TEXT NOT NULL CHECK (ips_failure IN ('fail-open', 'fail-closed')),
        allow_domains TEXT,
        extra TEXT
      ) STRICT;

      CREATE TABLE rules (
        pk INTEGER PRIMARY KEY,
        vm TEXT REFERENCES vms (name) ON DELETE CASCADE,
        profile TEXT REFERENCES profiles (name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        id TEXT,
        action TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'drop')),
        target_kind TEXT NOT NULL CHECK (target_kind IN ('cidr', 'domain', 'vm', 'special')),
        target TEXT NOT NULL,
        proto TEXT CHECK (proto IN ('any', 'tcp', 'udp', 'icmp')),
        ports TEXT,
        icmp_type TEXT,
        expires TEXT,
        comment TEXT,
        extra TEXT,
        CHECK ((vm IS NULL) <> (profile IS NULL))
      ) STRICT;
      CREATE INDEX rules_vm ON rules (vm, position);
      CREATE INDEX rules_profile ON rules (profile, position);
      CREATE UNIQUE INDEX rules_vm_id ON rules (vm, id);
      CREATE UNIQUE INDEX rules_profile_id ON rules (profile, id);
      CREATE INDEX rules_expires ON rules (expires) WHERE expires IS NOT NULL;

      CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        vms TEXT NOT NULL,
        timezone TEXT NOT NULL,
        windows TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('deny', 'allowlist-only')),
        enabled INTEGER CHECK (enabled IN (0, 1)),
        extra TEXT
      ) STRICT;

      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT,
        before TEXT,
        after TEXT
      ) STRICT;
      CREATE INDEX audit_target ON audit_log (target, id);
      CREATE INDEX audit_actor ON audit_log (actor, id);

      CREATE TABLE access_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vm TEXT NOT NULL,
        domain TEXT NOT NULL,
        url TEXT,
        reason TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
        created_at TEXT NOT NULL,
        decided_by TEXT,
        decided_at TEXT,
        until TEXT,
        rule_id TEXT
      ) STRICT;
      CREATE INDEX access_requests_status ON access_requests (status, id);

      CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        vm TEXT,
        src TEXT,
        dest TEXT,
        proto TEXT,
        signature_id INTEGER,
        signature TEXT NOT NULL,
        category TEXT,
        severity INTEGER,
        action TEXT,
        data TEXT
      ) STRICT;

      CREATE TABLE bundles (
        version TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        installed_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('installed', 'active', 'failed', 'rolled-back', 'superseded')),
        detail TEXT
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: 'users, login sessions, API tokens',
    up: `
      CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'parent', 'viewer')),
        people TEXT NOT NULL,
        password TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX sessions_user ON sessions (user);

      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'parent', 'viewer')),
        people TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT
      ) STRICT;
      CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
    `,
  },
];

/** What `migrate` did. */
export interface MigrationResult {
  /** Versions applied by this call, ascending; empty when the schema was current. */
  readonly applied: number[];
  /** The schema version now. */
  readonly version: number;
}

/**
 * Bring the database schema up to the last of `migrations`. Each migration runs in its
 * own transaction together with its `schema_migrations` row, so a failure leaves the
 * schema at the previous version. Running it again does nothing.
 */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): MigrationResult {
  migrations.forEach((m, i) => {
    const prev = migrations[i - 1];
    if (!Number.isInteger(m.version) || m.version < 1 || (prev !== undefined && m.version <= prev.version)) {
      throw new PortcullisError(
        'STORE_FAILED',
        `migration "${m.name}": versions must be ascending integers from 1`,
      );
    }
  });
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const current = schemaVersion(db);
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new PortcullisError(
      'STORE_FAILED',
      `the database is at schema version ${current}, newer than this build knows (${latest}); run a newer portcullis or restore a backup`,
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    try {
      db.transaction(() => {
        if (typeof m.up === 'string') db.exec(m.up);
        else m.up(db);
        record.run(m.version, m.name, new Date().toISOString());
      })();
    } catch (err) {
      throw new PortcullisError(
        'STORE_FAILED',
        `migration ${m.version} "${m.name}" failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    applied.push(m.version);
  }
  return { applied, version: Math.max(current, latest) };
}

/** The highest applied migration version, 0 for a new database. */
export function schemaVersion(db: Database): number {
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}
