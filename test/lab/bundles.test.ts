import { execFileSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, MetadataKind } from '@tufjs/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labVendorKeys, labVendorPaths } from '../../appliance/lab/vendor.js';
import { ns } from '../../appliance/lab/topology.js';
import type { BuiltBundle } from '../../rules/src/build.js';
import {
  newSigner,
  resignMetadata,
  buildChanged,
  hostileArchive,
  uncheckedArchive,
} from '../../gateway/src/bundles/test-fixtures.js';
import { metadataBytes, VendorRepository } from '../../rules/src/repository.js';
import type { Signer } from '../../rules/src/keys.js';
import { benchRules } from '../bench/bundle-material.js';
import { cpuCgroupOf, IDLE_CGROUP, openIdleCpu, parseMountinfo } from '../../gateway/src/process/idle-cpu.js';
import {
  api,
  curl,
  dig,
  down,
  download,
  inNs,
  internetRequests,
  mgmtCurlArgs,
  sleep,
  state,
  STATE_DIR,
  topology,
  up,
} from './harness.js';

/**
 * Vendor rule updates end to end: the lab's vendor serves its TUF repository over HTTPS on a
 * TEST-NET address in the internet namespace (a certificate of the lab's CA); the appliance
 * fetches through its WAN, verifies, stages with the real Suricata, switches live and checks
 * its health. A good update changes enforcement at once (a new drop rule drops, a new list
 * entry blocks in DNS and in the kernel) without breaking a download running through the
 * switch; every bad kind is refused with its code, counted and audited while the running
 * version keeps enforcing: its drop rule drops before, during and after.
 */

const web = topology.internet.web;
const other = 'other.test';
const spare = topology.internet.hosts['spare.test']!;
/** An address the good bundle lists as a VPN provider's endpoint (lists/bypass/vpn-endpoints.txt). */
const vpnProvider = topology.internet.hosts['other.test']!;
const SID = 3900001;
const DROP = `drop http any any -> any any (msg:"lab bundle drop"; content:"BUNDLEDROP"; http_uri; sid:${SID}; rev:1;)`;
const tmp = mkdtempSync(join(tmpdir(), 'up-lab-'));

type Result = { result: string; version?: number; active?: number; code?: string; message?: string };
type ErrorBody = { code: string; message: string };

let keys: Awaited<ReturnType<typeof labVendorKeys>>;
let repo: VendorRepository;
let next = 2;
let good: BuiltBundle;

const online = (): Signer[] => [keys.targets, keys.snapshot, keys.timestamp];
/** Whether this machine has the idle CPU class, so the lab service's reloads use it (idle-cpu.ts). */
const idleCpuHere = (await openIdleCpu()) !== undefined;

function publish(version: number, archive: Buffer, anyVersion = false) {
  return repo.publish({
    bundle: archive,
    info: { name: 'portcullis-default', channel: 'stable', version, minApplianceVersion: '0.1.0' },
    signers: online(),
    unsafeAnyVersion: anyVersion,
  });
}

/** A good bundle: the default one with the lab's drop rule. */
const goodBundle = (version: number): Promise<BuiltBundle> => buildChanged(tmp, version, { rules: [DROP] });

/** Run an update and wait for its result (staging 40,000 rules takes its time). */
function update(): Promise<{ status: number; body: Result & ErrorBody }> {
  return api<Result & ErrorBody>('POST', '/api/v1/bundles/update', {}, 300);
}

const seen = (marker: string): boolean => internetRequests().some((r) => (r.path ?? '').includes(marker));

/** The drop rule of the version in force drops: the request fails and the server never sees it. */
async function drops(): Promise<boolean> {
  const marker = `BUNDLEDROP-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const r = await curl('kid', `http://${web}/${marker}`, [], 3);
  await sleep(200);
  return !r.ok && !seen(marker);
}

/** A request without the marker passes (the positive control of `drops`). */
async function passes(): Promise<boolean> {
  const marker = `clean-${Date.now()}`;
  return (await curl('kid', `http://${web}/${marker}`, [], 4)).ok && seen(marker);
}

async function metric(name: string, label: string): Promise<number> {
  const text = (await inNs('host', ['curl', '-s', ...mgmtCurlArgs(), `${state().api.mgmt}/metrics`])).stdout;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function suricataRunning(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    const r = await api<{ suricata: { status: string } }>('GET', '/api/v1/ips');
    if (r.body.suricata.status === 'running') return;
    await sleep(500);
  }
  throw new Error('Suricata did not reach running');
}

/** This lab's inline Suricata, by its pid file (a network namespace does not scope pkill). */
function suricataPid(): number {
  const pid = Number(readFileSync(join(STATE_DIR, 'secvm-data', 'suricata', 'suricata.pid'), 'utf8').trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`no Suricata pid in the lab (${pid})`);
  return pid;
}

/** Memory cgroups made by {@link memoryLimit} and not yet removed. */
const cgroups = new Set<string>();

/** How much more memory the lab's Suricata may take in the reload case: its own rules reload well within it. */
const RELOAD_LIMIT = 128 << 20;

/**
 * Put process `pid` in a memory cgroup of its own limited to `bytes` of memory charged
 * from now on (cgroup v1's memory controller, or cgroup v2 with the memory controller),
 * as a systemd unit's MemoryMax holds a process. `killed()` counts the OOM kills in it;
 * `remove()` deletes the cgroup once its process is gone.
 */
function memoryLimit(pid: number, bytes: number): { killed(): number; remove(): void } {
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const v1 = mounts.find((m) => m.fstype === 'cgroup' && m.superOptions.includes('memory'))?.mountPoint;
  const v2 = mounts
    .filter((m) => m.fstype === 'cgroup2')
    .map((m) => m.mountPoint)
    .find((m) => readFileSync(join(m, 'cgroup.subtree_control'), 'utf8').split(' ').includes('memory'));
  const root = v1 ?? v2;
  if (!root) throw new Error('no memory cgroup controller on this machine (cgroup v1 memory or v2 memory)');
  const dir = join(root, `portcullis-lab-reload-${process.pid}`);
  mkdirSync(dir);
  cgroups.add(dir);
  if (v1) writeFileSync(join(dir, 'memory.limit_in_bytes'), String(bytes));
  else {
    writeFileSync(join(dir, 'memory.max'), String(bytes));
    writeFileSync(join(dir, 'memory.swap.max'), '0');
  }
  writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  return {
    killed() {
      if (v1)
        return Number(/oom_kill (\d+)/.exec(readFileSync(join(dir, 'memory.oom_control'), 'utf8'))?.[1] ?? 0);
      return Number(/oom_kill (\d+)/.exec(readFileSync(join(dir, 'memory.events'), 'utf8'))?.[1] ?? 0);
    },
    remove() {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          cgroups.delete(dir);
          return;
        } catch {
          // its process is still exiting
          execFileSync('sleep', ['0.1']);
        }
      }
      throw new Error(`could not remove the cgroup ${dir}: a process is still in it`);
    },
  };
}

beforeAll(async () => {
  await up();
  keys = await labVendorKeys(STATE_DIR);
  repo = new VendorRepository(labVendorPaths(STATE_DIR).repo);
  await suricataRunning();
  // version 1 (the default bundle, published when the lab came up)
  const r = await update();
  expect(r.body, JSON.stringify(r.body)).toMatchObject({ result: 'installed', version: 1 });
}, 300_000);

afterAll(async () => {
  await down();
  rmSync(tmp, { recursive: true, force: true });
  // a memory cgroup a failed case left behind (its Suricata is gone with the lab)
  for (const dir of cgroups) {
    try {
      rmdirSync(dir);
    } catch {
      // still holds a process: the kernel keeps it until that process is gone
    }
  }
});

describe('a good update', () => {
  it('changes enforcement live: a new drop rule drops, a new list entry blocks in DNS and in the kernel (Tor relays, VPN endpoints); a download through the switch completes', async () => {
    // before: none of it is enforced
    expect(await passes()).toBe(true);
    expect(await drops()).toBe(false);
    expect((await dig('kid', other)).answers.some((a) => a.data === topology.internet.hosts[other])).toBe(
      true,
    );
    expect((await curl('kid', `http://${spare}/before`)).ok).toBe(true);
    expect((await curl('kid', `http://${vpnProvider}/before`)).ok).toBe(true);

    good = await buildChanged(tmp, next, {
      rules: [DROP],
      append: {
        'lists/categories/adult.txt': [other],
        'lists/bypass/tor-relays.txt': [spare],
        'lists/bypass/vpn-endpoints.txt': [vpnProvider],
      },
    });
    await publish(next, good.archive);
    // a download that runs through the whole update
    const size = 300_000_000;
    const transfer = download('kid', web, size, { rate: '25M', timeoutMs: 120_000 }).then((x) => ({
      ...x,
      at: Date.now(),
    }));
    await sleep(1000);
    // where Suricata's main thread runs while the update is under way (the idle CPU class)
    const main = suricataPid();
    const classes = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        classes.add(cpuCgroupOf(readFileSync(`/proc/${main}/task/${main}/cgroup`, 'utf8')) ?? '');
        await sleep(20);
      }
    })();
    const r = await update();
    watching = false;
    await watch;
    const updated = Date.now();
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ result: 'installed', version: next, active: next });
    // the reload built the new engine in the idle CPU class, and the thread is back after it
    if (idleCpuHere) expect([...classes]).toContain(`/${IDLE_CGROUP}`);
    expect(cpuCgroupOf(readFileSync(`/proc/${main}/task/${main}/cgroup`, 'utf8'))).not.toBe(
      `/${IDLE_CGROUP}`,
    );
    const dl = await transfer;
    expect(dl.code, dl.stderr).toBe(0);
    expect(Number(dl.stdout)).toBe(size);
    // the download was still running when the update ended: it ran through the switch
    expect(dl.at).toBeGreaterThan(updated);

    expect(await drops()).toBe(true);
    expect(await passes()).toBe(true);
    const blocked = await dig('kid', other);
    expect(blocked.answers.some((a) => a.data === topology.internet.hosts[other])).toBe(false);
    // the VM with no category filter (work) still gets the real answer
    expect((await dig('work', other)).answers.some((a) => a.data === topology.internet.hosts[other])).toBe(
      true,
    );
    expect((await curl('kid', `http://${spare}/after`, [], 3)).ok).toBe(false);
    const set = execFileSync('ip', ['netns', 'exec', ns('secvm'), 'nft', 'list', 'ruleset'], {
      encoding: 'utf8',
    });
    expect(set).toContain(spare);
    // a VPN provider's endpoint: dropped on any port for kid (closes bypasses), not for work
    expect((await curl('kid', `http://${vpnProvider}/after`, [], 3)).ok).toBe(false);
    expect((await curl('work', `http://${vpnProvider}/after`)).ok).toBe(true);
    expect(set).toMatch(new RegExp(`set vpnp4 \\{[^}]*${vpnProvider.replace(/\./g, '\\.')}`));
    // the appliance fetched over its WAN from the vendor's HTTPS server
    const vendorLog = readFileSync(join(STATE_DIR, 'vendor-requests.jsonl'), 'utf8');
    expect(vendorLog).toContain(topology.wan.secvm.split('/')[0]);
    next++;
  });
});

/** Each bad kind: how to publish it, the code, and how to undo the damage for the next case. */
interface BadCase {
  readonly name: string;
  readonly code: string;
  /** Publishes the bad kind; returns what puts things back, run once Suricata runs again. */
  prepare(version: number): Promise<(() => void) | void>;
}

const cases: BadCase[] = [
  {
    name: 'tampered target',
    code: 'BUNDLE_TAMPERED',
    async prepare(v) {
      const { storedAs } = await publish(v, (await goodBundle(v)).archive);
      const file = join(labVendorPaths(STATE_DIR).repo, storedAs);
      const bytes = readFileSync(file);
      bytes[200] = bytes[200]! ^ 0xff;
      writeFileSync(file, bytes);
    },
  },
  {
    name: 'wrong key (timestamp signed by a key the root does not name)',
    code: 'BUNDLE_SIGNATURE_INVALID',
    async prepare(v) {
      await publish(v, (await goodBundle(v)).archive);
      resignMetadata(join(repo.metadataDir, 'timestamp.json'), MetadataKind.Timestamp, newSigner());
    },
  },
  {
    name: 'expired timestamp (freeze)',
    code: 'BUNDLE_EXPIRED',
    async prepare(v) {
      const past = Date.now() - 10 * 86_400_000;
      const old = new VendorRepository(labVendorPaths(STATE_DIR).repo, () => past);
      await old.publish({
        bundle: (await goodBundle(v)).archive,
        info: { name: 'portcullis-default', channel: 'stable', version: v, minApplianceVersion: '0.1.0' },
        signers: online(),
      });
    },
  },
  {
    name: 'older version (rollback)',
    code: 'BUNDLE_ROLLBACK',
    async prepare() {
      await publish(1, (await goodBundle(1)).archive, true);
    },
  },
  {
    name: 'snapshot/targets mix-and-match',
    code: 'BUNDLE_TAMPERED',
    async prepare(v) {
      await publish(v, (await goodBundle(v)).archive);
      const meta = repo.metadataDir;
      const versions = readdirSync(meta)
        .map((f) => /^(\d+)\.targets\.json$/.exec(f)?.[1])
        .filter((x): x is string => x !== undefined)
        .map(Number)
        .sort((a, b) => b - a);
      const latest = join(meta, `${versions[0]}.targets.json`);
      const saved = readFileSync(latest);
      cpSync(join(meta, `${versions[1]}.targets.json`), latest);
      return () => writeFileSync(latest, saved);
    },
  },
  {
    name: 'root rotation done wrong (one old root key and an attacker’s)',
    code: 'BUNDLE_SIGNATURE_INVALID',
    async prepare(v) {
      await publish(v, (await goodBundle(v)).archive);
      const meta = repo.metadataDir;
      const before = new Set(readdirSync(meta));
      const evil = newSigner();
      const latest = JSON.parse(readFileSync(join(meta, 'root.json'), 'utf8')) as {
        signed: { version: number };
      };
      const n = latest.signed.version + 1;
      const doc = JSON.parse(readFileSync(join(meta, 'root.json'), 'utf8')) as {
        signed: Record<string, unknown>;
      };
      const signed = doc.signed as {
        version: number;
        keys: Record<string, unknown>;
        roles: Record<string, { keyids: string[]; threshold: number }>;
      };
      signed.version = n;
      for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
        signed.keys[evil.keyid] = evil.key.toJSON();
        signed.roles[role] = { keyids: [evil.keyid], threshold: 1 };
      }
      writeFileSync(join(meta, `${n}.root.json`), JSON.stringify(doc));
      resignMetadata(join(meta, `${n}.root.json`), MetadataKind.Root, keys['root-1']);
      // plus the attacker's signature
      const d2 = JSON.parse(readFileSync(join(meta, `${n}.root.json`), 'utf8')) as { signatures: unknown[] };
      const md = Metadata.fromJSON(MetadataKind.Root, d2 as never);
      md.sign((d) => evil.sign(d), true);
      writeFileSync(join(meta, `${n}.root.json`), metadataBytes(md));
      return () => {
        for (const f of readdirSync(meta)) if (!before.has(f)) unlinkSync(join(meta, f));
      };
    },
  },
  {
    name: 'truncated archive',
    code: 'BUNDLE_CORRUPT',
    async prepare(v) {
      const a = (await goodBundle(v)).archive;
      await publish(v, a.subarray(0, a.length >> 1));
    },
  },
  {
    name: 'path traversal',
    code: 'BUNDLE_UNSAFE_ARCHIVE',
    async prepare(v) {
      await publish(v, hostileArchive(v, [{ path: '../../escaped.txt', data: Buffer.from('x') }]));
    },
  },
  {
    name: 'symlink',
    code: 'BUNDLE_UNSAFE_ARCHIVE',
    async prepare(v) {
      await publish(v, hostileArchive(v, [{ path: 'suricata.rules', type: '2', linkname: '/etc/passwd' }]));
    },
  },
  {
    name: 'decompression bomb',
    code: 'BUNDLE_TOO_LARGE',
    async prepare(v) {
      await publish(v, hostileArchive(v, [{ path: 'suricata.rules', data: Buffer.alloc(64 * 1024 * 1024) }]));
    },
  },
  {
    name: 'rules that fail suricata -T',
    code: 'BUNDLE_RULES_INVALID',
    async prepare(v) {
      await publish(
        v,
        uncheckedArchive(tmp, v, {
          rules: [DROP, 'drop http any any -> any any (msg:"bad"; nosuchkeyword:"x"; sid:3900099; rev:1;)'],
        }),
      );
    },
  },
  {
    name: 'a list with a bad line',
    code: 'BUNDLE_LISTS_INVALID',
    async prepare(v) {
      await publish(
        v,
        uncheckedArchive(tmp, v, {
          rules: [DROP],
          append: { 'lists/categories/adult.txt': ['not a domain!'] },
        }),
      );
    },
  },
  {
    name: 'a ruleset that passes suricata -T but kills the running Suricata at the reload (rolled back)',
    code: 'BUNDLE_UNHEALTHY',
    async prepare(v) {
      // The appliance's Suricata may use RELOAD_LIMIT more memory than it holds now (a
      // small appliance's memory, or its unit's MemoryMax): a reload builds the new engine
      // beside the old one. `suricata -T` runs in a process of its own and passes; at the
      // reload the kernel's OOM killer kills the running Suricata.
      const pid = suricataPid();
      const limit = memoryLimit(pid, RELOAD_LIMIT);
      try {
        // the control: an ordinary update reloads within the same limit, Suricata lives
        good = await goodBundle(v);
        await publish(v, good.archive);
        const r = await update();
        expect(r.body, JSON.stringify(r.body)).toMatchObject({ result: 'installed', version: v });
        expect(suricataPid()).toBe(pid);
        expect(limit.killed()).toBe(0);
        // the bad one: the same rules and 40,000 more (`suricata -T` with Debian's default
        // suricata.yaml peaks at 177 MB for 20,000 of them, 53 MB for 10: their engine
        // cannot fit in the limit)
        const heavy = next++;
        const extra = benchRules(40_000);
        await publish(heavy, (await buildChanged(tmp, heavy, { rules: [DROP, ...extra] })).archive);
      } catch (err) {
        limit.remove();
        throw err;
      }
      return () => {
        // killed by the kernel for memory, not by us
        expect(limit.killed()).toBeGreaterThan(0);
        expect(suricataPid()).not.toBe(pid);
        limit.remove();
      };
    },
  },
];

describe('bad updates are refused with a precise error, counted and audited; the running version keeps enforcing', () => {
  it.each(cases.map((c) => [c.name, c] as const))(
    '%s',
    async (_name, c) => {
      expect(await drops()).toBe(true);
      const failuresBefore = await metric('portcullis_bundle_failures_total', `reason="${c.code}"`);
      const v = next++;
      const undo = await c.prepare(v);
      const running = update();
      const duringDrop = drops();
      const r = await running;
      expect(r.body.code, JSON.stringify(r.body)).toBe(c.code);
      expect(await duringDrop).toBe(true);
      await suricataRunning();
      if (undo) undo();
      // the version in force is still the good one, and it still drops
      const s = await api<{
        active: { version: number };
        last: Result;
        history: Array<{ version: string; status: string }>;
      }>('GET', '/api/v1/bundles');
      expect(s.body.active.version).toBe(good.manifest.version);
      expect(s.body.last).toMatchObject({ code: c.code });
      for (let i = 0; i < 60 && !(await drops()); i++) await sleep(1000);
      expect(await drops()).toBe(true);
      expect(await passes()).toBe(true);
      expect(await metric('portcullis_bundle_failures_total', `reason="${c.code}"`)).toBe(failuresBefore + 1);
      const audit = await api<{ items: Array<{ action: string; target: string }> }>(
        'GET',
        '/api/v1/audit?limit=5',
      );
      expect(audit.body.items.some((a) => /^bundle\.(rejected|failed|rolled-back)$/.test(a.action))).toBe(
        true,
      );
    },
    300_000,
  );

  it('root rotation done right is accepted (targets key replaced, root signed by 2 of 3)', async () => {
    const nextTargets = newSigner();
    await repo.rotateKey({
      role: 'targets',
      add: [nextTargets],
      remove: [keys.targets.keyid],
      signers: [keys['root-1'], keys['root-3'], nextTargets, keys.snapshot, keys.timestamp],
    });
    keys = { ...keys, targets: nextTargets };
    const v = next++;
    good = await goodBundle(v);
    await publish(v, good.archive);
    const r = await update();
    expect(r.body, JSON.stringify(r.body)).toMatchObject({ result: 'installed', version: v });
    expect(await drops()).toBe(true);
  });
});

describe('SID changes', () => {
  it('disable, modify and enable survive an update', async () => {
    // the case before killed Suricata once: start from a Suricata that runs
    await suricataRunning();
    const put = (sids: unknown[]) =>
      api<Result & ErrorBody>('PUT', '/api/v1/bundles/settings', { sids, sources: [] });
    expect((await put([{ action: 'disable', match: String(SID) }])).body).toMatchObject({
      result: 'reapplied',
    });
    expect(await drops()).toBe(false);
    const v = next++;
    good = await goodBundle(v);
    await publish(v, good.archive);
    expect((await update()).body).toMatchObject({ result: 'installed', version: v });
    expect(await drops()).toBe(false);
    // modify: the rule now drops another marker
    expect(
      (await put([{ action: 'modify', match: String(SID), from: 'BUNDLEDROP', to: 'OTHERDROP' }])).status,
    ).toBe(200);
    const marker = `OTHERDROP-${Date.now()}`;
    expect((await curl('kid', `http://${web}/${marker}`, [], 3)).ok).toBe(false);
    expect(await drops()).toBe(false);
    expect((await put([])).status).toBe(200);
    expect(await drops()).toBe(true);
  });
});
