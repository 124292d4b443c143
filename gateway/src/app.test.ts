import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { buildApp, type App, type AppDeps } from './app.js';
import type { Config } from './config.js';
import { EventBus } from './events.js';
import { silentLogger } from './log.js';
import type { NftBackend } from './nft/backend.js';
import type { NftCommand } from './nft/types.js';
import { Store } from './store/store.js';
import { makePolicy } from './store/test-fixtures.js';

const TOKEN = 'a-token-of-sixteen-chars';

/** A service config for loopback: DNS on a free port, no DHCP, no block page, no drift timer. */
function makeConfig(dataDir: string, overrides: Partial<Config> = {}): Config {
  return {
    network: {
      lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
      wan: { iface: 'wan0' },
      mgmt: { iface: 'mgmt0', ports: [8080] },
      blockPagePort: 0,
    },
    api: { listen: '127.0.0.1', port: 8080, token: TOKEN },
    dns: { listen: ['127.0.0.1'], port: 0, upstream: ['127.0.0.1'] },
    dhcp: { enabled: false, leaseTime: '12h', unassignedRange: '10.20.0.200-10.20.0.249' },
    dataDir,
    nft: { backend: 'nft-cli', driftInterval: 0 },
    ...overrides,
  };
}

/** nftables that records what it is asked and answers like an empty kernel. */
class RecordingNft implements NftBackend {
  readonly kind = 'nft-cli' as const;
  readonly batches: NftCommand[][] = [];
  readonly texts: string[] = [];
  async run(commands: readonly NftCommand[]): Promise<string> {
    this.batches.push([...commands]);
    return '';
  }
  async runText(text: string): Promise<string> {
    this.texts.push(text);
    return '{"nftables":[]}';
  }
  close(): void {}
  get calls(): number {
    return this.batches.length + this.texts.length;
  }
}

/** Passing requests and the test runner's own timers: not what a part of the service holds. */
const TRANSIENT = new Set(['Timeout', 'Immediate', 'CloseReq', 'FSReqCallback', 'FSReqPromise']);

/** The process's open handles by kind (UDP and TCP sockets, servers, child processes …), counted. */
function openHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo())
    if (!TRANSIENT.has(r)) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** The open handles once closing ones are gone (a closed socket leaves within a few event loop turns). */
async function settledHandles(expected: Map<string, number>): Promise<Map<string, number>> {
  const until = Date.now() + 2_000;
  let now = openHandles();
  while (Date.now() < until && JSON.stringify([...now]) !== JSON.stringify([...expected])) {
    await new Promise((r) => setTimeout(r, 20));
    now = openHandles();
  }
  return now;
}

describe('buildApp', () => {
  let dir: string;
  let dataDir: string;
  let nft: RecordingNft;
  let store: Store;
  let deps: AppDeps;
  let app: App | undefined;
  /** The handles before each test: every test ends with them, its app stopped. */
  let baseline: Map<string, number>;

  beforeEach(() => {
    baseline = openHandles();
    dir = mkdtempSync(join(tmpdir(), 'portcullis-app-'));
    // the data folder does not exist: whatever creates anything in it shows
    dataDir = join(dir, 'data');
    nft = new RecordingNft();
    const events = new EventBus();
    store = Store.open({ path: ':memory:', events });
    deps = { log: silentLogger, nft, store, events, dhcp: false };
  });

  afterEach(async () => {
    await app?.stop();
    app = undefined;
    expect(await settledHandles(baseline)).toEqual(baseline);
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('touches no file, socket or kernel before start()', async () => {
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, toYaml(makePolicy()));
    const before = openHandles();
    // the IPS too: Suricata's folder and queue are set up by start()
    const suricata = {
      enabled: true,
      queue: 0,
      ruleFiles: ['local.rules'],
      bypass: true,
      queueKind: 'nft' as const,
      reloadIdleCpu: true,
    };
    app = await buildApp(makeConfig(dataDir, { policyFile, suricata }), deps);
    await app.http.ready();
    expect(openHandles()).toEqual(before);
    expect(nft.calls).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
    // the policy file is read by start(), not before
    expect(store.loadPolicy().vms).toEqual([]);
    expect(app.dns.status().running).toBe(false);
  });

  it('seeds the store from the policy file and applies it to the kernel in start()', async () => {
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, toYaml(makePolicy()));
    app = await buildApp(makeConfig(dataDir, { policyFile }), deps);
    await app.start();
    expect(store.loadPolicy().vms.map((v) => v.name)).toEqual(['kid', 'work']);
    expect(JSON.stringify(nft.batches[0])).toContain('"portcullis"');
    expect(JSON.stringify(nft.batches[0])).toContain('vm_kid');
    expect(app.dns.addresses()[0]).toMatchObject({ address: '127.0.0.1' });
    expect(app.dns.addresses()[0]!.port).toBeGreaterThan(0);
  });

  it('stop() closes every socket start() opened', async () => {
    store.replacePolicy(makePolicy(), 'seed');
    const before = openHandles();
    app = await buildApp(makeConfig(dataDir), deps);
    await app.start();
    // positive control: the running service holds the DNS filter's sockets
    expect(openHandles().get('UDPWrap') ?? 0).toBeGreaterThan(before.get('UDPWrap') ?? 0);
    expect(openHandles().get('TCPServerWrap') ?? 0).toBeGreaterThan(before.get('TCPServerWrap') ?? 0);
    await app.stop();
    expect(await settledHandles(before)).toEqual(before);
    expect(app.dns.status().running).toBe(false);
    app = undefined;
  });

  describe('HTTP, through inject()', () => {
    beforeEach(async () => {
      store.replacePolicy(makePolicy(), 'seed');
      app = await buildApp(makeConfig(dataDir), deps);
      await app.start();
    });

    it('answers the API, the service resources, /metrics, /openapi.json and the dashboard', async () => {
      const http = app!.http;
      const get = async (url: string) =>
        http.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } });
      expect((await get('/api/v1/health')).json()).toMatchObject({ status: 'ok', vms: 2 });
      // private data needs a session or a token: the same read without one is refused
      expect((await http.inject({ method: 'GET', url: '/api/v1/vms/kid/queries' })).statusCode).toBe(401);
      expect((await get('/api/v1/vms/kid/state')).statusCode).toBe(200);
      expect((await get('/api/v1/devices/unassigned')).json()).toEqual([]);
      expect((await get('/api/v1/vms/kid/queries')).json()).toEqual({ vm: 'kid', entries: [] });
      expect((await get('/api/v1/alerts')).json()).toEqual([]);
      // the IPS is off in this config: its routes say so
      expect((await get('/api/v1/ips')).json()).toMatchObject({ code: 'SURICATA_FAILED' });
      const metrics = await get('/metrics');
      expect(metrics.body).toContain('portcullis_nft_applies_total');
      expect((await get('/openapi.json')).headers.location).toBe('/api/v1/openapi.json');
      const paths = Object.keys((await get('/api/v1/openapi.json')).json<{ paths: object }>().paths);
      expect(paths).toEqual(
        expect.arrayContaining(['/api/v1/vms/{name}/pause', '/api/v1/vms/{name}/queries']),
      );
      const dashboard = await get('/');
      expect(dashboard.statusCode).toBe(200);
      expect(dashboard.headers['content-type']).toContain('text/html');
    });

    it("holds the service's own resources to the API token, like the policy API", async () => {
      const pause = { method: 'POST' as const, url: '/api/v1/vms/kid/pause', payload: {} };
      const refused = await app!.http.inject(pause);
      expect(refused.statusCode).toBe(401);
      expect(refused.json()).toMatchObject({ code: 'UNAUTHORIZED' });
      expect(store.loadPolicy().vms.find((v) => v.name === 'kid')!.pause).toBeUndefined();
      // positive control: the same request with the token pauses the VM
      const ok = await app!.http.inject({ ...pause, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(ok.statusCode).toBe(200);
      expect(store.loadPolicy().vms.find((v) => v.name === 'kid')!.pause).toBeDefined();
    });
  });

  it('keeps its files in the data folder once started', async () => {
    store.replacePolicy(makePolicy(), 'seed');
    app = await buildApp(makeConfig(dataDir), deps);
    await app.start();
    // the DHCP hosts file follows the policy even with dnsmasq off
    expect(readdirSync(join(dataDir, 'dhcp'))).toContain('dhcp-hosts');
  });

  it('refuses a config it cannot wire, by name', async () => {
    await expect(
      buildApp(
        makeConfig(dataDir, {
          dhcp: { enabled: false, leaseTime: '12h', unassignedRange: '10.20.0.249-10.20.0.200' },
        }),
        deps,
      ),
    ).rejects.toThrow(/lower address first/);
    const suricata = {
      enabled: true,
      queue: 0,
      ruleFiles: ['x.rules'],
      bypass: true,
      queueKind: 'auto' as const,
      reloadIdleCpu: true,
    };
    await expect(buildApp(makeConfig(dataDir, { suricata }), deps)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('deps.queueKind') as unknown,
    });
  });
});
