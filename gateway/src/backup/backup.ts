import { createHash } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import BetterSqlite3 from 'better-sqlite3';
import { loadConfig } from '../config.js';
import { PortcullisError } from '../errors.js';
import { MIGRATIONS, schemaVersion } from '../store/migrations.js';

/**
 * The whole configuration of a Portcullis as one file, and back: the database (the
 * policy, users, the audit log; SQLite's online backup, so the service keeps running),
 * the service configuration (the API token is in it) and the keys and state files in
 * the data folder. The file is gzip'd JSON with a SHA-256 per entry; a restore checks
 * all of it (every checksum, the database's integrity and schema, the configuration)
 * before it changes anything, and then replaces each file atomically.
 */

/** The file format's name and version (in the file: `format`, `version`). */
export const BACKUP_FORMAT = 'portcullis-backup';
export const BACKUP_VERSION = 1;
/** The database's file name in the data folder and in a backup. */
export const DB_FILE = 'portcullis.db';

/**
 * Files of the data folder that belong in a backup besides the database: keys and
 * long-lived state. Not the caches and logs (Suricata's folder, DHCP leases, bundle
 * downloads), which the service rebuilds.
 */
export const STATE_FILES: readonly string[] = ['budgets.json', 'bundles/settings.json'];
/**
 * Folders of the data folder that are kept whole: keys, and the rule updates' trusted
 * TUF metadata (the bundles themselves are downloaded again).
 */
export const STATE_DIRS: readonly string[] = ['keys', 'bundles/metadata'];

/** Where the files of one installation are. */
export interface BackupPaths {
  /** The data folder (`dataDir` of the config): the database, keys, state. */
  readonly dataDir: string;
  /** The service configuration file; absent: not in the backup / not restored. */
  readonly configFile?: string;
}

/** One entry of a backup. */
interface Entry {
  readonly sha256: string;
  readonly bytes: number;
  /** base64 */
  readonly data: string;
}

interface BackupDocument {
  readonly format: typeof BACKUP_FORMAT;
  readonly version: number;
  readonly createdAt: string;
  readonly schemaVersion: number;
  /** `db`, `config`, and `data/<path in the data folder>` */
  readonly entries: Record<string, Entry>;
}

/** What a checked backup holds. */
export interface BackupContents {
  readonly createdAt: string;
  readonly schemaVersion: number;
  readonly db: Buffer;
  readonly config?: string;
  /** Paths relative to the data folder → content. */
  readonly dataFiles: ReadonlyMap<string, Buffer>;
}

/** What a backup holds, in words, for the CLI and the API. */
export interface BackupSummary {
  readonly createdAt: string;
  readonly schemaVersion: number;
  readonly dbBytes: number;
  readonly config: boolean;
  readonly dataFiles: readonly string[];
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const entry = (b: Buffer): Entry => ({ sha256: sha256(b), bytes: b.length, data: b.toString('base64') });

/** Every file under `dir`, as paths relative to `base`. */
function filesUnder(base: string, dir: string): string[] {
  const full = join(base, dir);
  if (!existsSync(full) || !statSync(full).isDirectory()) return [];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(base, join(d.parentPath, d.name)).split(sep).join('/'));
}

/**
 * Make a backup of a running or stopped installation: the database through SQLite's
 * online backup (consistent, while the service writes), the config, the state files.
 * @throws BACKUP_FAILED when the database cannot be read.
 */
export async function createBackup(paths: BackupPaths, now: Date = new Date()): Promise<Buffer> {
  const dbPath = join(paths.dataDir, DB_FILE);
  if (!existsSync(dbPath))
    throw new PortcullisError('BACKUP_FAILED', `no database at ${dbPath}: is dataDir in the config right?`);
  const tmp = mkdtempSync(join(tmpdir(), 'portcullis-backup-'));
  try {
    const copy = join(tmp, DB_FILE);
    let version: number;
    const source = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
    try {
      await source.backup(copy);
      version = schemaVersion(source);
    } catch (cause) {
      throw new PortcullisError('BACKUP_FAILED', `cannot back up ${dbPath}: ${(cause as Error).message}`, {
        cause,
      });
    } finally {
      source.close();
    }
    const entries: Record<string, Entry> = { db: entry(readFileSync(copy)) };
    if (paths.configFile) entries.config = entry(readFileSync(paths.configFile));
    const data = [
      ...STATE_FILES.filter((f) => existsSync(join(paths.dataDir, f))),
      ...STATE_DIRS.flatMap((d) => filesUnder(paths.dataDir, d)),
    ];
    for (const f of data) entries[`data/${f}`] = entry(readFileSync(join(paths.dataDir, f)));
    const doc: BackupDocument = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      createdAt: now.toISOString(),
      schemaVersion: version,
      entries,
    };
    return gzipSync(JSON.stringify(doc));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const bad = (why: string): PortcullisError =>
  new PortcullisError('BACKUP_INVALID', `not a usable Portcullis backup: ${why}; nothing was changed`);

/**
 * Read and check a backup: the format, every checksum, the database (SQLite's
 * integrity check, a schema this version knows), the configuration (the config
 * schema), the data paths (inside the data folder). Touches nothing of the installation.
 * @throws BACKUP_INVALID naming the first problem.
 */
export function readBackup(file: Buffer): BackupContents {
  let doc: BackupDocument;
  try {
    doc = JSON.parse(gunzipSync(file).toString('utf8')) as BackupDocument;
  } catch {
    throw bad('the file is not gzip-compressed JSON (made by `portcullis backup`?)');
  }
  if (doc === null || typeof doc !== 'object' || doc.format !== BACKUP_FORMAT)
    throw bad(`format is not ${BACKUP_FORMAT}`);
  if (doc.version !== BACKUP_VERSION)
    throw bad(`format version ${String(doc.version)}; this Portcullis reads version ${BACKUP_VERSION}`);
  if (typeof doc.entries !== 'object' || doc.entries === null) throw bad('it has no entries');
  const files = new Map<string, Buffer>();
  for (const [name, e] of Object.entries(doc.entries)) {
    if (typeof e?.data !== 'string' || typeof e.sha256 !== 'string') throw bad(`entry ${name} is malformed`);
    const b = Buffer.from(e.data, 'base64');
    if (b.length !== e.bytes || sha256(b) !== e.sha256)
      throw bad(`entry ${name} does not match its checksum (the file is damaged)`);
    if (name !== 'db' && name !== 'config') {
      const rel = name.startsWith('data/') ? name.slice(5) : '';
      const allowed =
        STATE_FILES.includes(rel) || STATE_DIRS.some((d) => rel.startsWith(`${d}/`) && !rel.includes('..'));
      if (!allowed) throw bad(`entry ${name} is not a file a backup holds`);
    }
    files.set(name, b);
  }
  const db = files.get('db');
  if (!db) throw bad('it has no database');
  const version = checkDatabase(db);
  const configBuf = files.get('config');
  const config = configBuf?.toString('utf8');
  if (config !== undefined) checkConfig(config);
  const dataFiles = new Map<string, Buffer>();
  for (const [name, b] of files) if (name.startsWith('data/')) dataFiles.set(name.slice(5), b);
  return {
    createdAt: String(doc.createdAt),
    schemaVersion: version,
    db,
    ...(config !== undefined ? { config } : {}),
    dataFiles,
  };
}

/** The integrity and schema of a database image; its schema version. */
function checkDatabase(db: Buffer): number {
  const tmp = mkdtempSync(join(tmpdir(), 'portcullis-restore-'));
  try {
    const path = join(tmp, DB_FILE);
    writeFileSync(path, db);
    let conn;
    try {
      conn = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
      const result = conn.pragma('integrity_check', { simple: true });
      if (result !== 'ok') throw bad(`the database fails SQLite's integrity check (${String(result)})`);
      const version = schemaVersion(conn);
      if (version < 1) throw bad('the database has no Portcullis schema');
      const known = Math.max(...MIGRATIONS.map((m) => m.version));
      if (version > known)
        throw bad(
          `the database has schema ${version}, newer than this Portcullis (${known}): restore it with the version that made it`,
        );
      return version;
    } catch (err) {
      if (err instanceof PortcullisError) throw err;
      throw bad(`the database cannot be read (${(err as Error).message})`);
    } finally {
      conn?.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function checkConfig(text: string): void {
  const tmp = mkdtempSync(join(tmpdir(), 'portcullis-restore-'));
  try {
    const path = join(tmp, 'portcullis.yaml');
    writeFileSync(path, text);
    try {
      loadConfig(path);
    } catch (err) {
      throw bad(`its configuration is invalid (${(err as Error).message})`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** What a checked backup holds, in words. */
export function summarize(c: BackupContents): BackupSummary {
  return {
    createdAt: c.createdAt,
    schemaVersion: c.schemaVersion,
    dbBytes: c.db.length,
    config: c.config !== undefined,
    dataFiles: [...c.dataFiles.keys()].sort(),
  };
}

/**
 * Write `data` at `path` atomically (a temporary file beside it, then rename), owned
 * like the file it replaces (or its folder): a restore run as root must leave files the
 * service's own user can open.
 */
function replaceFile(path: string, data: Buffer | string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const like = statSync(existsSync(path) ? path : dirname(path));
  const tmp = `${path}.restore-${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  if (process.getuid?.() === 0) chownSync(tmp, like.uid, like.gid);
  renameSync(tmp, path);
}

/**
 * Put a checked backup in place: the database (its WAL and shared-memory files go: they
 * belong to the database replaced), the state files, and the config when
 * `paths.configFile` is set. The service must not run (the CLI's `restore`), or must be
 * about to open the database (a restore staged by the API, applied at start).
 * @returns what was restored.
 */
export function applyBackup(contents: BackupContents, paths: BackupPaths): string[] {
  const done: string[] = [];
  const dbPath = join(paths.dataDir, DB_FILE);
  rmSync(`${dbPath}-wal`, { force: true });
  rmSync(`${dbPath}-shm`, { force: true });
  replaceFile(dbPath, contents.db, 0o600);
  done.push(dbPath);
  for (const [rel, data] of contents.dataFiles) {
    const path = join(paths.dataDir, rel);
    replaceFile(path, data, 0o600);
    done.push(path);
  }
  if (paths.configFile && contents.config !== undefined) {
    replaceFile(paths.configFile, contents.config, 0o640);
    done.push(paths.configFile);
  }
  return done;
}

/** Where the API stages a restore for the next start of the service. */
export function pendingRestorePath(dataDir: string): string {
  return join(dataDir, 'restore.pending');
}

/**
 * At the start of the service, before the store opens: apply a restore the API staged,
 * then remove it. A staged file that no longer checks out is set aside
 * (`restore.rejected`) and the current data stays.
 * @returns what was restored, or undefined when nothing was staged.
 */
export function applyPendingRestore(dataDir: string): { restored?: string[]; rejected?: string } | undefined {
  const pending = pendingRestorePath(dataDir);
  if (!existsSync(pending)) return undefined;
  try {
    const contents = readBackup(readFileSync(pending));
    // the config is the installation's (/etc is read-only for the service): data only
    const restored = applyBackup(contents, { dataDir });
    rmSync(pending);
    return { restored };
  } catch (err) {
    renameSync(pending, join(dataDir, 'restore.rejected'));
    return { rejected: (err as Error).message };
  }
}
