import { invalid, PortcullisError, type Issue } from '../errors.js';
import {
  compareVersions,
  parseManifest,
  type BundleManifest,
  type BundleTargetInfo,
} from '../../../rules/src/format.js';
import type { UnpackedFile } from './archive.js';

/**
 * Checks of an unpacked bundle against its manifest and against what the signed target
 * metadata promised, and the anti-rollback rule. Pure.
 */

/**
 * Whether a bundle may replace the installed one: its version must be above the installed
 * version (equal counts as a rollback too: a different bundle must not reuse a version).
 * @throws BUNDLE_ROLLBACK otherwise.
 */
export function checkRollback(offered: number, installed: number | undefined): void {
  if (installed !== undefined && offered <= installed) {
    throw new PortcullisError(
      'BUNDLE_ROLLBACK',
      `bundle version ${offered} is not above the installed version ${installed}; only newer bundles are accepted`,
      { context: { offered, installed } },
    );
  }
}

/**
 * Whether this appliance can run a bundle.
 * @throws BUNDLE_INCOMPATIBLE if the bundle needs a newer appliance.
 */
export function checkCompatible(minApplianceVersion: string, applianceVersion: string): void {
  if (compareVersions(minApplianceVersion, applianceVersion) > 0) {
    throw new PortcullisError(
      'BUNDLE_INCOMPATIBLE',
      `the bundle needs appliance version ${minApplianceVersion} or later; this appliance is ${applianceVersion}: update the appliance first`,
      { context: { minApplianceVersion, applianceVersion } },
    );
  }
}

/**
 * Check an unpacked bundle: the manifest is well-formed, says what the signed target said
 * (name, channel, version, minimum appliance version), and lists exactly the files the
 * archive held, with their sizes and sha256.
 * @param manifestBytes `manifest.json` as unpacked; undefined if the archive had none.
 * @throws BUNDLE_MANIFEST_INVALID naming every difference.
 */
export function checkManifest(
  manifestBytes: Buffer | undefined,
  files: readonly UnpackedFile[],
  expected: BundleTargetInfo,
): BundleManifest {
  if (!manifestBytes) {
    throw new PortcullisError('BUNDLE_MANIFEST_INVALID', 'the bundle has no manifest.json');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(manifestBytes.toString('utf8'));
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_MANIFEST_INVALID',
      `manifest.json is not JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const manifest = parseManifest(doc);
  const issues: Issue[] = [];
  for (const k of ['name', 'channel', 'version', 'minApplianceVersion'] as const) {
    if (manifest[k] !== expected[k]) {
      issues.push({
        path: `/${k}`,
        message: `is ${JSON.stringify(manifest[k])} but the signed target says ${JSON.stringify(expected[k])}`,
      });
    }
  }
  const found = new Map(files.map((f) => [f.path, f]));
  manifest.files.forEach((f, i) => {
    const got = found.get(f.path);
    found.delete(f.path);
    if (!got) return void issues.push({ path: `/files/${i}`, message: `${f.path} is not in the archive` });
    if (got.size !== f.size) {
      issues.push({
        path: `/files/${i}/size`,
        message: `${f.path} is ${got.size} bytes, the manifest says ${f.size}`,
      });
    }
    if (got.sha256 !== f.sha256) {
      issues.push({
        path: `/files/${i}/sha256`,
        message: `${f.path} has sha256 ${got.sha256}, the manifest says ${f.sha256}`,
      });
    }
  });
  for (const extra of found.keys()) {
    issues.push({ path: '/files', message: `${extra} is in the archive but not in the manifest` });
  }
  if (issues.length > 0)
    throw invalid('BUNDLE_MANIFEST_INVALID', 'the bundle does not match its manifest', issues);
  return manifest;
}
