import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import {
  Metadata,
  MetadataKind,
  type Root,
  type Snapshot,
  type Targets,
  type Timestamp,
} from '@tufjs/models';
import { PortcullisError } from '../../gateway/src/errors.js';
import { bundleTargetInfo, bundleTargetPath, type BundleTargetInfo } from './format.js';
import type { PublicKey, Signer } from './keys.js';
import { systemClock, type Clock } from '../../gateway/src/clock.js';

/**
 * The vendor's static TUF repository (`portcullis bundle init | publish | rotate-key`):
 * plain files that any static web host, object store or USB stick can serve.
 *
 * ```
 * <repo>/metadata/1.root.json, 2.root.json, …   every root version (clients walk the chain)
 * <repo>/metadata/root.json                     the newest root (convenience copy)
 * <repo>/metadata/<n>.targets.json               targets metadata, by version
 * <repo>/metadata/<n>.snapshot.json              snapshot metadata, by version
 * <repo>/metadata/timestamp.json                 the one file rewritten in place, last
 * <repo>/targets/<name>/<sha256>.<channel>.tar.gz bundles, by hash (consistent snapshots)
 * ```
 *
 * Every write goes to a temporary file and is renamed into place, and `timestamp.json`
 * is written last, so a client that reads during a publish sees the old or the new
 * repository, never a mix. Metadata carries the length and sha256 of the files it names.
 */

/** The four top-level TUF roles. */
export type RoleName = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const ROLES: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

/** How long each role's metadata is valid after it is signed, in seconds. */
export type Expiries = Readonly<Record<RoleName, number>>;

const DAY = 86_400;

/**
 * Defaults: root 1 year, targets 90 days, snapshot 30 days, timestamp 7 days. The
 * timestamp must be re-signed (`portcullis bundle publish` without a bundle) before it
 * expires, or appliances stop accepting the repository (the freeze-attack guard); a week
 * leaves time to carry a copy to an appliance offline.
 */
export const DEFAULT_EXPIRIES: Expiries = Object.freeze({
  root: 365 * DAY,
  targets: 90 * DAY,
  snapshot: 30 * DAY,
  timestamp: 7 * DAY,
});

/** TUF specification version written into metadata. */
export const SPEC_VERSION = '1.0.31';

/**
 * Parse a duration: a positive integer and a unit, `s`, `m`, `h` or `d` (`12h`, `7d`).
 * @returns seconds.
 * @throws BUNDLE_INVALID naming the text.
 */
export function parseDuration(text: string): number {
  const m = /^([1-9]\d{0,6})([smhd])$/.exec(text.trim());
  if (!m) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `"${text}" is not a duration: use a number and s, m, h or d (7d)`,
    );
  }
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: DAY }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/**
 * Parse `role=duration,…` (`timestamp=1d,snapshot=7d`) over the defaults.
 * @throws BUNDLE_INVALID for an unknown role or a bad duration.
 */
export function parseExpiries(text: string | undefined, base: Expiries = DEFAULT_EXPIRIES): Expiries {
  if (text === undefined || text.trim() === '') return base;
  const out: Record<RoleName, number> = { ...base };
  for (const part of text.split(',')) {
    const [role, value] = part.split('=').map((s) => s.trim());
    if (!ROLES.includes(role as RoleName) || value === undefined) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `"${part}" is not role=duration with a role of ${ROLES.join(', ')} (timestamp=1d)`,
      );
    }
    out[role as RoleName] = parseDuration(value);
  }
  return out;
}

/** The keys of one role and how many of them must sign. */
export interface RoleKeys {
  readonly keys: readonly PublicKey[];
  /** Signatures required, 1 to the number of keys. Default 1. */
  readonly threshold?: number;
}

/** The trusted metadata of a repository as it is now. */
export interface RepositoryState {
  readonly root: Metadata<Root>;
  readonly targets: Metadata<Targets>;
  readonly snapshot: Metadata<Snapshot>;
  readonly timestamp: Metadata<Timestamp>;
}

/** What {@link VendorRepository.init} wrote. */
export interface InitResult {
  /** The root of trust to ship with appliances (`metadata/1.root.json`). */
  readonly rootFile: string;
  /** sha256 of that file, to compare out of band. */
  readonly rootSha256: string;
}

/** What {@link VendorRepository.publish} wrote. */
export interface PublishResult {
  readonly targetPath: string;
  /** The file the bundle was stored as, relative to the repository. */
  readonly storedAs: string;
  readonly sha256: string;
  readonly length: number;
  readonly targetsVersion: number;
  readonly snapshotVersion: number;
  readonly timestampVersion: number;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** TUF's expiry format: ISO 8601 UTC without fractions. */
export function expiryFrom(now: Date, seconds: number): string {
  return new Date(now.getTime() + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Serialize metadata as the repository stores it (signatures are over the canonical form, so layout is free). */
export function metadataBytes(md: Metadata<Root | Targets | Snapshot | Timestamp>): Buffer {
  return Buffer.from(`${JSON.stringify(md.toJSON(), null, 1)}\n`);
}

/** Parse stored metadata of a kind. */
function parseMetadata<K extends MetadataKind>(kind: K, bytes: Buffer, file: string) {
  try {
    return Metadata.fromJSON(kind as MetadataKind.Root, JSON.parse(bytes.toString('utf8')) as never);
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `${file} is not ${kind} metadata: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

/**
 * Sign metadata with every given signer the role lists, replacing its signatures, and
 * check the result against the role's threshold as a client would.
 * @param root the root that names the role's keys.
 * @throws BUNDLE_SIGNATURE_INVALID if fewer than the threshold of the role's keys signed.
 */
export function signRole(
  md: Metadata<Root | Targets | Snapshot | Timestamp>,
  role: RoleName,
  root: Root,
  signers: readonly Signer[],
): void {
  const allowed = root.roles[role];
  if (!allowed) throw new PortcullisError('BUNDLE_INVALID', `root has no ${role} role`);
  md.signatures = {};
  for (const s of signers) if (allowed.keyIDs.includes(s.keyid)) md.sign((d) => s.sign(d), true);
  const have = Object.keys(md.signatures).length;
  if (have < allowed.threshold) {
    throw new PortcullisError(
      'BUNDLE_SIGNATURE_INVALID',
      `${role} metadata needs ${allowed.threshold} of the keys ${allowed.keyIDs.join(', ')}; ` +
        `${have} of the given keys (${signers.map((s) => s.keyid).join(', ') || 'none'}) are among them: pass the private key files with --key`,
      { context: { role, threshold: allowed.threshold, keyids: allowed.keyIDs } },
    );
  }
}

function rootJson(
  version: number,
  expires: string,
  roles: Readonly<Record<RoleName, RoleKeys>>,
): Record<string, unknown> {
  const keys: Record<string, unknown> = {};
  const roleJson: Record<string, unknown> = {};
  for (const name of ROLES) {
    const r = roles[name];
    const threshold = r.threshold ?? 1;
    const ids = [...new Set(r.keys.map((k) => k.keyid))];
    if (ids.length === 0)
      throw new PortcullisError('BUNDLE_INVALID', `the ${name} role needs at least one key`);
    if (!Number.isInteger(threshold) || threshold < 1 || threshold > ids.length) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `the ${name} threshold ${threshold} must be from 1 to its number of keys (${ids.length})`,
      );
    }
    for (const k of r.keys) keys[k.keyid] = k.key.toJSON();
    roleJson[name] = { keyids: ids, threshold };
  }
  return {
    _type: 'root',
    spec_version: SPEC_VERSION,
    version,
    expires,
    consistent_snapshot: true,
    keys,
    roles: roleJson,
  };
}

/** A vendor's TUF repository in a directory. */
export class VendorRepository {
  readonly dir: string;
  readonly #now: Clock;

  /**
   * @param dir the repository directory (what gets served).
   * @param now the clock expiries count from (tests set it to sign already expired metadata).
   */
  constructor(dir: string, now: Clock = systemClock) {
    this.dir = dir;
    this.#now = now;
  }

  get metadataDir(): string {
    return join(this.dir, 'metadata');
  }

  async #write(rel: string, data: Uint8Array): Promise<void> {
    const file = join(this.dir, rel);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, file);
  }

  async #read(rel: string): Promise<Buffer> {
    try {
      return await readFile(join(this.dir, rel));
    } catch (cause) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `${join(this.dir, rel)} cannot be read (is ${this.dir} a repository made by 'portcullis bundle init'?): ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /** The newest root version in the repository; 0 when there is none. */
  async latestRootVersion(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.metadataDir);
    } catch {
      return 0;
    }
    return Math.max(
      0,
      ...names
        .map((n) => /^([1-9]\d*)\.root\.json$/.exec(n)?.[1])
        .filter(Boolean)
        .map(Number),
    );
  }

  /** Read the repository's current metadata. */
  async state(): Promise<RepositoryState> {
    const v = await this.latestRootVersion();
    if (v === 0) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `${this.dir} has no root metadata: run 'portcullis bundle init'`,
      );
    }
    const rootFile = `metadata/${v}.root.json`;
    const root = parseMetadata(MetadataKind.Root, await this.#read(rootFile), rootFile) as Metadata<Root>;
    const tsFile = 'metadata/timestamp.json';
    const timestamp = parseMetadata(
      MetadataKind.Timestamp,
      await this.#read(tsFile),
      tsFile,
    ) as unknown as Metadata<Timestamp>;
    const snapFile = `metadata/${timestamp.signed.snapshotMeta.version}.snapshot.json`;
    const snapshot = parseMetadata(
      MetadataKind.Snapshot,
      await this.#read(snapFile),
      snapFile,
    ) as unknown as Metadata<Snapshot>;
    const targetsMeta = snapshot.signed.meta['targets.json'];
    if (!targetsMeta) throw new PortcullisError('BUNDLE_INVALID', `${snapFile} does not name targets.json`);
    const targetsFile = `metadata/${targetsMeta.version}.targets.json`;
    const targets = parseMetadata(
      MetadataKind.Targets,
      await this.#read(targetsFile),
      targetsFile,
    ) as unknown as Metadata<Targets>;
    return { root, targets, snapshot, timestamp };
  }

  /**
   * Create the repository: root version 1 naming every role's keys, and empty targets,
   * snapshot and timestamp metadata. The signers must reach each role's threshold.
   * @throws BUNDLE_INVALID if the directory already holds a repository.
   */
  async init(options: {
    readonly roles: Readonly<Record<RoleName, RoleKeys>>;
    readonly signers: readonly Signer[];
    readonly expires?: Expiries;
  }): Promise<InitResult> {
    if ((await this.latestRootVersion()) > 0) {
      throw new PortcullisError(
        'BUNDLE_INVALID',
        `${this.dir} already holds a repository; use rotate-key to change keys`,
      );
    }
    const expires = options.expires ?? DEFAULT_EXPIRIES;
    const now = new Date(this.#now());
    const root = Metadata.fromJSON(MetadataKind.Root, {
      signed: rootJson(1, expiryFrom(now, expires.root), options.roles),
      signatures: [],
    } as never);
    signRole(root, 'root', root.signed, options.signers);
    const rootBytes = metadataBytes(root);
    const rest = this.#signTopLevel(root.signed, options.signers, expires, {}, 1, 1, 1);
    await this.#writeAll([['metadata/1.root.json', rootBytes], ['metadata/root.json', rootBytes], ...rest]);
    return { rootFile: join(this.metadataDir, '1.root.json'), rootSha256: sha256(rootBytes) };
  }

  /** Write files in order. */
  async #writeAll(files: readonly (readonly [string, Buffer])[]): Promise<void> {
    for (const [rel, data] of files) await this.#write(rel, data);
  }

  /** Sign targets (unless reused), snapshot and timestamp; the files to write, timestamp last. */
  #signTopLevel(
    root: Root,
    signers: readonly Signer[],
    expires: Expiries,
    targetFiles: Record<string, unknown>,
    targetsVersion: number,
    snapshotVersion: number,
    timestampVersion: number,
    reuseTargets?: Buffer,
  ): [string, Buffer][] {
    const now = new Date(this.#now());
    let targetsBytes = reuseTargets;
    if (!targetsBytes) {
      const targets = Metadata.fromJSON(MetadataKind.Targets, {
        signed: {
          _type: 'targets',
          spec_version: SPEC_VERSION,
          version: targetsVersion,
          expires: expiryFrom(now, expires.targets),
          targets: targetFiles,
        },
        signatures: [],
      } as never);
      signRole(targets, 'targets', root, signers);
      targetsBytes = metadataBytes(targets);
    }
    const snapshot = Metadata.fromJSON(MetadataKind.Snapshot, {
      signed: {
        _type: 'snapshot',
        spec_version: SPEC_VERSION,
        version: snapshotVersion,
        expires: expiryFrom(now, expires.snapshot),
        meta: {
          'targets.json': {
            version: targetsVersion,
            length: targetsBytes.length,
            hashes: { sha256: sha256(targetsBytes) },
          },
        },
      },
      signatures: [],
    } as never);
    signRole(snapshot, 'snapshot', root, signers);
    const snapshotBytes = metadataBytes(snapshot);
    const timestamp = Metadata.fromJSON(MetadataKind.Timestamp, {
      signed: {
        _type: 'timestamp',
        spec_version: SPEC_VERSION,
        version: timestampVersion,
        expires: expiryFrom(now, expires.timestamp),
        meta: {
          'snapshot.json': {
            version: snapshotVersion,
            length: snapshotBytes.length,
            hashes: { sha256: sha256(snapshotBytes) },
          },
        },
      },
      signatures: [],
    } as never);
    signRole(timestamp, 'timestamp', root, signers);
    // everything is signed before anything is written: a missing key changes nothing
    const out: [string, Buffer][] = [];
    if (!reuseTargets) out.push([`metadata/${targetsVersion}.targets.json`, targetsBytes]);
    out.push([`metadata/${snapshotVersion}.snapshot.json`, snapshotBytes]);
    out.push(['metadata/timestamp.json', metadataBytes(timestamp)]);
    return out;
  }

  /**
   * Publish a bundle as its channel's target (replacing the previous release there), then
   * new targets, snapshot and timestamp metadata.
   * @param bundle the archive's bytes (from `buildBundle`).
   * @param info name, channel, version and minimum appliance version, signed into the target's `custom`.
   * @throws BUNDLE_ROLLBACK if the channel already has this or a higher version.
   * @throws BUNDLE_SIGNATURE_INVALID if the signers do not reach the targets, snapshot or timestamp threshold.
   */
  async publish(options: {
    readonly bundle: Uint8Array;
    readonly info: BundleTargetInfo;
    readonly signers: readonly Signer[];
    readonly expires?: Expiries;
    /**
     * Skip the rising-version check: only for tests that play a vendor whose targets key
     * was stolen (appliances refuse such a bundle anyway).
     */
    readonly unsafeAnyVersion?: boolean;
  }): Promise<PublishResult> {
    const { info, bundle } = options;
    const expires = options.expires ?? DEFAULT_EXPIRIES;
    const state = await this.state();
    const targetPath = bundleTargetPath(info.name, info.channel);
    const previous = state.targets.signed.targets[targetPath];
    const previousInfo = previous && bundleTargetInfo(previous.custom);
    if (previousInfo && previousInfo.version >= info.version && options.unsafeAnyVersion !== true) {
      throw new PortcullisError(
        'BUNDLE_ROLLBACK',
        `${targetPath} is at version ${previousInfo.version}; a new release needs a higher version than that, not ${info.version}`,
        { context: { published: previousInfo.version, version: info.version } },
      );
    }
    const hash = sha256(bundle);
    const files: Record<string, unknown> = {};
    for (const [path, t] of Object.entries(state.targets.signed.targets)) files[path] = t.toJSON();
    files[targetPath] = {
      length: bundle.length,
      hashes: { sha256: hash },
      custom: { portcullis: { ...info } },
    };
    const { dir, base } = posix.parse(targetPath);
    const storedAs = posix.join('targets', dir, `${hash}.${base}`);
    const targetsVersion = state.targets.signed.version + 1;
    const snapshotVersion = state.snapshot.signed.version + 1;
    const timestampVersion = state.timestamp.signed.version + 1;
    const metadata = this.#signTopLevel(
      state.root.signed,
      options.signers,
      expires,
      files,
      targetsVersion,
      snapshotVersion,
      timestampVersion,
    );
    await this.#writeAll([[storedAs, Buffer.from(bundle)], ...metadata]);
    return {
      targetPath,
      storedAs,
      sha256: hash,
      length: bundle.length,
      targetsVersion,
      snapshotVersion,
      timestampVersion,
    };
  }

  /**
   * Re-sign snapshot and timestamp with fresh expiries (and targets too with `targets`),
   * changing no target: what a cron job runs before the timestamp expires.
   */
  async refresh(options: {
    readonly signers: readonly Signer[];
    readonly expires?: Expiries;
    /** Re-sign targets as well (after its key changed, or before it expires). */
    readonly targets?: boolean;
  }): Promise<{ targetsVersion: number; snapshotVersion: number; timestampVersion: number }> {
    const state = await this.state();
    const expires = options.expires ?? DEFAULT_EXPIRIES;
    const targetsVersion = state.targets.signed.version + (options.targets ? 1 : 0);
    const files: Record<string, unknown> = {};
    for (const [path, t] of Object.entries(state.targets.signed.targets)) files[path] = t.toJSON();
    const reuse = options.targets
      ? undefined
      : await this.#read(`metadata/${state.targets.signed.version}.targets.json`);
    const snapshotVersion = state.snapshot.signed.version + 1;
    const timestampVersion = state.timestamp.signed.version + 1;
    await this.#writeAll(
      this.#signTopLevel(
        state.root.signed,
        options.signers,
        expires,
        files,
        targetsVersion,
        snapshotVersion,
        timestampVersion,
        reuse,
      ),
    );
    return { targetsVersion, snapshotVersion, timestampVersion };
  }

  /**
   * Change a role's keys through a new root version, signed by the threshold of the old
   * root's root keys and of the new root's (clients check both), then re-sign what the
   * change affects: targets, snapshot and timestamp, each with a new version.
   * @param add keys the role gains.
   * @param remove key ids the role loses.
   * @param threshold the role's new threshold; default: unchanged (capped at its key count).
   * @throws BUNDLE_SIGNATURE_INVALID if the signers do not reach a threshold needed.
   */
  async rotateKey(options: {
    readonly role: RoleName;
    readonly add?: readonly PublicKey[];
    readonly remove?: readonly string[];
    readonly threshold?: number;
    readonly signers: readonly Signer[];
    readonly expires?: Expiries;
  }): Promise<{ rootVersion: number; rootFile: string; rootSha256: string }> {
    const state = await this.state();
    const old = state.root.signed;
    const expires = options.expires ?? DEFAULT_EXPIRIES;
    const roles = {} as Record<RoleName, RoleKeys>;
    for (const name of ROLES) {
      const r = old.roles[name]!;
      let keys: PublicKey[] = r.keyIDs.map((id) => ({ keyid: id, key: old.keys[id]! }));
      let threshold = r.threshold;
      if (name === options.role) {
        const unknown = (options.remove ?? []).filter((id) => !r.keyIDs.includes(id));
        if (unknown.length > 0) {
          throw new PortcullisError(
            'BUNDLE_INVALID',
            `the ${name} role has no key ${unknown.join(', ')} to remove`,
            {
              context: { keyids: r.keyIDs },
            },
          );
        }
        keys = keys.filter((k) => !(options.remove ?? []).includes(k.keyid));
        keys.push(...(options.add ?? []).filter((k) => !keys.some((o) => o.keyid === k.keyid)));
        threshold = options.threshold ?? Math.min(threshold, keys.length);
      }
      roles[name] = { keys, threshold };
    }
    const version = old.version + 1;
    const root = Metadata.fromJSON(MetadataKind.Root, {
      signed: rootJson(version, expiryFrom(new Date(this.#now()), expires.root), roles),
      signatures: [],
    } as never);
    // signed by the old root's root keys and the new one's: a client accepts version N+1
    // only with the threshold of both
    const wanted = new Set([...old.roles.root!.keyIDs, ...root.signed.roles.root!.keyIDs]);
    root.signatures = {};
    for (const s of options.signers) if (wanted.has(s.keyid)) root.sign((d) => s.sign(d), true);
    for (const [which, by] of [
      ['old', old],
      ['new', root.signed],
    ] as const) {
      try {
        new Metadata(by).verifyDelegate('root', root);
      } catch {
        const r = by.roles.root!;
        throw new PortcullisError(
          'BUNDLE_SIGNATURE_INVALID',
          `root version ${version} needs ${r.threshold} signatures of the ${which} root keys (${r.keyIDs.join(', ')}); pass their private key files with --key`,
          { context: { which, threshold: r.threshold, keyids: r.keyIDs } },
        );
      }
    }
    const rootBytes = metadataBytes(root);
    const rootFiles: [string, Buffer][] = [
      [`metadata/${version}.root.json`, rootBytes],
      ['metadata/root.json', rootBytes],
    ];
    if (options.role === 'root') {
      await this.#writeAll(rootFiles);
    } else {
      // re-sign the rest under the new root (a new targets only if its keys changed);
      // written: targets, snapshot, the new root, then the timestamp
      const resignTargets = options.role === 'targets';
      const files: Record<string, unknown> = {};
      for (const [path, t] of Object.entries(state.targets.signed.targets)) files[path] = t.toJSON();
      const reuse = resignTargets
        ? undefined
        : await this.#read(`metadata/${state.targets.signed.version}.targets.json`);
      const rest = this.#signTopLevel(
        root.signed,
        options.signers,
        expires,
        files,
        state.targets.signed.version + (resignTargets ? 1 : 0),
        state.snapshot.signed.version + 1,
        state.timestamp.signed.version + 1,
        reuse,
      );
      const timestamp = rest.pop()!;
      await this.#writeAll([...rest, ...rootFiles, timestamp]);
    }
    return {
      rootVersion: version,
      rootFile: join(this.metadataDir, `${version}.root.json`),
      rootSha256: sha256(rootBytes),
    };
  }
}
