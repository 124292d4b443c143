import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Metadata, MetadataKind } from '@tufjs/models';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildBundle, type BuiltBundle } from '../../../rules/src/build.js';
import { generateKey, signerOf, type Signer } from '../../../rules/src/keys.js';
import { expiryFrom, metadataBytes, VendorRepository } from '../../../rules/src/repository.js';
import { writeTar, type TarEntry } from '../../../rules/src/tar.js';
import type { ErrorCode } from '../errors.js';
import { BundleUpdater, type BundleProgress, type BundleUpdaterOptions } from './updater.js';
import type { Clock } from '../clock.js';

/**
 * The appliance's TUF client against real repositories the vendor code wrote, served from a
 * folder and over loopback HTTP. Every attack is refused with its own code and leaves the
 * installed bundle, its folders and the recorded state as they were.
 */

// real crypto, gzip of tens of megabytes and a loopback server: generous on a loaded machine
vi.setConfig({ testTimeout: 30_000 });

const RULES = fileURLToPath(new URL('../../../rules', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tu-upd-'));
const built = new Map<number, BuiltBundle>();
let server: Server;
/** The folder the loopback HTTP server serves. */
let served = tmp;
let httpBase = '';

beforeAll(async () => {
  for (const v of [1, 2, 3, 5]) built.set(v, await buildBundle({ src: RULES, version: v }));
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(served, path);
    if (path.includes('..') || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  httpBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => vi.useRealTimers());

const newSigner = (): Signer => signerOf(createPrivateKey(generateKey().privatePem));

/** A vendor: keys (2-of-3 root) and a repository. */
class Vendor {
  readonly root = [newSigner(), newSigner(), newSigner()];
  targets = newSigner();
  readonly snapshot = newSigner();
  readonly timestamp = newSigner();
  readonly repo: VendorRepository;

  constructor(now?: Clock) {
    this.repo = new VendorRepository(mkdtempSync(join(tmp, 'repo-')), now);
  }

  async init(): Promise<this> {
    await this.repo.init({
      roles: {
        root: { keys: this.root, threshold: 2 },
        targets: { keys: [this.targets] },
        snapshot: { keys: [this.snapshot] },
        timestamp: { keys: [this.timestamp] },
      },
      signers: [this.root[0]!, this.root[1]!, ...this.online],
    });
    return this;
  }

  get online(): Signer[] {
    return [this.targets, this.snapshot, this.timestamp];
  }

  get rootFile(): string {
    return join(this.repo.metadataDir, '1.root.json');
  }

  /** Publish a built default bundle, or other bytes under a version. */
  async publish(
    version: number,
    bytes?: Buffer,
    extra: { minApplianceVersion?: string; anyVersion?: boolean } = {},
  ) {
    return this.repo.publish({
      bundle: bytes ?? built.get(version)!.archive,
      info: {
        name: 'portcullis-default',
        channel: 'stable',
        version,
        minApplianceVersion: extra.minApplianceVersion ?? '0.1.0',
      },
      signers: this.online,
      unsafeAnyVersion: extra.anyVersion,
    });
  }
}

function appliance(vendor: Vendor, source: string, extra: Partial<BundleUpdaterOptions> = {}): BundleUpdater {
  return new BundleUpdater({
    source,
    trustedRoot: vendor.rootFile,
    dataDir: mkdtempSync(join(tmp, 'appliance-')),
    name: 'portcullis-default',
    channel: 'stable',
    applianceVersion: '0.1.0',
    ...extra,
  });
}

/** What an appliance has installed, as files: versions/ and downloads/ listings and state. */
async function snapshotOf(app: BundleUpdater) {
  const dataDir = join(app.versionsDir, '..');
  const list = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
  return {
    installed: await app.installed(),
    versions: list(app.versionsDir),
    downloads: list(join(dataDir, 'downloads')),
  };
}

/** The update fails with `code` and the appliance is exactly as before. */
async function expectRefused(app: BundleUpdater, code: ErrorCode): Promise<void> {
  const before = await snapshotOf(app);
  const err = await app.update().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toMatchObject({ code });
  expect(await snapshotOf(app)).toEqual(before);
}

/** The installed folder holds exactly the manifest's files with their hashes. */
function expectUnpacked(dir: string, b: BuiltBundle): void {
  for (const f of b.manifest.files) {
    const data = readFileSync(join(dir, f.path));
    expect(createHash('sha256').update(data).digest('hex')).toBe(f.sha256);
  }
  expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))).toEqual(b.manifest);
}

/** Replace a metadata file's signatures with a signer's (an attacker re-signing). */
function resign(
  file: string,
  kind: MetadataKind,
  by: Signer,
  mutate?: (signed: Record<string, unknown>) => void,
) {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { signed: Record<string, unknown> };
  mutate?.(doc.signed);
  const md = Metadata.fromJSON(kind as MetadataKind.Root, doc as never);
  md.signatures = {};
  md.sign((d) => by.sign(d), true);
  writeFileSync(file, metadataBytes(md));
}

describe('a good update', () => {
  it('from a local folder (a USB stick): verified, unpacked into versions/<n>, recorded; then up to date; then the next one', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const progress: BundleProgress[] = [];
    const app = appliance(vendor, vendor.repo.dir, { onProgress: (p) => progress.push(p) });
    expect(await app.check()).toMatchObject({ installed: undefined, available: { version: 1 }, newer: true });

    const r = await app.update();
    expect(r.status).toBe('installed');
    expect(r.bundle).toMatchObject({
      version: 1,
      sha256: built.get(1)!.sha256,
      dir: join(app.versionsDir, '1'),
    });
    expectUnpacked(r.bundle.dir, built.get(1)!);
    expect((await snapshotOf(app)).versions).toEqual(['1']);
    expect((await snapshotOf(app)).downloads).toEqual([]);
    const downloads = progress.filter((p) => p.phase === 'download');
    expect(downloads.at(-1)).toEqual({
      phase: 'download',
      bytes: built.get(1)!.archive.length,
      total: built.get(1)!.archive.length,
    });
    expect(downloads.map((p) => p.bytes)).toEqual([...downloads.map((p) => p.bytes)].sort((a, b) => a - b));
    expect(progress.some((p) => p.phase === 'unpack')).toBe(true);

    expect(await app.update()).toMatchObject({ status: 'current', bundle: { version: 1 } });

    await vendor.publish(2);
    const r2 = await app.update();
    expect(r2).toMatchObject({ status: 'installed', bundle: { version: 2 }, previous: { version: 1 } });
    expectUnpacked(r2.bundle.dir, built.get(2)!);
    expect((await snapshotOf(app)).versions).toEqual(['1', '2']);
  });

  it('over loopback HTTP', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(3);
    served = vendor.repo.dir;
    const app = appliance(vendor, httpBase);
    const r = await app.update();
    expect(r).toMatchObject({ status: 'installed', bundle: { version: 3 } });
    expectUnpacked(r.bundle.dir, built.get(3)!);
  });

  it('an unreachable repository or a folder that is not one: BUNDLE_FETCH_FAILED', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    await expectRefused(appliance(vendor, join(tmp, 'no-such-folder')), 'BUNDLE_FETCH_FAILED');
    await expectRefused(appliance(vendor, 'http://127.0.0.1:9/'), 'BUNDLE_FETCH_FAILED');
  });

  it('a channel the repository does not have: BUNDLE_NOT_FOUND', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    await expectRefused(appliance(vendor, vendor.repo.dir, { channel: 'beta' }), 'BUNDLE_NOT_FOUND');
  });
});

describe('attacks on the metadata and the download', () => {
  it('tampered target (same length, one byte changed): BUNDLE_TAMPERED', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const { storedAs } = await vendor.publish(2);
    const file = join(vendor.repo.dir, storedAs);
    const bytes = readFileSync(file);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(file, bytes);
    await expectRefused(app, 'BUNDLE_TAMPERED');
    // control: the intact file installs
    writeFileSync(file, built.get(2)!.archive);
    expect(await app.update()).toMatchObject({ status: 'installed', bundle: { version: 2 } });
  });

  it('a target longer than signed: BUNDLE_TAMPERED, and a signed one over the download limit: BUNDLE_TOO_LARGE', async () => {
    const vendor = await new Vendor().init();
    const { storedAs } = await vendor.publish(1);
    const file = join(vendor.repo.dir, storedAs);
    writeFileSync(file, Buffer.concat([built.get(1)!.archive, Buffer.alloc(10)]));
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_TAMPERED');
    writeFileSync(file, built.get(1)!.archive);
    await expectRefused(
      appliance(vendor, vendor.repo.dir, { limits: { maxDownloadBytes: 1000 } }),
      'BUNDLE_TOO_LARGE',
    );
  });

  it('a repository signed with the wrong keys (an attacker repository at the same place): BUNDLE_SIGNATURE_INVALID', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const attacker = await new Vendor().init();
    await attacker.publish(2);
    served = attacker.repo.dir;
    await expectRefused(appliance(vendor, httpBase), 'BUNDLE_SIGNATURE_INVALID');
    await expectRefused(
      appliance(vendor, httpBase, { dataDir: join(app.versionsDir, '..') }),
      'BUNDLE_SIGNATURE_INVALID',
    );
    // and a timestamp re-signed by a key the root does not name
    await vendor.publish(2);
    resign(join(vendor.repo.metadataDir, 'timestamp.json'), MetadataKind.Timestamp, newSigner());
    await expectRefused(app, 'BUNDLE_SIGNATURE_INVALID');
  });

  it('expired timestamp (freeze: the same old files served after they expired): BUNDLE_EXPIRED', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    await vendor.publish(2);
    // eight days later the attacker still serves today's repository (timestamps last 7 days)
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 8 * 86_400_000);
    await expectRefused(app, 'BUNDLE_EXPIRED');
    // a fresh appliance that never saw the repository is refused too
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_EXPIRED');
    vi.useRealTimers();
    // control: today it is accepted
    expect(await app.update()).toMatchObject({ status: 'installed', bundle: { version: 2 } });
  });

  it('a timestamp signed already expired by the vendor clock: BUNDLE_EXPIRED', async () => {
    const past = new Date(Date.now() - 10 * 86_400_000);
    const vendor = await new Vendor(() => past.getTime()).init();
    await vendor.publish(1);
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_EXPIRED');
  });

  it('rollback of metadata (yesterday’s repository served again): BUNDLE_ROLLBACK', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const yesterday = join(tmp, `old-${Date.now()}`);
    cpSync(vendor.repo.dir, yesterday, { recursive: true });
    await vendor.publish(2);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const moved = appliance(vendor, yesterday, { dataDir: join(app.versionsDir, '..') });
    await expectRefused(moved, 'BUNDLE_ROLLBACK');
    expect((await moved.installed())?.version).toBe(2);
  });

  it('rollback of the bundle version (validly signed, lower or equal version): BUNDLE_ROLLBACK, also after a restart', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(5);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    await vendor.publish(3, undefined, { anyVersion: true });
    await expectRefused(app, 'BUNDLE_ROLLBACK');
    const restarted = appliance(vendor, vendor.repo.dir, { dataDir: join(app.versionsDir, '..') });
    await expectRefused(restarted, 'BUNDLE_ROLLBACK');
    // the same version with other content is a rollback too
    await vendor.publish(5, built.get(3)!.archive, { anyVersion: true });
    await expectRefused(restarted, 'BUNDLE_ROLLBACK');
    expect((await restarted.installed())?.version).toBe(5);
  });

  it('snapshot/targets mix-and-match (older targets or snapshot under the current names): BUNDLE_TAMPERED', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    await vendor.publish(2);
    const meta = vendor.repo.metadataDir;
    const t3 = readFileSync(join(meta, '3.targets.json'));
    writeFileSync(join(meta, '3.targets.json'), readFileSync(join(meta, '2.targets.json')));
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_TAMPERED');
    writeFileSync(join(meta, '3.targets.json'), t3);
    const s3 = readFileSync(join(meta, '3.snapshot.json'));
    writeFileSync(join(meta, '3.snapshot.json'), readFileSync(join(meta, '2.snapshot.json')));
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_TAMPERED');
    writeFileSync(join(meta, '3.snapshot.json'), s3);
    // control: put back, it installs
    expect(await appliance(vendor, vendor.repo.dir).update()).toMatchObject({ bundle: { version: 2 } });
  });
});

describe('keys: threshold and rotation', () => {
  it('root rotation done right (targets key replaced; root 2 signed by 2 of the 3 old root keys): accepted', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const next = newSigner();
    await vendor.repo.rotateKey({
      role: 'targets',
      add: [next],
      remove: [vendor.targets.keyid],
      signers: [vendor.root[0]!, vendor.root[2]!, next, vendor.snapshot, vendor.timestamp],
    });
    vendor.targets = next;
    await vendor.publish(2);
    expect(await app.update()).toMatchObject({ status: 'installed', bundle: { version: 2 } });
    // and a new appliance shipped with root 1 walks the chain too
    expect(await appliance(vendor, vendor.repo.dir).update()).toMatchObject({ bundle: { version: 2 } });
  });

  it('root keys replaced in turn (root 2 by old 1+2 and new; root 3 by the new keys only): accepted', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const fresh = [newSigner(), newSigner(), newSigner()];
    await vendor.repo.rotateKey({
      role: 'root',
      add: fresh,
      remove: vendor.root.map((k) => k.keyid),
      signers: [vendor.root[0]!, vendor.root[1]!, fresh[0]!, fresh[1]!],
    });
    await vendor.repo.rotateKey({ role: 'snapshot', signers: [fresh[1]!, fresh[2]!, ...vendor.online] });
    await vendor.publish(2);
    expect(await appliance(vendor, vendor.repo.dir).update()).toMatchObject({ bundle: { version: 2 } });
  });

  it('root rotation done wrong (root 2 signed by only 1 of the old root keys, plus the attacker’s): BUNDLE_SIGNATURE_INVALID', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const evil = newSigner();
    const meta = vendor.repo.metadataDir;
    const doc = JSON.parse(readFileSync(join(meta, '1.root.json'), 'utf8')) as {
      signed: Record<string, unknown>;
    };
    const signed = doc.signed as {
      version: number;
      expires: string;
      keys: Record<string, unknown>;
      roles: Record<string, { keyids: string[]; threshold: number }>;
    };
    signed.version = 2;
    signed.expires = expiryFrom(new Date(), 86_400 * 30);
    for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
      signed.keys[evil.keyid] = evil.key.toJSON();
      signed.roles[role] = { keyids: [evil.keyid], threshold: 1 };
    }
    const root2 = Metadata.fromJSON(MetadataKind.Root, doc as never);
    root2.signatures = {};
    for (const s of [vendor.root[0]!, evil]) root2.sign((d) => s.sign(d), true);
    writeFileSync(join(meta, '2.root.json'), metadataBytes(root2));
    await expectRefused(app, 'BUNDLE_SIGNATURE_INVALID');
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_SIGNATURE_INVALID');
    // control: the same root 2 with a second old root key is accepted as root (and then
    // the old timestamp, which root 2 no longer trusts, is what fails)
    root2.sign((d) => vendor.root[1]!.sign(d), true);
    writeFileSync(join(meta, '2.root.json'), metadataBytes(root2));
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_SIGNATURE_INVALID');
    const fresh = appliance(vendor, vendor.repo.dir);
    await fresh.update().catch(() => undefined);
    const trusted = JSON.parse(readFileSync(join(fresh.versionsDir, '..', 'metadata', 'root.json'), 'utf8'));
    expect(trusted.signed.version).toBe(2);
  });

  it('threshold 2 of 3: any two root keys make a root version the appliance accepts', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    await vendor.repo.rotateKey({
      role: 'timestamp',
      signers: [vendor.root[1]!, vendor.root[2]!, ...vendor.online],
    });
    await vendor.publish(2);
    expect(await app.update()).toMatchObject({ bundle: { version: 2 } });
  });
});

/** A gzipped ustar archive: a manifest naming `files`, then the entries. */
function hostile(
  version: number,
  entries: TarEntry[],
  files = [{ path: 'suricata.rules', data: Buffer.from('') }],
) {
  const manifest = {
    format: 1,
    name: 'portcullis-default',
    channel: 'stable',
    version,
    created: '2026-12-02T10:00:00Z',
    minApplianceVersion: '0.1.0',
    files: files.map((f) => ({
      path: f.path,
      size: f.data.length,
      sha256: createHash('sha256').update(f.data).digest('hex'),
    })),
  };
  return gzipSync(
    writeTar([{ path: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) }, ...entries]),
  );
}

describe('a validly signed but hostile bundle (a stolen targets key, a vendor bug)', () => {
  const cases: [string, () => Buffer, ErrorCode][] = [
    [
      'truncated archive',
      () => built.get(2)!.archive.subarray(0, built.get(2)!.archive.length >> 1),
      'BUNDLE_CORRUPT',
    ],
    [
      'path traversal',
      () => hostile(2, [{ path: '../../escaped.txt', data: Buffer.from('x') }]),
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'absolute path',
      () => hostile(2, [{ path: '/tmp/escaped.txt', data: Buffer.from('x') }]),
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'symlink',
      () => hostile(2, [{ path: 'suricata.rules', type: '2', linkname: '/etc/passwd' }]),
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'hard link',
      () => hostile(2, [{ path: 'suricata.rules', type: '1', linkname: 'manifest.json' }]),
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'device file',
      () => hostile(2, [{ path: 'suricata.rules', type: '3', devmajor: 1, devminor: 3 }]),
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'decompression bomb (64 MiB of zeros in 64 KiB)',
      () => hostile(2, [{ path: 'suricata.rules', data: Buffer.alloc(64 * 1024 * 1024) }]),
      'BUNDLE_TOO_LARGE',
    ],
    [
      'a file not as the manifest says',
      () => hostile(2, [{ path: 'suricata.rules', data: Buffer.from('alert') }]),
      'BUNDLE_MANIFEST_INVALID',
    ],
    [
      'a manifest of another channel',
      () =>
        gzipSync(
          writeTar([
            {
              path: 'manifest.json',
              data: Buffer.from(JSON.stringify({ ...built.get(2)!.manifest, channel: 'beta' })),
            },
          ]),
        ),
      'BUNDLE_MANIFEST_INVALID',
    ],
  ];

  it.each(cases)('%s: refused with its code, nothing installed or left behind', async (_name, make, code) => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    await vendor.publish(2, make());
    await expectRefused(app, code);
    expect(existsSync(join(tmp, 'escaped.txt'))).toBe(false);
    expect(existsSync('/tmp/escaped.txt')).toBe(false);
  });

  it('a symlink made by GNU tar (an independent archiver) is refused too', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const app = appliance(vendor, vendor.repo.dir);
    await app.update();
    const src = mkdtempSync(join(tmp, 'gnu-'));
    writeFileSync(join(src, 'manifest.json'), JSON.stringify(built.get(2)!.manifest));
    mkdirSync(join(src, 'lists'));
    symlinkSync('/etc', join(src, 'lists', 'categories'));
    const out = join(tmp, 'gnu.tar.gz');
    execFileSync('tar', ['--format=ustar', '-czf', out, '-C', src, 'manifest.json', 'lists/categories']);
    await vendor.publish(2, readFileSync(out));
    await expectRefused(app, 'BUNDLE_UNSAFE_ARCHIVE');
  });

  it('a bundle over the unpacked size limit: BUNDLE_TOO_LARGE; a bundle for a newer appliance: BUNDLE_INCOMPATIBLE', async () => {
    const vendor = await new Vendor().init();
    await vendor.publish(1);
    const small = appliance(vendor, vendor.repo.dir, { limits: { maxBytes: 1024 } });
    await expectRefused(small, 'BUNDLE_TOO_LARGE');
    await vendor.publish(2, undefined, { minApplianceVersion: '9.0.0' });
    await expectRefused(appliance(vendor, vendor.repo.dir), 'BUNDLE_INCOMPATIBLE');
  });
});
