import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { PortcullisError } from '../errors.js';

/**
 * What is installed: the anti-rollback floor. Behind a small interface so the service can
 * keep it in its store later; {@link JsonBundleState} keeps it in a JSON file.
 */

/** The newest bundle this appliance verified and unpacked. */
export interface InstalledBundle {
  readonly name: string;
  readonly channel: string;
  /** Bundles must rise above this. */
  readonly version: number;
  /** sha256 of the archive. */
  readonly sha256: string;
  /** Absolute path of its unpacked folder. */
  readonly dir: string;
  /** ISO 8601. */
  readonly installedAt: string;
}

/** Where the installed bundle is remembered. */
export interface BundleStateStore {
  /** The installed bundle, if any. */
  load(): Promise<InstalledBundle | undefined>;
  /** Remember a newly installed bundle; durable when it returns. */
  save(bundle: InstalledBundle): Promise<void>;
}

/** A {@link BundleStateStore} in one JSON file, replaced atomically (write, fsync, rename). */
export class JsonBundleState implements BundleStateStore {
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  async load(): Promise<InstalledBundle | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const doc = JSON.parse(text) as { installed?: InstalledBundle };
      const b = doc.installed;
      if (b === undefined) return undefined;
      if (typeof b.version !== 'number' || !Number.isSafeInteger(b.version))
        throw new Error('no integer version');
      return b;
    } catch (cause) {
      // refusing to guess: a lost floor would let an older bundle back in
      throw new PortcullisError(
        'STORE_FAILED',
        `bundle state ${this.#file} is damaged (${(cause as Error).message}); restore it or remove it to accept any signed version`,
        { cause },
      );
    }
  }

  async save(bundle: InstalledBundle): Promise<void> {
    const tmp = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify({ installed: bundle }, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file);
  }
}
