import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { PortcullisError } from '../errors.js';
import { group } from './api-commands.js';
import { buildBundle, readBundleManifest } from '../../../rules/src/build.js';
import { generateKey, isSigner, readKey, type PublicKey, type Signer } from '../../../rules/src/keys.js';
import { parseExpiries, ROLES, VendorRepository, type RoleName } from '../../../rules/src/repository.js';

/**
 * `portcullis bundle …`: the vendor's side of rule updates. Builds signed rule bundles and
 * keeps the static TUF repository appliances update from (rules/README.md). Offline: no
 * service or API involved.
 */

/** The default bundle's source tree: this checkout's rules/ (run through tsx), else ./rules (a bundled build). */
const CHECKOUT_RULES = fileURLToPath(new URL('../../../rules', import.meta.url));
const DEFAULT_SRC = existsSync(join(CHECKOUT_RULES, 'bundle.json')) ? CHECKOUT_RULES : 'rules';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!/^[1-9]\d*$/.test(text) || !Number.isSafeInteger(n)) {
    throw new PortcullisError('BUNDLE_INVALID', `${what} must be a positive integer, not "${text}"`);
  }
  return n;
}

async function readKeys(files: readonly string[]): Promise<(PublicKey | Signer)[]> {
  return Promise.all(files.map((f) => readKey(f)));
}

async function signers(files: readonly string[]): Promise<Signer[]> {
  const keys = await readKeys(files);
  keys.forEach((k, i) => {
    if (!isSigner(k)) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `${files[i]} is a public key; --key needs a private key file (*.key)`,
      );
    }
  });
  return keys as Signer[];
}

interface InitFlags {
  readonly repo: string;
  readonly rootKey: string[];
  readonly rootThreshold?: string;
  readonly targetsKey: string[];
  readonly snapshotKey: string[];
  readonly timestampKey: string[];
  readonly key: string[];
  readonly expires?: string;
}

interface BuildFlags {
  readonly src: string;
  readonly version: string;
  readonly out: string;
  readonly name?: string;
  readonly channel?: string;
  readonly minAppliance?: string;
}

interface PublishFlags {
  readonly repo: string;
  readonly bundle?: string;
  readonly key: string[];
  readonly expires?: string;
  readonly resignTargets?: boolean;
}

interface RotateFlags {
  readonly repo: string;
  readonly role: string;
  readonly add: string[];
  readonly remove: string[];
  readonly threshold?: string;
  readonly key: string[];
  readonly expires?: string;
}

/** Register `portcullis bundle init | keygen | build | publish | rotate-key`. */
export function registerBundleCommands(program: Command): void {
  const bundle = group(
    program,
    'bundle',
    'rule bundles: updates on this appliance (update, rollback, status, sid, source) and the vendor tools (keygen, init, build, publish, rotate-key)',
  );

  bundle
    .command('keygen')
    .description(
      'make an Ed25519 key pair: <prefix>.key (private, mode 0600; keep root keys offline) and <prefix>.pub',
    )
    .argument('<prefix>', 'path and name without extension, e.g. keys/root-1')
    .action(async (prefix: string) => {
      const k = generateKey();
      try {
        await writeFile(`${prefix}.key`, k.privatePem, { mode: 0o600, flag: 'wx' });
        await writeFile(`${prefix}.pub`, k.publicPem, { flag: 'wx' });
      } catch (cause) {
        throw new PortcullisError(
          'BUNDLE_INVALID',
          `cannot write ${prefix}.key/.pub: ${(cause as Error).message}`,
          {
            cause,
          },
        );
      }
      print({ keyid: k.keyid, private: `${prefix}.key`, public: `${prefix}.pub` });
    });

  bundle
    .command('init')
    .description(
      'create a TUF repository: root version 1 naming the keys of each role, empty targets; ship metadata/1.root.json with appliances',
    )
    .requiredOption('--repo <dir>', 'the repository directory (what a web server or USB stick serves)')
    .option(
      '--root-key <file>',
      'a root key (.key signs, .pub only names it); repeat for several',
      collect,
      [],
    )
    .option('--root-threshold <n>', 'root signatures required (default 1)')
    .option('--targets-key <file>', 'a targets key; repeat for several', collect, [])
    .option('--snapshot-key <file>', 'a snapshot key; repeat for several', collect, [])
    .option('--timestamp-key <file>', 'a timestamp key; repeat for several', collect, [])
    .option('--key <file>', 'another private key to sign with; repeat for several', collect, [])
    .option(
      '--expires <role=duration,...>',
      'validity per role (default root=365d,targets=90d,snapshot=30d,timestamp=7d)',
    )
    .action(async (flags: InitFlags) => {
      const roleFiles: Record<RoleName, string[]> = {
        root: flags.rootKey,
        targets: flags.targetsKey,
        snapshot: flags.snapshotKey,
        timestamp: flags.timestampKey,
      };
      const roles = {} as Record<RoleName, { keys: PublicKey[]; threshold?: number }>;
      const all: (PublicKey | Signer)[] = [];
      for (const role of ROLES) {
        if (roleFiles[role].length === 0) {
          throw new PortcullisError(
            'BUNDLE_INVALID',
            `--${role}-key is required (make one with 'portcullis bundle keygen')`,
          );
        }
        const keys = await readKeys(roleFiles[role]);
        all.push(...keys);
        roles[role] = { keys };
      }
      if (flags.rootThreshold !== undefined) {
        roles.root = { ...roles.root, threshold: positiveInt(flags.rootThreshold, '--root-threshold') };
      }
      const extra = await signers(flags.key);
      const result = await new VendorRepository(flags.repo).init({
        roles,
        signers: [...all.filter(isSigner), ...extra],
        expires: parseExpiries(flags.expires),
      });
      print(result);
    });

  bundle
    .command('build')
    .description('build a bundle (.tar.gz with manifest.json) from a source tree laid out as rules/')
    .option('--src <dir>', 'the source tree', DEFAULT_SRC)
    .requiredOption('--version <n>', 'release version: an integer above every earlier release of the channel')
    .requiredOption('--out <file>', 'where to write the .tar.gz')
    .option('--name <name>', "bundle name (default: bundle.json's)")
    .option('--channel <name>', "channel (default: bundle.json's)")
    .option('--min-appliance <version>', "oldest appliance version that can use it (default: bundle.json's)")
    .action(async (flags: BuildFlags) => {
      const built = await buildBundle({
        src: flags.src,
        version: positiveInt(flags.version, '--version'),
        name: flags.name,
        channel: flags.channel,
        minApplianceVersion: flags.minAppliance,
      });
      await writeFile(flags.out, built.archive);
      const { files, ...rest } = built.manifest;
      print({
        out: flags.out,
        sha256: built.sha256,
        bytes: built.archive.length,
        ...rest,
        files: files.length,
      });
    });

  bundle
    .command('publish')
    .description(
      "sign a bundle into the repository as its channel's release (new targets, snapshot, timestamp); without --bundle, re-sign snapshot and timestamp before they expire",
    )
    .requiredOption('--repo <dir>', 'the repository directory')
    .option('--bundle <file>', "a .tar.gz from 'portcullis bundle build'")
    .option('--key <file>', 'a private key of the targets, snapshot or timestamp role; repeat', collect, [])
    .option('--resign-targets', 'without --bundle: re-sign targets too (before it expires)')
    .option(
      '--expires <role=duration,...>',
      'validity per role (default targets=90d,snapshot=30d,timestamp=7d)',
    )
    .action(async (flags: PublishFlags) => {
      const repo = new VendorRepository(flags.repo);
      const keys = await signers(flags.key);
      const expires = parseExpiries(flags.expires);
      if (flags.bundle === undefined) {
        print(await repo.refresh({ signers: keys, expires, targets: flags.resignTargets === true }));
        return;
      }
      const archive = await readFile(flags.bundle);
      const m = readBundleManifest(archive, flags.bundle);
      const info = {
        name: m.name,
        channel: m.channel,
        version: m.version,
        minApplianceVersion: m.minApplianceVersion,
      };
      print({ ...info, ...(await repo.publish({ bundle: archive, info, signers: keys, expires })) });
    });

  bundle
    .command('rotate-key')
    .description(
      "change a role's keys through a new root version, signed by the old and the new root keys' thresholds",
    )
    .requiredOption('--repo <dir>', 'the repository directory')
    .requiredOption('--role <role>', `the role whose keys change: ${ROLES.join(', ')}`)
    .option('--add <file>', 'a key the role gains (.pub or .key); repeat', collect, [])
    .option('--remove <keyid|file>', 'a key the role loses, by key id or key file; repeat', collect, [])
    .option('--threshold <n>', "the role's new threshold (default: unchanged)")
    .option(
      '--key <file>',
      'a private key to sign with (old and new root keys, and new role keys); repeat',
      collect,
      [],
    )
    .option('--expires <role=duration,...>', 'validity per role')
    .action(async (flags: RotateFlags) => {
      if (!ROLES.includes(flags.role as RoleName)) {
        throw new PortcullisError(
          'BUNDLE_INVALID',
          `--role must be one of ${ROLES.join(', ')}, not "${flags.role}"`,
        );
      }
      const remove = await Promise.all(
        flags.remove.map(async (r) => (/^[0-9a-f]{64}$/.test(r) ? r : (await readKey(r)).keyid)),
      );
      const add = await readKeys(flags.add);
      const keys = await signers(flags.key);
      const result = await new VendorRepository(flags.repo).rotateKey({
        role: flags.role as RoleName,
        add,
        remove,
        threshold: flags.threshold === undefined ? undefined : positiveInt(flags.threshold, '--threshold'),
        signers: [...keys, ...add.filter(isSigner)],
        expires: parseExpiries(flags.expires),
      });
      print(result);
    });
}
