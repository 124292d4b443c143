import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Updater, type TargetFile } from 'tuf-js';
import { PortcullisError, type ErrorCode } from '../errors.js';
import { bundleTargetInfo, bundleTargetPath, type BundleTargetInfo } from '../../../rules/src/format.js';
import { DEFAULT_UNPACK_LIMITS, unpackArchive, type UnpackLimits } from './archive.js';
import { BundleFetcher, repositoryUrl } from './fetcher.js';
import { JsonBundleState, type BundleStateStore, type InstalledBundle } from './state.js';
import { checkCompatible, checkManifest, checkRollback } from './verify.js';

/**
 * The appliance's side of rule updates: a TUF client (tuf-js) that starts from the root of
 * trust shipped with the appliance, fetches the vendor's repository over http(s) or from a
 * local folder, verifies the whole metadata chain (signatures and thresholds, expiry,
 * versions, lengths and hashes), downloads the channel's bundle within a size limit,
 * unpacks it into a new folder `versions/<version>/` without trusting the archive
 * (archive.ts), checks it against its manifest and the signed target, and only then records
 * it as installed: the anti-rollback floor. Any failure leaves the installed bundle, its
 * folder and the recorded state as they were, and throws a PortcullisError whose code says
 * what failed (BUNDLE_SIGNATURE_INVALID, BUNDLE_EXPIRED, BUNDLE_ROLLBACK, BUNDLE_TAMPERED,
 * BUNDLE_UNSAFE_ARCHIVE, BUNDLE_TOO_LARGE, BUNDLE_CORRUPT, BUNDLE_MANIFEST_INVALID,
 * BUNDLE_INCOMPATIBLE, BUNDLE_NOT_FOUND, BUNDLE_FETCH_FAILED).
 *
 * Switching the running service to a new bundle (staging with `suricata -T`, the live switch,
 * health check, rollback to the previous folder) is the caller's: this only installs.
 *
 * Layout under `dataDir`:
 * ```
 * metadata/      trusted TUF metadata (root.json seeded from the shipped root)
 * downloads/     the archive while it is verified and unpacked
 * versions/<n>/  unpacked bundles
 * state.json     the installed bundle (JsonBundleState, unless another store is given)
 * ```
 */

/** Limits of an update. */
export interface BundleLimits extends UnpackLimits {
  /** Largest archive downloaded, in bytes. Default 64 MiB. */
  readonly maxDownloadBytes: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = Object.freeze({
  ...DEFAULT_UNPACK_LIMITS,
  maxDownloadBytes: 64 * 1024 * 1024,
});

/** Progress of an update. */
export interface BundleProgress {
  readonly phase: 'download' | 'unpack';
  /** Bytes so far: downloaded, or decompressed. */
  readonly bytes: number;
  /** Bytes expected: the signed length of the download; undefined while unpacking. */
  readonly total: number | undefined;
}

/** Options of {@link BundleUpdater}. */
export interface BundleUpdaterOptions {
  /** The repository: an http(s) URL or a local folder (its `metadata/` and `targets/` below it). */
  readonly source: string;
  /** The root of trust shipped with the appliance (the vendor's `metadata/1.root.json`). */
  readonly trustedRoot: string;
  /** Where metadata, downloads, unpacked versions and the state live. */
  readonly dataDir: string;
  /** Bundle name, e.g. `portcullis-default`. */
  readonly name: string;
  /** Channel, e.g. `stable`. */
  readonly channel: string;
  /** This appliance's version (`major.minor.patch`), checked against the bundle's minimum. */
  readonly applianceVersion: string;
  /** Where the installed bundle is remembered. Default `<dataDir>/state.json`. */
  readonly state?: BundleStateStore;
  /** Overrides of {@link DEFAULT_BUNDLE_LIMITS}. */
  readonly limits?: Partial<BundleLimits>;
  /** Per file, in ms. Default 300,000. */
  readonly fetchTimeoutMs?: number;
  /** PEM of a CA trusted for the repository's https besides Node's public roots. */
  readonly ca?: string;
  /** Called as the download and the unpacking progress. */
  readonly onProgress?: (p: BundleProgress) => void;
}

/** What {@link BundleUpdater.check} found. */
export interface BundleCheck {
  /** The installed version, if any. */
  readonly installed: number | undefined;
  /** What the repository offers on this channel, verified. */
  readonly available: BundleTargetInfo;
  /** Whether {@link BundleUpdater.update} would install it. */
  readonly newer: boolean;
}

/** What {@link BundleUpdater.update} did. */
export type BundleUpdateResult =
  | {
      readonly status: 'installed';
      readonly bundle: InstalledBundle;
      readonly previous: InstalledBundle | undefined;
    }
  | { readonly status: 'current'; readonly bundle: InstalledBundle };

/** The last error tuf-js met, with where, before it may be wrapped into a RuntimeError. */
interface Seen {
  readonly err: unknown;
  readonly where: string;
  /** updateSnapshot only: whether the new snapshot was already taken (its final checks failed). */
  readonly assigned?: boolean;
}

/** Names of an error's classes, most derived first (tuf-js exports few of its error classes). */
function classNames(err: unknown): string[] {
  const names: string[] = [];
  for (
    let p = Object.getPrototypeOf(err) as object | null;
    p && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    const n = (p.constructor as { name?: string } | undefined)?.name;
    if (n) names.push(n);
  }
  return names;
}

const TUF_METHODS = ['updateRoot', 'updateTimestamp', 'updateSnapshot', 'updateDelegatedTargets'] as const;

/**
 * Record every verification error tuf-js's trusted metadata set throws. tuf-js wraps
 * snapshot and targets failures into a RuntimeError whose only trace of the cause is its
 * message; this keeps the typed original so no message is ever parsed.
 * @throws INTERNAL if tuf-js no longer has the trusted set this relies on (a major upgrade).
 */
function instrument(updater: Updater, record: (s: Seen) => void): void {
  const set = (updater as unknown as { trustedSet?: Record<string, unknown> }).trustedSet;
  if (!set || TUF_METHODS.some((m) => typeof set[m] !== 'function')) {
    throw new PortcullisError(
      'INTERNAL',
      "tuf-js's Updater has no trustedSet with updateRoot/updateTimestamp/updateSnapshot/updateDelegatedTargets: check gateway/src/bundles/updater.ts against the tuf-js version installed",
    );
  }
  for (const m of TUF_METHODS) {
    const original = set[m] as (...args: unknown[]) => unknown;
    set[m] = (...args: unknown[]): unknown => {
      const before = set.snapshot;
      try {
        return original.apply(set, args);
      } catch (err) {
        record({ err, where: m, assigned: m === 'updateSnapshot' ? set.snapshot !== before : undefined });
        throw err;
      }
    };
  }
}

/**
 * Turn a tuf-js failure into a PortcullisError with a precise code.
 * @param thrown what tuf-js threw.
 * @param seen the last error recorded at its source (verification or download).
 */
export function classifyTufError(thrown: unknown, seen: Seen | undefined): PortcullisError {
  if (thrown instanceof PortcullisError) return thrown;
  let s: Seen = { err: thrown, where: 'update' };
  // a RuntimeError from the snapshot/targets steps wraps the error recorded last
  if (classNames(thrown)[0] === 'RuntimeError' && seen) s = seen;
  const err = s.err;
  if (err instanceof PortcullisError) return err;
  const names = classNames(err);
  const message = err instanceof Error ? err.message : String(err);
  const is = (n: string): boolean => names.includes(n);
  const make = (code: ErrorCode, text: string, context: Record<string, unknown> = {}): PortcullisError =>
    new PortcullisError(code, `${text} (${message})`, { cause: err, context: { ...context, step: s.where } });
  if (is('UnsignedMetadataError')) {
    return make(
      'BUNDLE_SIGNATURE_INVALID',
      'repository metadata is not signed by the keys the trusted root requires',
    );
  }
  if (is('ExpiredMetadataError')) {
    return make(
      'BUNDLE_EXPIRED',
      'repository metadata has expired: the repository is stale or frozen by an attacker',
    );
  }
  if (is('BadVersionError')) {
    const mismatch =
      s.where === 'updateDelegatedTargets' || (s.where === 'updateSnapshot' && s.assigned === true);
    return mismatch
      ? make(
          'BUNDLE_TAMPERED',
          'repository metadata does not match the version the metadata above it names (mix-and-match)',
        )
      : make('BUNDLE_ROLLBACK', 'repository metadata is older than metadata this appliance already trusts');
  }
  if (is('LengthOrHashMismatchError') || is('DownloadLengthMismatchError')) {
    return make('BUNDLE_TAMPERED', 'a file does not match the length or hash its signed metadata gives');
  }
  if (is('DownloadHTTPError')) {
    const status = (err as { statusCode?: number }).statusCode;
    return make('BUNDLE_FETCH_FAILED', `the repository answered ${status ?? 'an error'}`, { status });
  }
  if (is('RepositoryError') || is('ValueError') || is('SyntaxError')) {
    return make('BUNDLE_TAMPERED', 'repository metadata is malformed or of the wrong kind');
  }
  if (is('TypeError') || is('DOMException') || (err as NodeJS.ErrnoException).code !== undefined) {
    return make('BUNDLE_FETCH_FAILED', 'the repository could not be reached');
  }
  return make('BUNDLE_FETCH_FAILED', 'the update failed');
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Checks and installs rule bundles from a TUF repository. One update at a time. */
export class BundleUpdater {
  readonly #o: BundleUpdaterOptions;
  readonly #state: BundleStateStore;
  readonly #limits: BundleLimits;
  #busy = false;

  constructor(options: BundleUpdaterOptions) {
    this.#o = options;
    this.#state = options.state ?? new JsonBundleState(join(options.dataDir, 'state.json'));
    this.#limits = { ...DEFAULT_BUNDLE_LIMITS, ...options.limits };
  }

  /** The folder unpacked bundles live in. */
  get versionsDir(): string {
    return join(this.#o.dataDir, 'versions');
  }

  /** The installed bundle, if any. */
  installed(): Promise<InstalledBundle | undefined> {
    return this.#state.load();
  }

  /** A fresh tuf-js client over the trusted metadata, with errors recorded at their source. */
  async #client(): Promise<{ updater: Updater; fetcher: BundleFetcher; seen: () => Seen | undefined }> {
    const metadataDir = join(this.#o.dataDir, 'metadata');
    const downloads = join(this.#o.dataDir, 'downloads');
    await mkdir(metadataDir, { recursive: true });
    await mkdir(downloads, { recursive: true });
    const trusted = join(metadataDir, 'root.json');
    if (!(await stat(trusted).catch(() => undefined))) {
      try {
        JSON.parse(await readFile(this.#o.trustedRoot, 'utf8'));
        await copyFile(this.#o.trustedRoot, trusted);
      } catch (cause) {
        throw new PortcullisError(
          'CONFIG_INVALID',
          `the shipped root of trust ${this.#o.trustedRoot} cannot be read: ${(cause as Error).message}`,
          { cause },
        );
      }
    }
    let seen: Seen | undefined;
    const record = (s: Seen): void => {
      seen = s;
    };
    const fetcher = new BundleFetcher({
      timeoutMs: this.#o.fetchTimeoutMs,
      ...(this.#o.ca !== undefined ? { ca: this.#o.ca } : {}),
      onError: (err) => record({ err, where: 'download' }),
    });
    const base = repositoryUrl(this.#o.source);
    let updater: Updater;
    try {
      updater = new Updater({
        metadataDir,
        metadataBaseUrl: new URL('metadata/', base).href,
        targetBaseUrl: new URL('targets/', base).href,
        targetDir: downloads,
        fetcher,
        config: { prefixTargetsWithHash: true },
      });
    } catch (err) {
      throw classifyTufError(err, undefined);
    }
    instrument(updater, record);
    return { updater, fetcher, seen: () => seen };
  }

  /** Refresh the metadata and read the channel's target. */
  async #target(): Promise<{
    updater: Updater;
    fetcher: BundleFetcher;
    seen: () => Seen | undefined;
    target: TargetFile;
    info: BundleTargetInfo;
  }> {
    const client = await this.#client();
    const path = bundleTargetPath(this.#o.name, this.#o.channel);
    let target: TargetFile | undefined;
    try {
      await client.updater.refresh();
      target = await client.updater.getTargetInfo(path);
    } catch (err) {
      throw classifyTufError(err, client.seen());
    }
    if (!target) {
      throw new PortcullisError('BUNDLE_NOT_FOUND', `the repository has no bundle ${path}`, {
        context: { path },
      });
    }
    const info = bundleTargetInfo(target.custom);
    if (!info || info.name !== this.#o.name || info.channel !== this.#o.channel) {
      throw new PortcullisError(
        'BUNDLE_MANIFEST_INVALID',
        `the signed target ${path} does not describe a ${this.#o.name}/${this.#o.channel} bundle (custom.portcullis is missing or different)`,
        { context: { path, custom: target.custom } },
      );
    }
    return { ...client, target, info };
  }

  /**
   * Verify the repository and say what it offers; downloads metadata only.
   * @throws like {@link update}, for the metadata steps.
   */
  async check(): Promise<BundleCheck> {
    const { info } = await this.#target();
    const installed = (await this.#state.load())?.version;
    return { installed, available: info, newer: installed === undefined || info.version > installed };
  }

  /**
   * Install the channel's bundle if it is newer than the installed one. Nothing of the
   * installed state changes unless every check passed.
   */
  async update(): Promise<BundleUpdateResult> {
    if (this.#busy) throw new PortcullisError('CONFLICT', 'a bundle update is already running');
    this.#busy = true;
    try {
      return await this.#update();
    } finally {
      this.#busy = false;
    }
  }

  async #update(): Promise<BundleUpdateResult> {
    const { updater, fetcher, seen, target, info } = await this.#target();
    const previous = await this.#state.load();
    if (previous && info.version === previous.version && target.hashes.sha256 === previous.sha256) {
      return { status: 'current', bundle: previous };
    }
    checkRollback(info.version, previous?.version);
    checkCompatible(info.minApplianceVersion, this.#o.applianceVersion);
    if (target.length > this.#limits.maxDownloadBytes) {
      throw new PortcullisError(
        'BUNDLE_TOO_LARGE',
        `the bundle is ${target.length} bytes, over the download limit of ${this.#limits.maxDownloadBytes}`,
        {
          context: {
            limit: 'download',
            length: target.length,
            maxDownloadBytes: this.#limits.maxDownloadBytes,
          },
        },
      );
    }
    const downloads = join(this.#o.dataDir, 'downloads');
    const file = join(downloads, `${info.name}-${info.channel}-${info.version}.tar.gz`);
    await mkdir(this.versionsDir, { recursive: true });
    const staging = await mkdtemp(join(this.versionsDir, `.staging-${info.version}-`));
    const progress = this.#o.onProgress;
    try {
      fetcher.onBytes = progress && ((bytes) => progress({ phase: 'download', bytes, total: target.length }));
      try {
        await updater.downloadTarget(target, file);
      } catch (err) {
        throw classifyTufError(err, seen());
      } finally {
        fetcher.onBytes = undefined;
      }
      const unpacked = await unpackArchive(
        file,
        staging,
        this.#limits,
        progress && ((bytes) => progress({ phase: 'unpack', bytes, total: undefined })),
      );
      checkManifest(unpacked.manifest, unpacked.files, info);
      const dir = join(this.versionsDir, String(info.version));
      // a folder of this version can only be left from an update that failed before
      // recording it (the version is above the installed one)
      await rm(dir, { recursive: true, force: true });
      await rename(staging, dir);
      const bundle: InstalledBundle = {
        name: info.name,
        channel: info.channel,
        version: info.version,
        sha256: await sha256File(file),
        dir,
        installedAt: new Date().toISOString(),
      };
      await this.#state.save(bundle);
      return { status: 'installed', bundle, previous };
    } finally {
      await rm(staging, { recursive: true, force: true });
      await rm(file, { force: true });
    }
  }
}
