import { invalid, type Issue } from '../../gateway/src/errors.js';

/**
 * The rule bundle format, shared by the vendor side (`portcullis bundle build`) and the
 * appliance (gateway/src/bundles/). A bundle is one gzipped ustar archive: `manifest.json`
 * first, then every file it lists, laid out as the appliance uses them:
 *
 * | path | what |
 * |---|---|
 * | `suricata.rules` | Suricata rules, loaded before the appliance's local rules |
 * | `safesearch.json` | SafeSearch map: engine → safe endpoint and the names rewritten to it |
 * | `lists/categories/<name>.txt` | category domain lists |
 * | `lists/services/<name>.txt` | service domain lists (YouTube, TikTok, …) |
 * | `lists/doh.txt` | DNS-over-HTTPS resolver names |
 * | `lists/bypass/<name>.txt` | address lists of the ways around the filter (DoH, VPN, Tor endpoints) |
 *
 * `lists/` is the layout of `dns.listsDir`, so an installed bundle's `lists/` can be pointed
 * at directly. Pure: no I/O here.
 */

/** The manifest's file name inside the archive. Always the first entry. */
export const MANIFEST_PATH = 'manifest.json';

/** Manifest format version this code writes and reads. */
export const MANIFEST_FORMAT = 1;

/** One file of a bundle, as the manifest lists it. */
export interface BundleFile {
  /** Path inside the bundle (see {@link bundleFileKind}). */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  /** SHA-256 of the content, lower-case hex. */
  readonly sha256: string;
}

/** `manifest.json`: what a bundle is and everything it holds. */
export interface BundleManifest {
  /** Always {@link MANIFEST_FORMAT}. */
  readonly format: typeof MANIFEST_FORMAT;
  /** Bundle name (`portcullis-default`): lower-case letters, digits, `-`; 1-64 characters. */
  readonly name: string;
  /** Release channel (`stable`, `beta`): same characters as the name. */
  readonly channel: string;
  /** Rises with every release of this name and channel; the appliance refuses anything not above what it has. 1 to 2^53-1. */
  readonly version: number;
  /** When it was built, ISO 8601 UTC. */
  readonly created: string;
  /** The oldest appliance version (`major.minor.patch`) that can use it. */
  readonly minApplianceVersion: string;
  /** Every file but the manifest, sorted by path. */
  readonly files: readonly BundleFile[];
}

/** What a bundle file is, by its path. */
export type BundleFileKind =
  'suricata-rules' | 'safesearch' | 'category-list' | 'service-list' | 'doh-names' | 'bypass-addresses';

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/;
const LIST_NAME = /^[a-z0-9][a-z0-9_-]{0,63}\.txt$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SEMVER = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;

/** Longest path inside a bundle, in characters. */
export const MAX_BUNDLE_PATH = 200;

/**
 * Whether a path is safe to create under an install folder: relative, `/`-separated,
 * every segment of letters, digits, `.`, `_`, `-`, not starting with `.` (so no `.`,
 * `..` or hidden files), at most {@link MAX_BUNDLE_PATH} characters.
 */
export function isSafeBundlePath(path: string): boolean {
  if (path.length === 0 || path.length > MAX_BUNDLE_PATH) return false;
  return path.split('/').every((s) => SEGMENT.test(s));
}

/** The kind of a bundle file by its path; undefined for a path the format does not know. */
export function bundleFileKind(path: string): BundleFileKind | undefined {
  if (path === 'suricata.rules') return 'suricata-rules';
  if (path === 'safesearch.json') return 'safesearch';
  if (path === 'lists/doh.txt') return 'doh-names';
  const parts = path.split('/');
  if (parts.length !== 3 || parts[0] !== 'lists' || !LIST_NAME.test(parts[2]!)) return undefined;
  switch (parts[1]) {
    case 'categories':
      return 'category-list';
    case 'services':
      return 'service-list';
    case 'bypass':
      return 'bypass-addresses';
    default:
      return undefined;
  }
}

/** Whether `name` may be a bundle or channel name. */
export function isBundleName(name: string): boolean {
  return NAME.test(name);
}

/** Parse `major.minor.patch`; undefined if it is not one. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = SEMVER.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Compare two `major.minor.patch` versions: negative, 0 or positive. Both must parse. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new TypeError(`not a major.minor.patch version: ${pa ? b : a}`);
  return pa[0] - pb[0] || pa[1] - pb[1] || pa[2] - pb[2];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Check a parsed `manifest.json`. Every problem is collected and reported at once.
 * @throws BUNDLE_MANIFEST_INVALID naming each bad field.
 */
export function parseManifest(value: unknown): BundleManifest {
  const issues: Issue[] = [];
  const add = (path: string, message: string): void => void issues.push({ path, message });
  if (!isRecord(value)) {
    throw invalid('BUNDLE_MANIFEST_INVALID', 'manifest.json is invalid', [
      { path: '/', message: 'must be a JSON object' },
    ]);
  }
  const known = new Set(['format', 'name', 'channel', 'version', 'created', 'minApplianceVersion', 'files']);
  for (const k of Object.keys(value)) if (!known.has(k)) add(`/${k}`, 'unknown field');
  if (value.format !== MANIFEST_FORMAT) add('/format', `must be ${MANIFEST_FORMAT}`);
  for (const k of ['name', 'channel'] as const) {
    const v = value[k];
    if (typeof v !== 'string' || !NAME.test(v)) add(`/${k}`, 'must be 1-64 of a-z, 0-9 and -');
  }
  const version = value.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    add('/version', 'must be an integer from 1 to 2^53-1');
  }
  const created = value.created;
  if (
    typeof created !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(created) ||
    Number.isNaN(Date.parse(created))
  ) {
    add('/created', 'must be an ISO 8601 UTC time (2026-12-02T10:00:00Z)');
  }
  const min = value.minApplianceVersion;
  if (typeof min !== 'string' || !parseVersion(min)) add('/minApplianceVersion', 'must be major.minor.patch');
  const files = value.files;
  if (!Array.isArray(files)) {
    add('/files', 'must be an array');
  } else {
    let previous = '';
    files.forEach((f: unknown, i) => {
      const at = `/files/${i}`;
      if (!isRecord(f)) return add(at, 'must be an object');
      for (const k of Object.keys(f))
        if (!['path', 'size', 'sha256'].includes(k)) add(`${at}/${k}`, 'unknown field');
      const path = f.path;
      if (typeof path !== 'string' || !isSafeBundlePath(path)) {
        add(
          `${at}/path`,
          'must be a relative path of letters, digits, . _ - segments (no .., no leading dot)',
        );
      } else {
        if (bundleFileKind(path) === undefined) add(`${at}/path`, `"${path}" is not a file the format knows`);
        if (path <= previous) add(`${at}/path`, 'files must be sorted by path, each once');
        previous = path;
      }
      if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) {
        add(`${at}/size`, 'must be a non-negative integer (bytes)');
      }
      if (typeof f.sha256 !== 'string' || !SHA256.test(f.sha256))
        add(`${at}/sha256`, 'must be 64 lower-case hex digits');
    });
  }
  if (issues.length > 0) throw invalid('BUNDLE_MANIFEST_INVALID', 'manifest.json is invalid', issues);
  return value as unknown as BundleManifest;
}

/**
 * The bundle's TUF target path for a name and channel: one target per channel, replaced by
 * each release; the repository stores each release under its hash (consistent snapshots).
 */
export function bundleTargetPath(name: string, channel: string): string {
  return `${name}/${channel}.tar.gz`;
}

/** What the targets metadata says about a bundle (`custom` of its target): signed by the targets role. */
export interface BundleTargetInfo {
  readonly name: string;
  readonly channel: string;
  readonly version: number;
  readonly minApplianceVersion: string;
}

/** Read a target's `custom.portcullis`; undefined if it is missing or malformed. */
export function bundleTargetInfo(custom: Record<string, unknown>): BundleTargetInfo | undefined {
  const p = custom.portcullis;
  if (!isRecord(p)) return undefined;
  const { name, channel, version, minApplianceVersion } = p;
  if (typeof name !== 'string' || !NAME.test(name)) return undefined;
  if (typeof channel !== 'string' || !NAME.test(channel)) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) return undefined;
  if (typeof minApplianceVersion !== 'string' || !parseVersion(minApplianceVersion)) return undefined;
  return { name, channel, version, minApplianceVersion };
}

/** One engine of the SafeSearch map. */
export interface SafeSearchEngine {
  /** The safe endpoint the names are answered with (a CNAME). */
  readonly target: string;
  /** A second, moderate endpoint (YouTube). */
  readonly moderateTarget?: string;
  /** Names rewritten exactly. */
  readonly names?: readonly string[];
  /** A regular expression of names rewritten (Google's country domains). */
  readonly pattern?: string;
}

/** `safesearch.json`: engine name → how it is made safe. */
export type SafeSearchMap = Readonly<Record<string, SafeSearchEngine>>;

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/**
 * Check a parsed `safesearch.json`.
 * @throws BUNDLE_INVALID naming each bad field.
 */
export function parseSafeSearchMap(value: unknown): SafeSearchMap {
  const issues: Issue[] = [];
  if (!isRecord(value) || Object.keys(value).length === 0) {
    issues.push({ path: '/', message: 'must be an object of engines' });
  } else {
    for (const [engine, e] of Object.entries(value)) {
      const at = `/${engine}`;
      if (!NAME.test(engine)) issues.push({ path: at, message: 'engine names are a-z, 0-9 and -' });
      if (!isRecord(e)) {
        issues.push({ path: at, message: 'must be an object' });
        continue;
      }
      for (const k of Object.keys(e)) {
        if (!['target', 'moderateTarget', 'names', 'pattern'].includes(k)) {
          issues.push({ path: `${at}/${k}`, message: 'unknown field' });
        }
      }
      for (const k of ['target', 'moderateTarget'] as const) {
        if ((k === 'target' || e[k] !== undefined) && (typeof e[k] !== 'string' || !HOSTNAME.test(e[k]))) {
          issues.push({ path: `${at}/${k}`, message: 'must be a lower-case host name' });
        }
      }
      if (e.names === undefined && e.pattern === undefined) {
        issues.push({ path: at, message: 'needs names, a pattern or both' });
      }
      if (e.names !== undefined) {
        if (!Array.isArray(e.names)) issues.push({ path: `${at}/names`, message: 'must be an array' });
        else {
          e.names.forEach((n: unknown, i) => {
            if (typeof n !== 'string' || !HOSTNAME.test(n)) {
              issues.push({ path: `${at}/names/${i}`, message: 'must be a lower-case host name' });
            }
          });
        }
      }
      if (e.pattern !== undefined) {
        try {
          if (typeof e.pattern !== 'string' || !e.pattern.startsWith('^') || !e.pattern.endsWith('$')) {
            throw new Error('must be a string anchored with ^ and $');
          }
          new RegExp(e.pattern);
        } catch (err) {
          issues.push({ path: `${at}/pattern`, message: (err as Error).message });
        }
      }
    }
  }
  if (issues.length > 0) throw invalid('BUNDLE_INVALID', 'safesearch.json is invalid', issues);
  return value as SafeSearchMap;
}
