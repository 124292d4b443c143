import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { invalid, PortcullisError, type Issue } from '../../gateway/src/errors.js';
import { parseListFile } from '../../gateway/src/dns/lists.js';
import { parseAddressList } from '../../gateway/src/policy/address-list.js';
import {
  bundleFileKind,
  isBundleName,
  isSafeBundlePath,
  MANIFEST_FORMAT,
  MANIFEST_PATH,
  parseManifest,
  parseSafeSearchMap,
  parseVersion,
  type BundleFile,
  type BundleManifest,
} from './format.js';
import { writeTar, type TarEntry } from './tar.js';

/**
 * `portcullis bundle build`: a source tree laid out as the bundle (see format.ts) becomes
 * one gzipped tarball with `manifest.json` first. Every file is checked as the appliance
 * would read it (lists parse with no bad line, addresses are addresses, the SafeSearch map
 * is well-formed, Suricata rule lines start with an action), so a broken list is caught
 * before it is signed.
 *
 * The default bundle's source tree is `rules/` itself: `rules/bundle.json` (name, channel,
 * minimum appliance version), `rules/suricata.rules`, `rules/safesearch.json` and
 * `rules/lists/` (the lists the service also reads in place today). Only those are read;
 * `README.md` files under `lists/` are skipped, anything else there is an error.
 */

/** `bundle.json` at the top of a source tree: defaults for the build. */
export interface BundleSource {
  readonly name: string;
  readonly channel: string;
  readonly minApplianceVersion: string;
}

/** Options of {@link buildBundle}. */
export interface BuildOptions {
  /** The source tree. */
  readonly src: string;
  /** The release's version: an integer above every earlier release of this name and channel. */
  readonly version: number;
  /** Overrides of `bundle.json`. */
  readonly name?: string;
  readonly channel?: string;
  readonly minApplianceVersion?: string;
  /** Build time; also every archive entry's mtime. Default now. */
  readonly created?: Date;
}

/** A built bundle. */
export interface BuiltBundle {
  /** The .tar.gz bytes. */
  readonly archive: Buffer;
  readonly manifest: BundleManifest;
  /** sha256 of the archive, hex. */
  readonly sha256: string;
}

const TOP_FILES = ['suricata.rules', 'safesearch.json'] as const;
const SURICATA_ACTION = /^(alert|drop|pass|reject|rejectsrc|rejectdst|rejectboth|config)\s/;

async function readSource(src: string): Promise<BundleSource> {
  const file = join(src, 'bundle.json');
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `${file} is missing or not JSON ({"name", "channel", "minApplianceVersion"}): ${(cause as Error).message}`,
      { cause },
    );
  }
  const d = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  return {
    name: String(d.name ?? ''),
    channel: String(d.channel ?? ''),
    minApplianceVersion: String(d.minApplianceVersion ?? ''),
  };
}

async function walk(root: string, rel: string, out: string[], issues: Issue[]): Promise<void> {
  const dir = join(root, rel);
  for (const name of (await readdir(dir)).sort()) {
    const path = `${rel}/${name}`;
    const st = await lstat(join(root, path));
    if (st.isDirectory()) await walk(root, path, out, issues);
    else if (name === 'README.md') continue;
    else if (!st.isFile())
      issues.push({ path, message: 'is not a regular file (links and devices are not bundled)' });
    else if (!isSafeBundlePath(path) || bundleFileKind(path) === undefined) {
      issues.push({
        path,
        message:
          'is not a bundle file: lists/categories/<name>.txt, lists/services/<name>.txt, lists/doh.txt or lists/bypass/<name>.txt (names of a-z, 0-9, _ and -)',
      });
    } else out.push(path);
  }
}

/** Check one file's content as the appliance will read it. */
async function checkContent(path: string, data: Buffer, issues: Issue[]): Promise<void> {
  const kind = bundleFileKind(path);
  try {
    switch (kind) {
      case 'suricata-rules': {
        const text = data.toString('utf8');
        text.split('\n').forEach((line, i) => {
          const l = line.trim();
          if (l === '' || l.startsWith('#')) return;
          if (!SURICATA_ACTION.test(l))
            issues.push({ path: `${path}:${i + 1}`, message: 'is not a Suricata rule' });
        });
        return;
      }
      case 'safesearch':
        parseSafeSearchMap(JSON.parse(data.toString('utf8')));
        return;
      case 'bypass-addresses':
        parseAddressList(data.toString('utf8'), path);
        return;
      case 'category-list':
      case 'service-list':
      case 'doh-names':
        await parseListFile(data, path, { maxInvalidLines: 0, maxInvalidRatio: 0 });
        return;
      default:
        issues.push({ path, message: 'is not a bundle file' });
    }
  } catch (err) {
    issues.push({ path, message: (err as Error).message });
  }
}

/**
 * Build a bundle from a source tree.
 * @throws BUNDLE_INVALID listing every problem of the tree (bad names, bad content, bad options).
 */
export async function buildBundle(options: BuildOptions): Promise<BuiltBundle> {
  const source = await readSource(options.src);
  const name = options.name ?? source.name;
  const channel = options.channel ?? source.channel;
  const minApplianceVersion = options.minApplianceVersion ?? source.minApplianceVersion;
  const issues: Issue[] = [];
  if (!isBundleName(name)) issues.push({ path: 'name', message: `"${name}": use 1-64 of a-z, 0-9 and -` });
  if (!isBundleName(channel))
    issues.push({ path: 'channel', message: `"${channel}": use 1-64 of a-z, 0-9 and -` });
  if (!parseVersion(minApplianceVersion)) {
    issues.push({
      path: 'minApplianceVersion',
      message: `"${minApplianceVersion}" is not major.minor.patch`,
    });
  }
  if (!Number.isSafeInteger(options.version) || options.version < 1) {
    issues.push({ path: 'version', message: `${options.version} is not an integer from 1 to 2^53-1` });
  }
  const paths: string[] = [];
  for (const f of TOP_FILES) {
    try {
      const st = await lstat(join(options.src, f));
      if (st.isFile()) paths.push(f);
      else issues.push({ path: f, message: 'is not a regular file' });
    } catch {
      // optional
    }
  }
  try {
    await walk(options.src, 'lists', paths, issues);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
  }
  if (paths.length === 0)
    issues.push({ path: '/', message: 'has no bundle files (suricata.rules, safesearch.json, lists/)' });
  paths.sort();
  const created = options.created ?? new Date();
  const mtime = Math.floor(created.getTime() / 1000);
  const files: BundleFile[] = [];
  const entries: TarEntry[] = [];
  for (const path of paths) {
    const data = await readFile(join(options.src, path));
    await checkContent(path, data, issues);
    files.push({ path, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    entries.push({ path, data, mtime });
  }
  if (issues.length > 0) throw invalid('BUNDLE_INVALID', `bundle source ${options.src} has problems`, issues);
  const manifest = parseManifest({
    format: MANIFEST_FORMAT,
    name,
    channel,
    version: options.version,
    created: created.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    minApplianceVersion,
    files,
  });
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  const archive = gzipSync(writeTar([{ path: MANIFEST_PATH, data: manifestBytes, mtime }, ...entries]), {
    level: 9,
  });
  return { archive, manifest, sha256: createHash('sha256').update(archive).digest('hex') };
}

/**
 * The manifest of a built bundle (its first entry), for `publish`: what to sign into the
 * target. Reads only the first header; the appliance checks the whole archive.
 * @throws BUNDLE_INVALID if the archive does not start with a manifest.
 */
export function readBundleManifest(archive: Buffer, origin: string): BundleManifest {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: 1024 ** 3 });
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `${origin} is not a gzipped bundle: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const name = tar.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  const size = parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
  if (name !== MANIFEST_PATH || !Number.isSafeInteger(size) || tar.length < 512 + size) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `${origin} does not start with ${MANIFEST_PATH}: build it with 'portcullis bundle build'`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(tar.subarray(512, 512 + size).toString('utf8'));
  } catch (cause) {
    throw new PortcullisError('BUNDLE_INVALID', `${origin}: ${MANIFEST_PATH} is not JSON`, { cause });
  }
  return parseManifest(doc);
}
