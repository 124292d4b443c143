import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALERT } from '../actions/test-fixtures.js';
import { buildApp, type App } from '../app.js';
import type { Config } from '../config.js';
import { EventBus } from '../events.js';
import { silentLogger } from '../log.js';
import type { NftBackend } from '../nft/backend.js';
import { Store } from '../store/store.js';
import { makePolicy } from '../store/test-fixtures.js';

/**
 * The service's whole /metrics page, as Prometheus scrapes it, passes `promtool
 * check metrics` (Debian's `prometheus` package, installed by appliance/provision.sh):
 * names, types, help texts, units and label syntax.
 */

/** A kernel whose table counted some traffic of kid. */
const nft: NftBackend = {
  kind: 'nft-cli',
  run: async () => '',
  runText: async () =>
    JSON.stringify({
      nftables: [
        { counter: { family: 'inet', table: 'portcullis', name: 'vm_kid', packets: 10, bytes: 1500 } },
        { counter: { family: 'inet', table: 'portcullis', name: 'vmin_kid', packets: 20, bytes: 30000 } },
        {
          counter: { family: 'inet', table: 'portcullis', name: 'vmdrop_policy_kid', packets: 2, bytes: 120 },
        },
      ],
    }),
  close: () => {},
};

function promtool(args: string[], input: string): { code: number; output: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  if (r.error)
    throw new Error(
      `promtool did not run (${r.error.message}): install Debian's prometheus package (appliance/provision.sh)`,
    );
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

describe('/metrics', () => {
  let dir: string;
  let store: Store;
  let app: App;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-scrape-'));
    const events = new EventBus();
    store = Store.open({ path: ':memory:', events });
    store.replacePolicy(makePolicy(), 'seed');
    const config: Config = {
      network: {
        lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
        wan: { iface: 'wan0' },
        mgmt: { iface: 'mgmt0', ports: [8080] },
        blockPagePort: 0,
      },
      // /metrics needs a viewer (or a configured scrape address): this one is
      api: { listen: '127.0.0.1', port: 8080, metricsScrapers: ['127.0.0.1'] },
      dns: { listen: ['127.0.0.1'], port: 0, upstream: ['127.0.0.1'] },
      dhcp: { enabled: false, leaseTime: '12h' },
      dataDir: join(dir, 'data'),
      nft: { backend: 'nft-cli', driftInterval: 0 },
    };
    app = await buildApp(config, { log: silentLogger, nft, store, events, dhcp: false });
    await app.start();
  });

  afterEach(async () => {
    await app.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is clean for promtool check metrics, with the per-VM series in it', async () => {
    app.events.emit('ips.alert', ALERT);
    const page = (await app.http.inject({ method: 'GET', url: '/metrics' })).body;
    expect(page).toContain('portcullis_vm_bytes_total{vm="kid",direction="in"} 30000');
    expect(page).toContain('portcullis_vm_drops_total{vm="kid",reason="policy"} 2');
    expect(page).toContain('portcullis_alerts_total{vm="kid",severity="2"} 1');
    const check = promtool(['check', 'metrics'], page);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
  });

  it('promtool does find problems (a positive control for the check above)', () => {
    const bad =
      '# HELP x_seconds_total t\n# TYPE x_seconds_total gauge\nx_seconds_total 1\n# TYPE y counter\ny 1\n';
    const check = promtool(['check', 'metrics'], bad);
    expect(check.code).not.toBe(0);
    expect(check.output).toMatch(/no help text|non-counter|counter metrics should have "_total" suffix/);
  });
});
