import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetadataKind } from '@tufjs/models';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BuiltBundle } from '../../../rules/src/build.js';
import { PortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import { silentLogger } from '../log.js';
import { Store } from '../store/store.js';
import { subscribeServices } from '../subscribers.js';
import type { HealthProbe } from './health.js';
import { BundleService, type BundleProgressEvent, type BundleResult, type BundleRuntime } from './service.js';
import { JsonBundleSettings } from './settings.js';
import { buildChanged, newSigner, resignMetadata, TestVendor, uncheckedArchive } from './test-fixtures.js';

/**
 * The update flow of the service over a real repository (a folder) and the real TUF
 * client, with a runtime that records what it was told to put in force instead of Suricata:
 * staging, the switch of `current`, the health check and the rollback, the records, audit
 * entries, metrics and events of every result.
 */

vi.setConfig({ testTimeout: 30_000 });

const tmp = mkdtempSync(join(tmpdir(), 'up-svc-'));
const DROP =
  'drop http any any -> any any (msg:"test drop"; content:"NEWDROP"; http_uri; sid:3900001; rev:1;)';
const ALERT =
  'alert http any any -> any any (msg:"test alert"; content:"ALERTX"; http_uri; sid:3900002; rev:1;)';
const built = new Map<number, BuiltBundle>();

beforeAll(async () => {
  built.set(1, await buildChanged(tmp, 1));
  built.set(
    2,
    await buildChanged(tmp, 2, {
      rules: [DROP, ALERT],
      append: { 'lists/categories/adult.txt': ['new-entry.test'] },
    }),
  );
  built.set(3, await buildChanged(tmp, 3, { rules: [DROP] }));
  built.set(4, await buildChanged(tmp, 4, { rules: [DROP] }));
  built.set(5, await buildChanged(tmp, 5, { rules: [DROP] }));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A runtime that records activations; its health can be made to fail. */
class FakeRuntime implements BundleRuntime {
  readonly activated: string[] = [];
  healthy = true;
  testError: PortcullisError | undefined;
  loaded = 0;

  get test() {
    return async (file: string): Promise<void> => {
      if (this.testError) throw this.testError;
      this.loaded = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /^(alert|drop)\s/.test(l)).length;
    };
  }

  get health(): HealthProbe {
    return {
      rulesetStats: async () => [{ id: 0, rules_loaded: this.loaded, rules_failed: 0 }],
      sample: async () => ({
        pid: this.healthy ? 100 : undefined,
        answers: this.healthy,
        queue: { queue: 0, portId: 1, waiting: 0, queueDropped: 0, userDropped: 0, sequence: 1 },
      }),
    };
  }

  /** Folders prepared, with what was in force then. */
  readonly prepared: { folder: string; inForce: string }[] = [];

  async prepare(dir: string): Promise<void> {
    this.prepared.push({
      folder: dir.split('/').slice(-2).join('/'),
      inForce: readlinkSync(join(dir, '..', '..', 'current')),
    });
  }

  async activate(dir: string): Promise<void> {
    this.activated.push(readlinkSync(dir));
  }
}

async function setup(keep = 3) {
  const dir = mkdtempSync(join(tmp, 'case-'));
  const vendor = await new TestVendor(join(dir, 'repo')).init();
  const events = new EventBus();
  const store = Store.open({ path: join(dir, 'db.sqlite'), events });
  const registry = new Registry();
  const off = subscribeServices(events, { store, registry, log: silentLogger });
  const runtime = new FakeRuntime();
  const settings = new JsonBundleSettings(join(dir, 'settings.json'));
  const service = new BundleService({
    dir: join(dir, 'bundles'),
    updater: {
      source: vendor.repo.dir,
      trustedRoot: vendor.rootFile,
      name: 'portcullis-default',
      channel: 'stable',
      applianceVersion: '0.1.0',
    },
    runtime,
    settings,
    store,
    events,
    registry,
    pollSeconds: 0,
    keep,
    healthWindowMs: 50,
  });
  await service.init();
  const progress: BundleProgressEvent[] = [];
  const results: BundleResult[] = [];
  events.on('test', 'bundle.progress', (p) => progress.push(p));
  events.on('test', 'bundle.result', (r) => results.push(r));
  const current = () => readlinkSync(join(dir, 'bundles', 'current'));
  const metric = async (name: string) =>
    (await registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#'));
  const close = () => {
    off();
    store.close();
  };
  return { dir, vendor, service, runtime, store, settings, progress, results, current, metric, close };
}

const refused = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e as PortcullisError,
  );

describe('a good update', () => {
  it('is downloaded with progress, staged, switched to, checked and recorded; the next poll finds nothing newer', async () => {
    const t = await setup();
    expect(t.current()).toBe('empty');
    await t.vendor.publish(1, built.get(1)!.archive);
    const r = await t.service.update('cli:test');
    expect(r).toMatchObject({ result: 'installed', version: 1, active: 1, actor: 'cli:test' });
    expect(r.enforcedMs).toBeGreaterThan(0);
    expect(t.current()).toBe('versions/1');
    expect(t.runtime.activated).toEqual(['versions/1']);
    // its lists were prepared after staging, while nothing new was in force yet
    expect(t.runtime.prepared).toEqual([{ folder: 'versions/1', inForce: 'empty' }]);
    expect(existsSync(join(t.dir, 'bundles', 'current', 'enforced.rules'))).toBe(true);
    const phases = t.progress.map((p) => p.phase);
    for (const p of ['check', 'download', 'unpack', 'stage', 'switch', 'health', 'idle'])
      expect(phases).toContain(p);
    const dl = t.progress.filter((p) => p.phase === 'download');
    expect(dl.at(-1)).toMatchObject({
      bytes: built.get(1)!.archive.length,
      total: built.get(1)!.archive.length,
    });
    expect(t.store.bundles.active()).toMatchObject({
      version: '1',
      status: 'active',
      sha256: built.get(1)!.sha256,
    });
    expect(t.store.audit.list({ limit: 10 }).items.map((a) => a.action)).toContain('bundle.record');
    expect(await t.metric('portcullis_bundle_version')).toEqual(['portcullis_bundle_version 1']);
    expect(await t.metric('portcullis_bundle_updates_total')).toContain(
      'portcullis_bundle_updates_total{result="installed"} 1',
    );
    const status = await t.service.status();
    expect(status).toMatchObject({
      active: { version: 1 },
      installed: 1,
      versions: [1],
      progress: { phase: 'idle' },
    });
    expect(status.active?.ageSeconds).toBeGreaterThanOrEqual(0);

    expect(await t.service.update('poll')).toMatchObject({ result: 'current', active: 1 });
    expect(t.runtime.activated).toHaveLength(1);
    t.close();
  });

  it('keeps the last 3 versions; a rollback by hand goes to the one before and stays there', async () => {
    const t = await setup(3);
    for (const v of [1, 2, 3, 4, 5]) {
      await t.vendor.publish(v, built.get(v)!.archive);
      expect(await t.service.update('poll')).toMatchObject({ result: 'installed', version: v });
    }
    expect((await t.service.status()).versions).toEqual([5, 4, 3]);
    expect(await t.service.rollback('api:admin')).toMatchObject({ result: 'manual-rollback', active: 4 });
    expect(t.current()).toBe('versions/4');
    expect(t.store.bundles.get('5')).toMatchObject({ status: 'rolled-back' });
    expect(t.store.bundles.get('4')).toMatchObject({ status: 'active' });
    // the floor stays at 5: the next poll does not put 5 back
    expect(await t.service.update('poll')).toMatchObject({ result: 'current', active: 4 });
    expect(t.current()).toBe('versions/4');
    expect(await refused(t.service.rollback('api:admin', 1))).toMatchObject({ code: 'NOT_FOUND' });
    t.close();
  });
});

describe('a bad update changes nothing in force, and is recorded, counted and published', () => {
  it('a list with a bad line: BUNDLE_LISTS_INVALID at staging; the version folder is removed', async () => {
    const t = await setup();
    await t.vendor.publish(1, built.get(1)!.archive);
    await t.service.update('poll');
    await t.vendor.publish(
      2,
      uncheckedArchive(tmp, 2, { append: { 'lists/categories/adult.txt': ['not a domain!'] } }),
    );
    const e = await refused(t.service.update('poll'));
    expect(e.code).toBe('BUNDLE_LISTS_INVALID');
    expect(e.message).toContain('lists/categories/adult.txt');
    expect(t.current()).toBe('versions/1');
    expect(t.runtime.activated).toEqual(['versions/1']);
    expect((await t.service.status()).versions).toEqual([1]);
    expect(t.store.bundles.get('2')).toMatchObject({ status: 'failed' });
    expect(t.results.at(-1)).toMatchObject({ result: 'failed', code: 'BUNDLE_LISTS_INVALID', active: 1 });
    expect(await t.metric('portcullis_bundle_failures_total')).toContain(
      'portcullis_bundle_failures_total{reason="BUNDLE_LISTS_INVALID"} 1',
    );
    t.close();
  });

  it('rules Suricata refuses: BUNDLE_RULES_INVALID at staging', async () => {
    const t = await setup();
    await t.vendor.publish(1, built.get(1)!.archive);
    await t.service.update('poll');
    await t.vendor.publish(2, built.get(2)!.archive);
    t.runtime.testError = new PortcullisError('BUNDLE_RULES_INVALID', 'suricata -T refused');
    expect((await refused(t.service.update('poll'))).code).toBe('BUNDLE_RULES_INVALID');
    expect(t.current()).toBe('versions/1');
    // refused at staging: its lists were never prepared
    expect(t.runtime.prepared.map((p) => p.folder)).toEqual(['versions/1']);
    t.close();
  });

  it('unhealthy after the switch: BUNDLE_UNHEALTHY, the previous version back in force by itself', async () => {
    const t = await setup();
    await t.vendor.publish(1, built.get(1)!.archive);
    await t.service.update('poll');
    await t.vendor.publish(2, built.get(2)!.archive);
    t.runtime.healthy = false;
    const e = await refused(t.service.update('poll'));
    expect(e.code).toBe('BUNDLE_UNHEALTHY');
    expect(t.current()).toBe('versions/1');
    expect(t.runtime.activated).toEqual(['versions/1', 'versions/2', 'versions/1']);
    expect(t.store.bundles.get('2')).toMatchObject({ status: 'rolled-back' });
    expect(t.results.at(-1)).toMatchObject({ result: 'rolled-back', version: 2, active: 1 });
    t.close();
  });

  it('metadata signed by the wrong key: BUNDLE_SIGNATURE_INVALID, audited though no bundle was recorded', async () => {
    const t = await setup();
    await t.vendor.publish(1, built.get(1)!.archive);
    await t.service.update('poll');
    await t.vendor.publish(2, built.get(2)!.archive);
    resignMetadata(join(t.vendor.repo.metadataDir, 'timestamp.json'), MetadataKind.Timestamp, newSigner());
    expect((await refused(t.service.update('poll'))).code).toBe('BUNDLE_SIGNATURE_INVALID');
    expect(t.current()).toBe('versions/1');
    const audit = t.store.audit.list({ limit: 5 });
    expect(audit.items.some((a) => a.action === 'bundle.rejected')).toBe(true);
    t.close();
  });
});

describe('SID changes', () => {
  it('are applied at staging and kept across updates; a bad change is refused and the old ones stay', async () => {
    const t = await setup();
    await t.vendor.publish(2, built.get(2)!.archive);
    await t.service.update('poll');
    const r = await t.service.changeSettings('api:admin', {
      sids: [
        { action: 'disable', match: '3900001' },
        { action: 'drop', match: '3900002' },
        { action: 'modify', match: '3900002', from: 'ALERTX', to: 'ALERTY' },
      ],
      sources: [],
    });
    expect(r).toMatchObject({ result: 'reapplied', active: 2 });
    const enforced = () => readFileSync(join(t.dir, 'bundles', 'current', 'enforced.rules'), 'utf8');
    expect(enforced()).toContain('# drop http any any -> any any (msg:"test drop"');
    expect(enforced()).toContain('drop http any any -> any any (msg:"test alert"; content:"ALERTY"');
    await t.vendor.publish(3, built.get(3)!.archive);
    await t.service.update('poll');
    expect(t.current()).toBe('versions/3');
    expect(enforced()).toContain('# drop http any any -> any any (msg:"test drop"');
    t.runtime.testError = new PortcullisError('BUNDLE_RULES_INVALID', 'refused');
    await refused(
      t.service.changeSettings('api:admin', { sids: [{ action: 'enable', match: '3900001' }], sources: [] }),
    );
    expect((await t.settings.read()).sids).toHaveLength(3);
    expect(enforced()).toContain('# drop http any any -> any any (msg:"test drop"');
    t.close();
  });
});
