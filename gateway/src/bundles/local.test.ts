import { mkdirSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Config } from '../config.js';
import { silentLogger } from '../log.js';
import { Store } from '../store/store.js';
import { localBundleUpdate } from './local.js';
import type { BundleProgressEvent } from './service.js';
import { buildChanged, TestVendor, testBundlesConfig } from './test-fixtures.js';

/**
 * `portcullis bundle update --local`: the update flow in the CLI's process against a
 * stopped service's data folder and store (TUF, staging, the switch of `current`, the
 * records), refused while the service runs.
 */

vi.setConfig({ testTimeout: 30_000 });

const tmp = mkdtempSync(join(tmpdir(), 'up-local-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function setup(name: string) {
  const dir = join(tmp, name);
  const vendor = await new TestVendor(join(dir, 'repo')).init();
  // the service's data folder, as its first start leaves it
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config: Config = {
    network: {
      lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
      wan: { iface: 'wan0' },
      mgmt: { iface: 'mgmt0', ports: [8443] },
    },
    api: { listen: '127.0.0.1', port: 1 },
    dns: { listen: ['127.0.0.1'], port: 0, upstream: ['127.0.0.1'] },
    dhcp: { enabled: false, leaseTime: '12h' },
    dataDir: join(dir, 'data'),
    nft: { backend: 'nft-cli', driftInterval: 0 },
    bundles: testBundlesConfig(join(dir, 'nowhere'), vendor.rootFile),
  };
  return { dir, vendor, config };
}

describe('a local bundle update (no API, the service stopped)', () => {
  it('verifies, stages and switches `current` in the data folder, and records it in the store', async () => {
    const t = await setup('good');
    await t.vendor.publish(1, (await buildChanged(tmp, 1)).archive);
    const progress: BundleProgressEvent[] = [];
    const r = await localBundleUpdate({
      config: t.config,
      // the repository copied to a USB stick: the config's source is elsewhere
      source: t.vendor.repo.dir,
      actor: 'cli:root',
      log: silentLogger,
      onProgress: (p) => progress.push(p),
      serviceRunning: () => Promise.resolve(false),
    });
    expect(r).toMatchObject({ result: 'installed', version: 1, active: 1, actor: 'cli:root' });
    expect(readlinkSync(join(t.config.dataDir, 'bundles', 'current'))).toBe('versions/1');
    expect(progress.map((p) => p.phase)).toEqual(expect.arrayContaining(['download', 'stage', 'switch']));
    const store = Store.open({ path: join(t.config.dataDir, 'portcullis.db') });
    expect(store.bundles.get('1')).toMatchObject({ status: 'active' });
    store.close();
    // nothing newer: the same command says so
    const again = await localBundleUpdate({
      config: t.config,
      source: t.vendor.repo.dir,
      actor: 'cli:root',
      log: silentLogger,
      serviceRunning: () => Promise.resolve(false),
    });
    expect(again).toMatchObject({ result: 'current', active: 1 });
  });

  it('is refused while the service runs (it owns the lists and Suricata), and changes nothing', async () => {
    const t = await setup('running');
    await t.vendor.publish(1, (await buildChanged(tmp, 1)).archive);
    await expect(
      localBundleUpdate({
        config: t.config,
        source: t.vendor.repo.dir,
        actor: 'cli:root',
        log: silentLogger,
        serviceRunning: () => Promise.resolve(true),
      }),
    ).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('without --local') });
    expect(() => readlinkSync(join(t.config.dataDir, 'bundles', 'current'))).toThrow();
  });

  it('needs the bundles section of the config', async () => {
    const t = await setup('unconfigured');
    const { bundles: _none, ...config } = t.config;
    await expect(
      localBundleUpdate({
        config,
        actor: 'cli:root',
        log: silentLogger,
        serviceRunning: () => Promise.resolve(false),
      }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('bundles') });
  });
});
