import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makePolicy } from '../store/test-fixtures.js';
import { Store } from '../store/store.js';
import {
  applyBackup,
  applyPendingRestore,
  createBackup,
  DB_FILE,
  pendingRestorePath,
  readBackup,
  summarize,
} from './backup.js';

/** As portcullis-setup writes it. */
const CONFIG = `network:
  lan: { iface: lan0, ipv4: 10.20.0.1, prefix: 24 }
  wan: { iface: wan0 }
  mgmt: { iface: mgmt0, ports: [8080, 22] }
api: { listen: 10.99.0.2, port: 8080, token: 'backup-test-token-0123' }
dns: { listen: [10.20.0.1], port: 53, upstream: [192.0.2.53] }
dhcp: { enabled: true, leaseTime: 12h }
dataDir: /var/lib/portcullis
nft: { backend: auto, driftInterval: 10 }
`;

let dir: string;
let data: string;
let configFile: string;

/** A store with one VM in it, written through the service's own store. */
function seedStore(vms: string[]): void {
  const store = Store.open({ path: join(data, DB_FILE) });
  const policy = makePolicy();
  const next = {
    ...policy,
    vms: policy.vms.filter((v) => vms.includes(v.name)),
  };
  store.commitPolicy(next, {
    actor: 'test',
    action: 'policy.import',
    target: 'policy',
    before: null,
    after: next,
  });
  store.close();
}

function vmNames(): string[] {
  const store = Store.open({ path: join(data, DB_FILE) });
  try {
    return store
      .loadPolicy()
      .vms.map((v) => v.name)
      .sort();
  } finally {
    store.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'backup-test-'));
  data = join(dir, 'data');
  mkdirSync(join(data, 'keys'), { recursive: true });
  configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, CONFIG);
  writeFileSync(join(data, 'keys', 'session.key'), 'secret-1');
  writeFileSync(join(data, 'budgets.json'), '{"kid":1}');
  // caches the service rebuilds: not in a backup
  mkdirSync(join(data, 'suricata'));
  writeFileSync(join(data, 'suricata', 'eve.json'), 'x');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('backup and restore', () => {
  it('round-trips the database, the config and the keys', async () => {
    const names = makePolicy().vms.map((v) => v.name);
    expect(names.length).toBeGreaterThan(1);
    seedStore(names);
    const file = await createBackup({ dataDir: data, configFile }, new Date('2026-12-03T04:00:00Z'));
    const contents = readBackup(file);
    expect(summarize(contents)).toMatchObject({
      createdAt: '2026-12-03T04:00:00.000Z',
      config: true,
      dataFiles: ['budgets.json', 'keys/session.key'],
    });

    // everything changes after the backup
    seedStore([names[0]!]);
    writeFileSync(join(data, 'keys', 'session.key'), 'secret-2');
    writeFileSync(configFile, CONFIG.replace('backup-test-token-0123', 'another-token-456789'));
    expect(vmNames()).toEqual([names[0]]);

    applyBackup(contents, { dataDir: data, configFile });
    expect(vmNames()).toEqual([...names].sort());
    expect(readFileSync(join(data, 'keys', 'session.key'), 'utf8')).toBe('secret-1');
    expect(readFileSync(configFile, 'utf8')).toBe(CONFIG);
  });

  it('backs up a database the service has open and is writing (online backup)', async () => {
    seedStore([]);
    const live = Store.open({ path: join(data, DB_FILE) });
    try {
      const p = makePolicy();
      live.commitPolicy(p, { actor: 't', action: 'policy.import', target: 'policy', before: null, after: p });
      // the change is in the WAL, not yet in the main file: the backup has it anyway
      expect(existsSync(join(data, `${DB_FILE}-wal`))).toBe(true);
      const contents = readBackup(await createBackup({ dataDir: data }));
      rmSync(join(data, DB_FILE));
      applyBackup(contents, { dataDir: data });
    } finally {
      live.close();
    }
    expect(vmNames()).toEqual(
      makePolicy()
        .vms.map((v) => v.name)
        .sort(),
    );
  });

  it('refuses a bad file with a clear error and changes nothing', async () => {
    seedStore([]);
    const good = await createBackup({ dataDir: data, configFile });
    const doc = JSON.parse(gunzipSync(good).toString()) as {
      entries: Record<string, { data: string; sha256: string; bytes: number }>;
      version: number;
    };
    const variant = (change: (d: typeof doc) => void): Buffer => {
      const copy = structuredClone(doc);
      change(copy);
      return gzipSync(JSON.stringify(copy));
    };
    const corrupt = Buffer.from(doc.entries.db!.data, 'base64');
    corrupt.fill(0x41, 100, 4000);
    const notSqlite = Buffer.from('not a database at all, just text');
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from('hello'), /not gzip-compressed JSON/],
      [gzipSync('{"format":"zip"}'), /format is not portcullis-backup/],
      [
        variant((d) => {
          d.version = 99;
        }),
        /format version 99/,
      ],
      [
        variant((d) => {
          d.entries.db!.data = Buffer.from('x').toString('base64');
        }),
        /entry db does not match its checksum/,
      ],
      [
        variant((d) => {
          d.entries['data/../../etc/passwd'] = { ...d.entries.config! };
        }),
        /entry data\/..\/..\/etc\/passwd is not a file a backup holds/,
      ],
      [
        variant((d) => {
          d.entries.db = {
            data: notSqlite.toString('base64'),
            bytes: notSqlite.length,
            sha256: sha(notSqlite),
          };
        }),
        /the database cannot be read/,
      ],
      [
        variant((d) => {
          d.entries.db = { data: corrupt.toString('base64'), bytes: corrupt.length, sha256: sha(corrupt) };
        }),
        /database/,
      ],
      [
        variant((d) => {
          const c = Buffer.from('network: 7\n');
          d.entries.config = { data: c.toString('base64'), bytes: c.length, sha256: sha(c) };
        }),
        /its configuration is invalid/,
      ],
    ];
    const before = readFileSync(join(data, DB_FILE));
    for (const [file, message] of cases) {
      expect(() => readBackup(file), String(message)).toThrow(message);
      expect(() => readBackup(file)).toThrow(/nothing was changed/);
    }
    expect(readFileSync(join(data, DB_FILE)).equals(before)).toBe(true);
    // the control: the unmodified file reads
    expect(readBackup(variant(() => undefined)).schemaVersion).toBeGreaterThan(0);
  });

  it('applies a restore staged by the API at the next start, or sets a bad one aside', async () => {
    const names = makePolicy().vms.map((v) => v.name);
    seedStore(names);
    const file = await createBackup({ dataDir: data });
    seedStore([]);
    expect(applyPendingRestore(data)).toBeUndefined();
    writeFileSync(pendingRestorePath(data), file);
    expect(applyPendingRestore(data)?.restored).toContain(join(data, DB_FILE));
    expect(existsSync(pendingRestorePath(data))).toBe(false);
    expect(vmNames()).toEqual([...names].sort());

    writeFileSync(pendingRestorePath(data), 'garbage');
    expect(applyPendingRestore(data)?.rejected).toMatch(/not gzip-compressed JSON/);
    expect(existsSync(join(data, 'restore.rejected'))).toBe(true);
    expect(vmNames()).toEqual([...names].sort());
  });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
