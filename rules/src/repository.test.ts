import { createHash, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, MetadataKind } from '@tufjs/models';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKey, parseKey, signerOf, type Signer } from './keys.js';
import { DEFAULT_EXPIRIES, parseDuration, parseExpiries, VendorRepository } from './repository.js';
import type { Clock } from '../../gateway/src/clock.js';

const tmp = mkdtempSync(join(tmpdir(), 'tu-repo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const newSigner = (): Signer => signerOf(createPrivateKey(generateKey().privatePem));

/** Keys for a repository with a 2-of-3 root. */
function keySet() {
  return {
    root: [newSigner(), newSigner(), newSigner()],
    targets: newSigner(),
    snapshot: newSigner(),
    timestamp: newSigner(),
  };
}
type Keys = ReturnType<typeof keySet>;

async function initRepo(keys: Keys, now?: Clock): Promise<VendorRepository> {
  const repo = new VendorRepository(mkdtempSync(join(tmp, 'r-')), now);
  await repo.init({
    roles: {
      root: { keys: keys.root, threshold: 2 },
      targets: { keys: [keys.targets] },
      snapshot: { keys: [keys.snapshot] },
      timestamp: { keys: [keys.timestamp] },
    },
    signers: [keys.root[0]!, keys.root[1]!, keys.targets, keys.snapshot, keys.timestamp],
  });
  return repo;
}

const online = (k: Keys) => [k.targets, k.snapshot, k.timestamp];
const info = (version: number) => ({
  name: 'acme',
  channel: 'stable',
  version,
  minApplianceVersion: '0.1.0',
});
const readRoot = (repo: VendorRepository, v: number) =>
  Metadata.fromJSON(
    MetadataKind.Root,
    JSON.parse(readFileSync(join(repo.metadataDir, `${v}.root.json`), 'utf8')),
  );

describe('keys', () => {
  it('a key id is the sha256 of the canonical JSON of the key (TUF)', () => {
    const k = generateKey();
    const pub = parseKey(k.publicPem, 'k.pub');
    const hex = pub.key.keyVal.public!;
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    const canonical = JSON.stringify({ keytype: 'ed25519', keyval: { public: hex }, scheme: 'ed25519' });
    expect(pub.keyid).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(parseKey(k.privatePem, 'k.key').keyid).toBe(pub.keyid);
    expect(k.keyid).toBe(pub.keyid);
  });

  it('refuses a key that is not Ed25519 PEM', () => {
    expect(() => parseKey('not a key', 'x.key')).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_INVALID' }),
    );
  });
});

describe('durations', () => {
  it('parses s, m, h, d and role=duration lists over the defaults', () => {
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('12h')).toBe(43_200);
    expect(parseExpiries('timestamp=1d, snapshot=2d')).toEqual({
      ...DEFAULT_EXPIRIES,
      timestamp: 86_400,
      snapshot: 172_800,
    });
    expect(() => parseDuration('1w')).toThrowError(expect.objectContaining({ code: 'BUNDLE_INVALID' }));
    expect(() => parseExpiries('mirror=1d')).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_INVALID' }),
    );
  });
});

describe('VendorRepository', () => {
  it('init writes a 2-of-3 root that verifies itself, and empty signed targets, snapshot and timestamp', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    const root = readRoot(repo, 1);
    expect(root.signed.roles.root).toMatchObject({ threshold: 2, keyIDs: keys.root.map((k) => k.keyid) });
    expect(Object.keys(root.signatures).sort()).toEqual([keys.root[0]!.keyid, keys.root[1]!.keyid].sort());
    expect(() => root.verifyDelegate('root', root)).not.toThrow();
    const state = await repo.state();
    for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
      expect(() => root.verifyDelegate(role, state[role])).not.toThrow();
      expect(state[role].signed.version).toBe(1);
    }
    expect(state.root.signed.consistentSnapshot).toBe(true);
    expect(readFileSync(join(repo.metadataDir, 'root.json'))).toEqual(
      readFileSync(join(repo.metadataDir, '1.root.json')),
    );
  });

  it('init with one root signature where two are needed fails and writes nothing', async () => {
    const keys = keySet();
    const repo = new VendorRepository(mkdtempSync(join(tmp, 'r-')));
    await expect(
      repo.init({
        roles: {
          root: { keys: keys.root, threshold: 2 },
          targets: { keys: [keys.targets] },
          snapshot: { keys: [keys.snapshot] },
          timestamp: { keys: [keys.timestamp] },
        },
        signers: [keys.root[0]!, ...online(keys)],
      }),
    ).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID' });
    expect(readdirSync(repo.dir)).toEqual([]);
  });

  it('expiries count from the clock, per role', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const repo = await initRepo(keySet(), () => now.getTime());
    const s = await repo.state();
    expect(s.root.signed.expires).toBe('2027-01-01T00:00:00Z');
    expect(s.targets.signed.expires).toBe('2026-04-01T00:00:00Z');
    expect(s.snapshot.signed.expires).toBe('2026-01-31T00:00:00Z');
    expect(s.timestamp.signed.expires).toBe('2026-01-08T00:00:00Z');
  });

  it('publish stores the bundle by hash and chains targets → snapshot → timestamp by version, length and hash', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    const bundle = Buffer.from('bundle bytes');
    const r = await repo.publish({ bundle, info: info(5), signers: online(keys) });
    expect(r).toMatchObject({
      targetPath: 'acme/stable.tar.gz',
      targetsVersion: 2,
      snapshotVersion: 2,
      timestampVersion: 2,
    });
    const hash = createHash('sha256').update(bundle).digest('hex');
    expect(r.storedAs).toBe(`targets/acme/${hash}.stable.tar.gz`);
    expect(readFileSync(join(repo.dir, r.storedAs))).toEqual(bundle);

    const s = await repo.state();
    const t = s.targets.signed.targets['acme/stable.tar.gz']!;
    expect(t.length).toBe(bundle.length);
    expect(t.hashes.sha256).toBe(hash);
    expect(t.custom).toEqual({ portcullis: info(5) });
    const targetsBytes = readFileSync(join(repo.metadataDir, '2.targets.json'));
    expect(s.snapshot.signed.meta['targets.json']).toMatchObject({
      version: 2,
      length: targetsBytes.length,
      hashes: { sha256: createHash('sha256').update(targetsBytes).digest('hex') },
    });
    const snapBytes = readFileSync(join(repo.metadataDir, '2.snapshot.json'));
    expect(s.timestamp.signed.snapshotMeta).toMatchObject({
      version: 2,
      length: snapBytes.length,
      hashes: { sha256: createHash('sha256').update(snapBytes).digest('hex') },
    });
  });

  it('publish refuses a version that does not rise on its channel', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    await repo.publish({ bundle: Buffer.from('a'), info: info(5), signers: online(keys) });
    for (const v of [5, 4]) {
      await expect(
        repo.publish({ bundle: Buffer.from('b'), info: info(v), signers: online(keys) }),
      ).rejects.toMatchObject({ code: 'BUNDLE_ROLLBACK' });
    }
    // control: another channel and a higher version are fine
    await repo.publish({
      bundle: Buffer.from('c'),
      info: { ...info(1), channel: 'beta' },
      signers: online(keys),
    });
    await repo.publish({ bundle: Buffer.from('d'), info: info(6), signers: online(keys) });
    expect(Object.keys((await repo.state()).targets.signed.targets).sort()).toEqual([
      'acme/beta.tar.gz',
      'acme/stable.tar.gz',
    ]);
  });

  it('publish without the timestamp key fails before writing anything', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    const before = readdirSync(repo.metadataDir).sort();
    await expect(
      repo.publish({ bundle: Buffer.from('a'), info: info(1), signers: [keys.targets, keys.snapshot] }),
    ).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID', context: { role: 'timestamp' } });
    expect(readdirSync(repo.metadataDir).sort()).toEqual(before);
    expect(readdirSync(repo.dir)).toEqual(['metadata']);
  });

  it('refresh re-signs snapshot and timestamp, keeping targets', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    await repo.publish({ bundle: Buffer.from('a'), info: info(1), signers: online(keys) });
    expect(await repo.refresh({ signers: [keys.snapshot, keys.timestamp] })).toEqual({
      targetsVersion: 2,
      snapshotVersion: 3,
      timestampVersion: 3,
    });
    const s = await repo.state();
    expect(s.targets.signed.version).toBe(2);
    expect(s.snapshot.signed.meta['targets.json']?.version).toBe(2);
  });

  it('rotate-key: a new root signed by the old and the new root thresholds; the role re-signed with its new key', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    const newTargets = newSigner();
    const r = await repo.rotateKey({
      role: 'targets',
      add: [newTargets],
      remove: [keys.targets.keyid],
      signers: [keys.root[0]!, keys.root[2]!, newTargets, keys.snapshot, keys.timestamp],
    });
    expect(r.rootVersion).toBe(2);
    const v1 = readRoot(repo, 1);
    const v2 = readRoot(repo, 2);
    expect(() => v1.verifyDelegate('root', v2)).not.toThrow();
    expect(() => v2.verifyDelegate('root', v2)).not.toThrow();
    expect(v2.signed.roles.targets?.keyIDs).toEqual([newTargets.keyid]);
    const s = await repo.state();
    expect(s.targets.signed.version).toBe(2);
    expect(() => v2.verifyDelegate('targets', s.targets)).not.toThrow();
    expect(() => v1.verifyDelegate('targets', s.targets)).toThrow();
  });

  it('rotate-key of root keys needs the old threshold: new keys alone are refused and nothing is written', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    const fresh = [newSigner(), newSigner()];
    await expect(
      repo.rotateKey({
        role: 'root',
        add: fresh,
        remove: keys.root.map((k) => k.keyid),
        threshold: 2,
        signers: [...fresh, keys.root[0]!],
      }),
    ).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID', context: { which: 'old' } });
    expect(await repo.latestRootVersion()).toBe(1);
    // control: with two old keys it goes through
    await repo.rotateKey({
      role: 'root',
      add: fresh,
      remove: keys.root.map((k) => k.keyid),
      threshold: 2,
      signers: [...fresh, keys.root[0]!, keys.root[1]!],
    });
    expect(await repo.latestRootVersion()).toBe(2);
    expect(readRoot(repo, 2).signed.roles.root).toMatchObject({
      threshold: 2,
      keyIDs: fresh.map((k) => k.keyid),
    });
  });

  it('rotate-key refuses to remove a key the role does not have', async () => {
    const keys = keySet();
    const repo = await initRepo(keys);
    await expect(
      repo.rotateKey({ role: 'snapshot', remove: ['0'.repeat(64)], signers: keys.root }),
    ).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });
  });
});
