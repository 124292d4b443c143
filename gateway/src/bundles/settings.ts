import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { invalid, PortcullisError, type Issue } from '../errors.js';
import type { BundleSettingsStore } from './service.js';
import { checkSidChanges, type RuleSource, type SidChange } from './sids.js';

/**
 * The admin's settings on top of the vendor's bundle, kept across updates: SID changes
 * (sids.ts) and extra plain Suricata rule sources (a rules file or an ET Open style
 * tarball, by URL or file) trusted by the sha256 the admin pinned: nothing signs them, so
 * the dashboard and the API say so.
 */

/** An extra rule source. */
export interface ExtraSource {
  /** Its group name for SID changes (`group:<name>`): a-z, 0-9, _ and -. */
  readonly name: string;
  /** An http(s) URL or an absolute file path: a `.rules` file or a gzipped tar of them. */
  readonly location: string;
  /** The sha256 the admin pinned, of the bytes at `location`. */
  readonly sha256: string;
}

/** The settings file's content. */
export interface BundleSettings {
  readonly sids: readonly SidChange[];
  readonly sources: readonly ExtraSource[];
}

/**
 * Check extra sources as the API and the CLI give them.
 * @throws REQUEST_INVALID naming each bad field.
 */
export function checkExtraSources(value: readonly ExtraSource[]): readonly ExtraSource[] {
  const issues: Issue[] = [];
  const names = new Set<string>();
  value.forEach((s, i) => {
    if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(s.name) || s.name === 'vendor')
      issues.push({ path: `/${i}/name`, message: 'must be a-z, 0-9, _ and - (not "vendor")' });
    if (names.has(s.name)) issues.push({ path: `/${i}/name`, message: 'is given twice' });
    names.add(s.name);
    if (!/^https?:\/\//.test(s.location) && !s.location.startsWith('/'))
      issues.push({ path: `/${i}/location`, message: 'must be an http(s) URL or an absolute file path' });
    if (!/^[0-9a-f]{64}$/.test(s.sha256))
      issues.push({
        path: `/${i}/sha256`,
        message: 'must be the 64 lower-case hex digits of the sha256 you checked',
      });
  });
  if (issues.length > 0) throw invalid('REQUEST_INVALID', 'extra rule sources are invalid', issues);
  return value;
}

/** The `.rules` files of a gzipped tar at any depth, concatenated (GNU tar to stdout: nothing is written to disk, links yield nothing). */
function rulesOfTarball(data: Buffer, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'tar',
      ['-xzO', '--wildcards', '*.rules'],
      { maxBuffer: 512 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new PortcullisError(
              'BUNDLE_CORRUPT',
              `extra source ${name} is not a gzipped tar of .rules files: ${stderr.trim() || err.message}`,
              {
                cause: err,
              },
            ),
          );
        else resolve(stdout);
      },
    );
    child.stdin?.end(data);
  });
}

/**
 * Fetch one extra source and check it against its pinned sha256.
 * @throws BUNDLE_FETCH_FAILED, BUNDLE_TAMPERED (another sha256), BUNDLE_CORRUPT.
 */
export async function fetchExtraSource(s: ExtraSource, fetchFn: typeof fetch = fetch): Promise<RuleSource> {
  let data: Buffer;
  try {
    if (s.location.startsWith('/')) data = await readFile(s.location);
    else {
      const res = await fetchFn(s.location, { signal: AbortSignal.timeout(300_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      data = Buffer.from(await res.arrayBuffer());
    }
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_FETCH_FAILED',
      `extra source ${s.name} (${s.location}) cannot be read: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const sha = createHash('sha256').update(data).digest('hex');
  if (sha !== s.sha256)
    throw new PortcullisError(
      'BUNDLE_TAMPERED',
      `extra source ${s.name} (${s.location}) has sha256 ${sha}, not the pinned ${s.sha256}: check the new file and pin its hash, or it stays out`,
      { context: { source: s.name, sha256: sha, pinned: s.sha256 } },
    );
  const gz = data.length > 2 && data[0] === 0x1f && data[1] === 0x8b;
  return { group: s.name, text: gz ? await rulesOfTarball(data, s.name) : data.toString('utf8') };
}

/** {@link BundleSettingsStore} in one JSON file, replaced atomically. */
export class JsonBundleSettings implements BundleSettingsStore {
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  async read(): Promise<BundleSettings> {
    try {
      const doc = JSON.parse(await readFile(this.#file, 'utf8')) as Partial<BundleSettings>;
      return { sids: doc.sids ?? [], sources: doc.sources ?? [] };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { sids: [], sources: [] };
      throw new PortcullisError(
        'STORE_FAILED',
        `bundle settings ${this.#file} are damaged: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async write(next: BundleSettings): Promise<void> {
    checkSidChanges(next.sids);
    checkExtraSources(next.sources);
    const tmp = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify(next, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file);
  }

  async sids(): Promise<readonly SidChange[]> {
    return (await this.read()).sids;
  }

  async extraSources(): Promise<readonly RuleSource[]> {
    const out: RuleSource[] = [];
    for (const s of (await this.read()).sources) out.push(await fetchExtraSource(s));
    return out;
  }
}
