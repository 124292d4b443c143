import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

/**
 * The bundle folder of the appliance and its `current` link:
 *
 * ```
 * <dir>/versions/<n>/   unpacked bundles (BundleUpdater), each with its enforced.rules
 * <dir>/empty/          what is in force before any bundle: an empty enforced.rules, no lists
 * <dir>/current ->      versions/<n> or empty: what the service enforces (Suricata reads
 *                       current/enforced.rules, the lists come from current/lists/)
 * ```
 *
 * The switch is atomic: a new link is made beside `current` and renamed over it, so a
 * reader (Suricata at a restart, the service at a start) sees the old or the new version,
 * never none.
 */

/** The rules file Suricata reads in every version folder: the bundle's rules after the SID changes. */
export const ENFORCED_RULES = 'enforced.rules';

/** The version folder's name for "no bundle". */
export const EMPTY = 'empty';

/** The bundle folder of a data dir. */
export class BundleVersions {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  get versionsDir(): string {
    return join(this.dir, 'versions');
  }

  /** The path of the `current` link; `current/enforced.rules` is Suricata's first rule file. */
  get currentLink(): string {
    return join(this.dir, 'current');
  }

  /** The folder of a version (`undefined`: the empty one). */
  folder(version: number | undefined): string {
    return version === undefined ? join(this.dir, EMPTY) : join(this.versionsDir, String(version));
  }

  /** Make the empty folder and point `current` at it if it points nowhere. Idempotent. */
  async init(): Promise<void> {
    await mkdir(this.versionsDir, { recursive: true });
    await mkdir(this.folder(undefined), { recursive: true });
    await writeFile(join(this.folder(undefined), ENFORCED_RULES), '', { flag: 'a' });
    if ((await this.current()) === 'missing') await this.switchTo(undefined);
  }

  /** The version `current` points at; undefined for the empty folder, `missing` when there is no link. */
  async current(): Promise<number | undefined | 'missing'> {
    let target: string;
    try {
      target = await readlink(this.currentLink);
    } catch {
      return 'missing';
    }
    const name = basename(target);
    if (name === EMPTY) return undefined;
    const n = Number(name);
    return Number.isSafeInteger(n) ? n : 'missing';
  }

  /** Point `current` at a version (undefined: the empty folder), atomically. */
  async switchTo(version: number | undefined): Promise<void> {
    const target = version === undefined ? EMPTY : join('versions', String(version));
    const tmp = join(this.dir, `.current-${randomBytes(6).toString('hex')}`);
    await symlink(target, tmp);
    try {
      await rename(tmp, this.currentLink);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Unpacked versions, newest first. */
  async list(): Promise<number[]> {
    const names = await readdir(this.versionsDir).catch(() => [] as string[]);
    return names
      .filter((n) => /^[1-9]\d*$/.test(n))
      .map(Number)
      .sort((a, b) => b - a);
  }

  /** Remove one version's folder (never the current one). */
  async remove(version: number): Promise<void> {
    if ((await this.current()) === version) return;
    await rm(this.folder(version), { recursive: true, force: true });
  }

  /**
   * Keep the newest `keep` versions and the current one; remove the rest.
   * @returns the versions removed.
   */
  async prune(keep: number): Promise<number[]> {
    const current = await this.current();
    const all = await this.list();
    const gone = all.slice(Math.max(1, keep)).filter((v) => v !== current);
    for (const v of gone) await rm(this.folder(v), { recursive: true, force: true });
    return gone;
  }
}
