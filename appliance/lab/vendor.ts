import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundle } from '../../rules/src/build.js';
import { generateKey, readKey, type Signer } from '../../rules/src/keys.js';
import { VendorRepository } from '../../rules/src/repository.js';

/**
 * The lab's rule vendor: Ed25519 keys (a 2-of-3 root, one key each for targets, snapshot
 * and timestamp) as files, a TUF repository written by the vendor code with the default
 * bundle (built from rules/) as version 1, and the root of trust the lab's appliance ships
 * with. Tests publish further versions with the same keys (`labVendorKeys`).
 */

/** Where the lab vendor's files are. */
export interface LabVendorPaths {
  readonly dir: string;
  readonly keys: string;
  readonly repo: string;
  /** The root of trust the appliance ships with. */
  readonly root: string;
}

export function labVendorPaths(stateDir: string): LabVendorPaths {
  const dir = join(stateDir, 'vendor');
  return { dir, keys: join(dir, 'keys'), repo: join(dir, 'repo'), root: join(dir, '1.root.json') };
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const KEYS = ['root-1', 'root-2', 'root-3', 'targets', 'snapshot', 'timestamp'] as const;
type KeyName = (typeof KEYS)[number];

/** The lab vendor's private keys. */
export async function labVendorKeys(stateDir: string): Promise<Record<KeyName, Signer>> {
  const p = labVendorPaths(stateDir);
  const out: Partial<Record<KeyName, Signer>> = {};
  for (const k of KEYS) out[k] = (await readKey(join(p.keys, `${k}.key`))) as Signer;
  return out as Record<KeyName, Signer>;
}

/** Make the vendor: keys, repository, version 1 of the default bundle. */
export async function makeLabVendor(stateDir: string): Promise<LabVendorPaths> {
  const p = labVendorPaths(stateDir);
  mkdirSync(p.keys, { recursive: true });
  for (const k of KEYS) {
    const g = generateKey();
    writeFileSync(join(p.keys, `${k}.key`), g.privatePem, { mode: 0o600 });
    chmodSync(join(p.keys, `${k}.key`), 0o600);
    writeFileSync(join(p.keys, `${k}.pub`), g.publicPem);
  }
  const keys = await labVendorKeys(stateDir);
  const repo = new VendorRepository(p.repo);
  const online = [keys.targets, keys.snapshot, keys.timestamp];
  await repo.init({
    roles: {
      root: { keys: [keys['root-1'], keys['root-2'], keys['root-3']], threshold: 2 },
      targets: { keys: [keys.targets] },
      snapshot: { keys: [keys.snapshot] },
      timestamp: { keys: [keys.timestamp] },
    },
    signers: [keys['root-1'], keys['root-2'], ...online],
  });
  const built = await buildBundle({ src: join(REPO_ROOT, 'rules'), version: 1 });
  await repo.publish({
    bundle: built.archive,
    info: { name: 'portcullis-default', channel: 'stable', version: 1, minApplianceVersion: '0.1.0' },
    signers: online,
  });
  writeFileSync(p.root, readFileSync(join(repo.metadataDir, '1.root.json')));
  return p;
}
