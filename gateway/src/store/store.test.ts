import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import { emptyPolicy, type Policy } from '../policy/model.js';
import { makePolicy } from './test-fixtures.js';
import { MIGRATIONS, migrate, schemaVersion, type Migration } from './migrations.js';
import { Store } from './store.js';
import type { AuditRecord } from './types.js';

describe('migrate', () => {
  it('builds the schema on a fresh database and records the version', () => {
    const db = new BetterSqlite3(':memory:');
    const result = migrate(db);
    expect(result.applied).toEqual(MIGRATIONS.map((m) => m.version));
    expect(schemaVersion(db)).toBe(MIGRATIONS.at(-1)!.version);
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
    ).map((t) => t.name);
    expect(tables).toEqual(
      expect.arrayContaining([
        'schema_migrations',
        'vms',
        'profiles',
        'rules',
        'schedules',
        'settings',
        'audit_log',
        'access_requests',
        'alerts',
        'bundles',
      ]),
    );
    db.close();
  });

  it('does nothing when run again', () => {
    const db = new BetterSqlite3(':memory:');
    migrate(db);
    expect(migrate(db).applied).toEqual([]);
    expect((db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(
      MIGRATIONS.length,
    );
    db.close();
  });

  it('applies only the migrations that are new', () => {
    const db = new BetterSqlite3(':memory:');
    migrate(db);
    const next: Migration = {
      version: MIGRATIONS.at(-1)!.version + 1,
      name: 'add a column',
      up: 'ALTER TABLE vms ADD COLUMN later TEXT',
    };
    expect(migrate(db, [...MIGRATIONS, next]).applied).toEqual([next.version]);
    expect(migrate(db, [...MIGRATIONS, next]).applied).toEqual([]);
    db.close();
  });

  it('rolls a failing migration back whole and keeps the previous version', () => {
    const db = new BetterSqlite3(':memory:');
    migrate(db);
    const bad: Migration = {
      version: 99,
      name: 'broken',
      up: 'CREATE TABLE t1 (x); SELECT * FROM no_such_table;',
    };
    expect(() => migrate(db, [...MIGRATIONS, bad])).toThrow(/migration 99 "broken" failed/);
    expect(schemaVersion(db)).toBe(MIGRATIONS.at(-1)!.version);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 't1'").get()).toBeUndefined();
    db.close();
  });

  it('refuses a database newer than the build', () => {
    const db = new BetterSqlite3(':memory:');
    migrate(db, [...MIGRATIONS, { version: 50, name: 'future', up: 'SELECT 1' }]);
    expect(() => migrate(db)).toThrow(/newer than this build/);
    db.close();
  });

  it('refuses migrations out of order', () => {
    const db = new BetterSqlite3(':memory:');
    expect(() =>
      migrate(db, [
        { version: 2, name: 'b', up: '' },
        { version: 1, name: 'a', up: '' },
      ]),
    ).toThrow(/ascending/);
    db.close();
  });
});

describe('Store', () => {
  let dir: string;
  let store: Store;
  let clock: Date;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-store-'));
    clock = new Date('2026-03-01T12:00:00Z');
    store = Store.open({ path: join(dir, 'state.db'), now: () => clock.getTime() });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens a file database in WAL mode, migrated', () => {
    expect(store.journalMode()).toBe('wal');
    expect(store.schemaVersion()).toBe(MIGRATIONS.at(-1)!.version);
    expect(store.ping()).toBe(true);
  });

  it('reopens an existing database without migrating again', () => {
    store.replacePolicy(makePolicy(), 'test');
    store.close();
    store = Store.open({ path: join(dir, 'state.db') });
    expect(store.loadPolicy()).toEqual(makePolicy());
  });

  it('reads a new database as the empty policy', () => {
    expect(store.loadPolicy()).toEqual(emptyPolicy());
  });

  it('reads back a policy exactly as written, every optional field included', () => {
    const policy = makePolicy();
    store.replacePolicy(policy, 'test', 'initial');
    expect(store.loadPolicy()).toEqual(policy);
    expect(store.policy.vm('kid')).toEqual(policy.vms[0]);
    expect(store.policy.profile('office')).toEqual(policy.profiles[0]);
    expect(store.policy.schedule('bedtime')).toEqual(policy.schedules[0]);
    expect(store.policy.rules({ vm: 'kid' })).toEqual(policy.vms[0]!.rules);
    expect(store.policy.settings()).toEqual({
      vpnEndpoints: ['198.51.100.7'],
      updateServers: ['192.0.2.0/24'],
      deny: ['203.0.113.66'],
      ipv6: true,
    });
  });

  it('keeps model fields that have no column of their own', () => {
    const p = makePolicy();
    const future = {
      ...p,
      vms: [
        { ...p.vms[0]!, futureField: { x: 1 }, rules: [{ ...p.vms[0]!.rules![0]!, log: true }] },
        p.vms[1]!,
      ],
      schedules: [{ ...p.schedules[0]!, colour: 'blue' }],
      futureSetting: [1, 2],
    } as unknown as Policy;
    store.replacePolicy(future, 'test');
    expect(store.loadPolicy()).toEqual(future);
    expect(store.policy.profile('office')?.dns).toEqual({
      safeSearch: true,
      categories: ['gambling'],
      blockDoh: true,
    });
  });

  it('keeps the order of VMs, profiles, schedules and rules', () => {
    store.replacePolicy(makePolicy(), 'test');
    const p = makePolicy();
    const reordered: Policy = {
      ...p,
      vms: [p.vms[1]!, { ...p.vms[0]!, rules: [...p.vms[0]!.rules!].reverse() }],
    };
    store.replacePolicy(reordered, 'test');
    expect(store.loadPolicy()).toEqual(reordered);
  });

  it('lets two VMs swap MAC and address in one change', () => {
    const p = makePolicy();
    store.replacePolicy(p, 'test');
    const [a, b] = p.vms as [Policy['vms'][0], Policy['vms'][0]];
    const swapped: Policy = {
      ...p,
      vms: [
        { ...a, mac: b.mac, ipv4: b.ipv4 },
        { ...b, mac: a.mac, ipv4: a.ipv4 },
      ],
    };
    store.replacePolicy(swapped, 'test');
    expect(store.loadPolicy()).toEqual(swapped);
  });

  it('removes what the new policy no longer has, the optional deny list too', () => {
    store.replacePolicy(makePolicy(), 'test');
    const { deny: _deny, ...rest } = makePolicy({ vms: [], profiles: [], schedules: [] });
    store.replacePolicy(rest, 'test');
    expect(store.loadPolicy()).toEqual(rest);
    expect(store.policy.rules({ vm: 'kid' })).toEqual([]);
  });

  it('commits change after change from what it last wrote, and reads again after another connection wrote', () => {
    const audit = { actor: 'test', action: 'policy.change', target: 'policy' };
    const p = makePolicy();
    store.commitPolicy(p, audit);
    const renamed: Policy = { ...p, vms: [{ ...p.vms[0]!, notes: 'first' }, p.vms[1]!] };
    store.commitPolicy(renamed, audit);
    expect(store.loadPolicy()).toEqual(renamed);
    // another connection (a second store, a CLI) changes the other VM behind this one's back
    const other = Store.open({ path: join(dir, 'state.db') });
    other.commitPolicy({ ...renamed, vms: [renamed.vms[0]!, { ...p.vms[1]!, notes: 'theirs' }] }, audit);
    other.close();
    // this store must not diff against what it wrote last: the work VM is not as it thinks
    const next: Policy = { ...renamed, vms: [{ ...p.vms[0]!, notes: 'second' }, p.vms[1]!] };
    store.commitPolicy(next, audit);
    expect(store.loadPolicy()).toEqual(next);
  });

  it('does not trust what it wrote when the write failed', () => {
    const audit = { actor: 'test', action: 'policy.change', target: 'policy' };
    const p = makePolicy();
    store.commitPolicy(p, audit);
    // two rules with one id: the tables refuse it, after the work VM's row went
    const kid = p.vms[0]!;
    const clash: Policy = {
      ...p,
      vms: [{ ...kid, rules: [kid.rules![0]!, { ...kid.rules![1]!, id: kid.rules![0]!.id }] }],
    };
    expect(() => store.commitPolicy(clash, audit)).toThrow(/could not write/);
    expect(store.loadPolicy()).toEqual(p);
    const next: Policy = { ...p, vms: [kid] };
    store.commitPolicy(next, audit);
    expect(store.loadPolicy()).toEqual(next);
  });

  it('is not changed by later changes to the policy object it was given', () => {
    const audit = { actor: 'test', action: 'policy.change', target: 'policy' };
    const p = makePolicy();
    store.commitPolicy(p, audit);
    p.vms[0]!.notes = 'changed after the commit';
    store.commitPolicy(p, audit);
    expect(store.loadPolicy().vms[0]!.notes).toBe('changed after the commit');
  });

  it('writes an audit entry with the change, actor, time and reason', () => {
    const rec = store.replacePolicy(makePolicy(), 'cli:alice', 'first import');
    expect(rec).toMatchObject({
      actor: 'cli:alice',
      action: 'policy.replace',
      target: 'policy',
      reason: 'first import',
      at: '2026-03-01T12:00:00.000Z',
    });
    expect(rec.before).toEqual(emptyPolicy());
    expect(rec.after).toEqual(makePolicy());
    expect(store.audit.list().items).toEqual([rec]);
  });

  it('writes neither the change nor its audit entry when the write fails', () => {
    store.replacePolicy(makePolicy(), 'test');
    const auditBefore = store.audit.count();
    const p = makePolicy();
    // a rule the schema would refuse: the table's CHECK constraint fails mid-transaction,
    // after the new VM row was already inserted
    const broken = {
      ...p,
      vms: [
        ...p.vms,
        {
          name: 'new',
          mac: '52:54:00:00:00:09',
          ipv4: '10.20.0.19',
          profile: 'open',
          rules: [{ action: 'explode', to: { cidr: '10.0.0.1' } }],
        },
      ],
    } as unknown as Policy;
    let err: unknown;
    try {
      store.commitPolicy(broken, { actor: 'test', action: 'vm.add', target: 'vm/new' });
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'STORE_FAILED')).toBe(true);
    expect(store.loadPolicy()).toEqual(makePolicy());
    expect(store.policy.vm('new')).toBeUndefined();
    expect(store.audit.count()).toBe(auditBefore);
  });

  it('publishes every bundle change as bundle.status, after the audit entry', () => {
    store.close();
    const events = new EventBus();
    const seen: string[] = [];
    events.on('test', 'audit', (r) => seen.push(`audit ${r.action}`));
    events.on('test', 'bundle.status', (b) => seen.push(`bundle ${b.version} ${b.status}`));
    store = Store.open({ path: join(dir, 'state.db'), events });
    const sha = 'c'.repeat(64);
    store.bundles.record({ version: '2026.1', sha256: sha, status: 'active' }, 'updater');
    store.bundles.setStatus('2026.1', 'rolled-back', 'updater', 'tests failed');
    store.commitPolicy(makePolicy(), { actor: 'test', action: 'policy.import', target: 'policy' });
    expect(seen).toEqual([
      'audit bundle.record',
      'bundle 2026.1 active',
      'audit bundle.rolled-back',
      'bundle 2026.1 rolled-back',
      'audit policy.import',
    ]);
  });

  it('publishes audit events only after the transaction committed', () => {
    store.close();
    const events = new EventBus();
    const seen: AuditRecord[] = [];
    events.on('test', 'audit', (r) => seen.push(r));
    store = Store.open({ path: join(dir, 'state.db'), events });
    const rec = store.commitPolicy(makePolicy(), {
      actor: 'test',
      action: 'policy.import',
      target: 'policy',
    });
    expect(seen).toEqual([rec]);
    expect(() =>
      store.commitPolicy(
        {
          ...makePolicy(),
          vms: [{ ...makePolicy().vms[0]!, rules: [{ action: 'x' }] }],
        } as unknown as Policy,
        {
          actor: 'test',
          action: 'vm.update',
          target: 'vm/kid',
        },
      ),
    ).toThrow();
    expect(seen).toHaveLength(1);
  });

  it('pages the audit log newest first and filters it', () => {
    for (let i = 0; i < 5; i++) store.record({ actor: i % 2 ? 'a' : 'b', action: 'x', target: `vm/v${i}` });
    const first = store.audit.list({ limit: 2 });
    expect(first.items.map((r) => r.target)).toEqual(['vm/v4', 'vm/v3']);
    const second = store.audit.list({ limit: 2, before: first.nextBefore! });
    expect(second.items.map((r) => r.target)).toEqual(['vm/v2', 'vm/v1']);
    const last = store.audit.list({ limit: 2, before: second.nextBefore! });
    expect(last.items.map((r) => r.target)).toEqual(['vm/v0']);
    expect(last.nextBefore).toBeUndefined();
    expect(store.audit.list({ actor: 'a' }).items).toHaveLength(2);
    expect(store.audit.list({ target: 'vm/' }).items).toHaveLength(5);
    expect(store.audit.list({ target: 'vm/v3' }).items).toHaveLength(1);
  });

  describe('access requests', () => {
    it('creates, lists and decides requests, each audited', () => {
      const r = store.accessRequests.create(
        { vm: 'kid', domain: 'games.example', reason: 'homework' },
        'guest:kid',
      );
      expect(r).toMatchObject({
        id: 1,
        vm: 'kid',
        domain: 'games.example',
        status: 'pending',
        createdAt: '2026-03-01T12:00:00.000Z',
      });
      expect(store.accessRequests.list({ status: 'pending' })).toEqual([r]);
      const decided = store.accessRequests.decide(r.id, {
        status: 'approved',
        decidedBy: 'alice',
        until: '2026-03-01T13:00:00.000Z',
        ruleId: 'ar-1',
      });
      expect(decided).toMatchObject({
        status: 'approved',
        decidedBy: 'alice',
        until: '2026-03-01T13:00:00.000Z',
        ruleId: 'ar-1',
      });
      expect(store.accessRequests.list({ status: 'pending' })).toEqual([]);
      expect(store.audit.list().items.map((a) => a.action)).toEqual([
        'access-request.approve',
        'access-request.create',
      ]);
    });

    it('refuses to decide a request twice or one that does not exist', () => {
      const r = store.accessRequests.create({ vm: 'kid', domain: 'games.example' }, 'guest:kid');
      store.accessRequests.decide(r.id, { status: 'denied', decidedBy: 'alice' });
      const count = store.audit.count();
      expect(() => store.accessRequests.decide(r.id, { status: 'approved', decidedBy: 'bob' })).toThrow(
        /already denied/,
      );
      expect(() => store.accessRequests.decide(42, { status: 'approved', decidedBy: 'bob' })).toThrow(
        /no access request 42/,
      );
      expect(store.audit.count()).toBe(count);
    });
  });

  describe('alerts', () => {
    it('keeps only the most recent alerts', () => {
      store.close();
      store = Store.open({ path: join(dir, 'state.db'), maxAlerts: 3 });
      for (let i = 1; i <= 5; i++)
        store.alerts.add({ at: `2026-03-01T12:00:0${i}Z`, signature: `sig ${i}`, vm: 'kid', severity: 2 });
      expect(store.alerts.count()).toBe(3);
      expect(store.alerts.recent().map((a) => a.signature)).toEqual(['sig 5', 'sig 4', 'sig 3']);
      expect(store.alerts.recent(10, 'other')).toEqual([]);
    });
  });

  describe('bundles', () => {
    const sha = 'a'.repeat(64);

    it('records installations and keeps one bundle active', () => {
      store.bundles.record({ version: '2026.1', sha256: sha, status: 'active' }, 'updater');
      clock = new Date('2026-03-02T12:00:00Z');
      store.bundles.record({ version: '2026.2', sha256: sha, status: 'active' }, 'updater');
      expect(store.bundles.active()?.version).toBe('2026.2');
      expect(store.bundles.list().map((b) => [b.version, b.status])).toEqual([
        ['2026.2', 'active'],
        ['2026.1', 'superseded'],
      ]);
      store.bundles.setStatus('2026.2', 'rolled-back', 'updater', 'tests failed');
      store.bundles.setStatus('2026.1', 'active', 'updater');
      expect(store.bundles.active()?.version).toBe('2026.1');
      expect(store.bundles.get('2026.2')).toMatchObject({ status: 'rolled-back', detail: 'tests failed' });
      expect(() =>
        store.bundles.record({ version: '2026.1', sha256: sha, status: 'installed' }, 'updater'),
      ).toThrow(/already recorded/);
    });
  });
});
