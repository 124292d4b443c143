import { createHash, createPrivateKey } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Metadata, MetadataKind } from '@tufjs/models';
import { buildBundle, type BuiltBundle } from '../../../rules/src/build.js';
import { generateKey, signerOf, type Signer } from '../../../rules/src/keys.js';
import { expiryFrom, metadataBytes, VendorRepository } from '../../../rules/src/repository.js';
import { writeTar, type TarEntry } from '../../../rules/src/tar.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';

/**
 * A vendor for tests: keys (a 2-of-3 root), a TUF repository written by the vendor code,
 * bundles built from a copy of rules/ with changes, and the attacks on them (unit tests of
 * the update flow and the lab test share these).
 */

/** The default bundle's source tree. */
export const RULES_SRC = fileURLToPath(new URL('../../../rules', import.meta.url));

export const newSigner = (): Signer => signerOf(createPrivateKey(generateKey().privatePem));

/** The service's `bundles` settings for a test: updates on demand only, from `source`. */
export function testBundlesConfig(source: string, trustedRoot: string): NonNullable<Config['bundles']> {
  return {
    source,
    trustedRoot,
    name: 'portcullis-default',
    channel: 'stable',
    pollSeconds: 0,
    jitterSeconds: 0,
    keep: 3,
    healthSeconds: 1,
    maxDownloadMiB: 64,
  };
}

/** A vendor: keys and a repository in `dir`. */
export class TestVendor {
  readonly root = [newSigner(), newSigner(), newSigner()];
  targets = newSigner();
  readonly snapshot = newSigner();
  readonly timestamp = newSigner();
  readonly repo: VendorRepository;

  constructor(dir: string, now?: Clock) {
    this.repo = new VendorRepository(dir, now);
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

  /** The root of trust an appliance ships with. */
  get rootFile(): string {
    return join(this.repo.metadataDir, '1.root.json');
  }

  /** Publish archive bytes as a version of portcullis-default/stable. */
  publish(version: number, archive: Buffer, extra: { anyVersion?: boolean; signers?: Signer[] } = {}) {
    return this.repo.publish({
      bundle: archive,
      info: { name: 'portcullis-default', channel: 'stable', version, minApplianceVersion: '0.1.0' },
      signers: extra.signers ?? this.online,
      unsafeAnyVersion: extra.anyVersion,
    });
  }

  /** Rotate the targets key the right way: root N+1 signed by 2 of the 3 root keys. */
  async rotateTargets(): Promise<void> {
    const next = newSigner();
    await this.repo.rotateKey({
      role: 'targets',
      add: [next],
      remove: [this.targets.keyid],
      signers: [this.root[0]!, this.root[2]!, next, this.snapshot, this.timestamp],
    });
    this.targets = next;
  }

  /** A root N+1 signed by only one old root key plus an attacker's: must be refused. */
  writeBadRootRotation(): void {
    const evil = newSigner();
    const meta = this.repo.metadataDir;
    const latest = readFileSync(join(meta, 'root.json'), 'utf8');
    const doc = JSON.parse(latest) as { signed: Record<string, unknown> };
    const signed = doc.signed as {
      version: number;
      expires: string;
      keys: Record<string, unknown>;
      roles: Record<string, { keyids: string[]; threshold: number }>;
    };
    signed.version += 1;
    signed.expires = expiryFrom(new Date(), 86_400 * 30);
    for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
      signed.keys[evil.keyid] = evil.key.toJSON();
      signed.roles[role] = { keyids: [evil.keyid], threshold: 1 };
    }
    const md = Metadata.fromJSON(MetadataKind.Root, doc as never);
    md.signatures = {};
    for (const s of [this.root[0]!, evil]) md.sign((d) => s.sign(d), true);
    writeFileSync(join(meta, `${signed.version}.root.json`), metadataBytes(md));
  }
}

/** Re-sign a metadata file with another key (an attacker's, or the vendor's after a change). */
export function resignMetadata(
  file: string,
  kind: MetadataKind,
  by: Signer,
  mutate?: (signed: Record<string, unknown>) => void,
): void {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { signed: Record<string, unknown> };
  mutate?.(doc.signed);
  const md = Metadata.fromJSON(kind as MetadataKind.Root, doc as never);
  md.signatures = {};
  md.sign((d) => by.sign(d), true);
  writeFileSync(file, metadataBytes(md));
}

/** What to change in a copy of rules/ before building. */
export interface TreeChanges {
  /** Lines appended to suricata.rules. */
  readonly rules?: readonly string[];
  /** Files (path in the tree → lines appended, created if missing). */
  readonly append?: Readonly<Record<string, readonly string[]>>;
}

/** Build a bundle from a copy of rules/ with changes. */
export async function buildChanged(
  tmp: string,
  version: number,
  changes: TreeChanges = {},
): Promise<BuiltBundle> {
  return buildBundle({ src: copyTree(tmp, changes), version });
}

function copyTree(tmp: string, changes: TreeChanges): string {
  const src = mkdtempSync(join(tmp, 'tree-'));
  cpSync(RULES_SRC, src, { recursive: true, filter: (p) => !p.includes(`${RULES_SRC}/src`) });
  const append = { ...changes.append, ...(changes.rules ? { 'suricata.rules': changes.rules } : {}) };
  for (const [path, lines] of Object.entries(append)) {
    const file = join(src, path);
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // a new file
    }
    if (text !== '' && !text.endsWith('\n')) text += '\n';
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${text}${lines.join('\n')}\n`);
  }
  return src;
}

/**
 * A gzipped ustar archive with a manifest naming `files` then `entries` as given: the shape
 * of the hostile archives (traversal, links, bombs).
 */
export function hostileArchive(
  version: number,
  entries: TarEntry[],
  files: { path: string; data: Buffer }[] = [{ path: 'suricata.rules', data: Buffer.from('') }],
): Buffer {
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

/**
 * An archive of a copy of rules/ with changes, NOT checked the way `bundle build` checks
 * (a list with a bad line, rules Suricata refuses): what a vendor without those checks, or
 * with a stolen targets key, could sign. The manifest matches its files.
 */
export function uncheckedArchive(tmp: string, version: number, changes: TreeChanges = {}): Buffer {
  const src = copyTree(tmp, changes);
  const files: { path: string; data: Buffer }[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(src, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path);
      else if (e.name !== 'README.md' && e.name !== 'bundle.json')
        files.push({ path, data: readFileSync(join(src, path)) });
    }
  };
  walk('');
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return hostileArchive(version, files, files);
}
