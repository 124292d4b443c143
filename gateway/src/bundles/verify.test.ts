import { describe, expect, it } from 'vitest';
import { checkCompatible, checkManifest, checkRollback } from './verify.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const info = { name: 'portcullis-default', channel: 'stable', version: 4, minApplianceVersion: '0.1.0' };
const manifest = {
  format: 1,
  ...info,
  created: '2026-12-02T10:00:00Z',
  files: [
    { path: 'lists/doh.txt', size: 3, sha256: A },
    { path: 'suricata.rules', size: 5, sha256: B },
  ],
};
const bytes = (m: unknown): Buffer => Buffer.from(JSON.stringify(m));

describe('checkManifest', () => {
  it('accepts a manifest that matches the files and the signed target', () => {
    expect(checkManifest(bytes(manifest), manifest.files, info)).toEqual(manifest);
  });

  it('names every difference: size, hash, missing, extra, and what the signed target says', () => {
    let err: unknown;
    try {
      checkManifest(
        bytes({ ...manifest, channel: 'beta', version: 5 }),
        [
          { path: 'lists/doh.txt', size: 4, sha256: B },
          { path: 'lists/extra.txt', size: 1, sha256: A },
        ],
        info,
      );
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'BUNDLE_MANIFEST_INVALID' });
    const issues = (err as { context: { issues: { path: string; message: string }[] } }).context.issues;
    expect(issues.map((i) => i.path)).toEqual([
      '/channel',
      '/version',
      '/files/0/size',
      '/files/0/sha256',
      '/files/1',
      '/files',
    ]);
  });

  it('refuses a missing or non-JSON manifest', () => {
    expect(() => checkManifest(undefined, [], info)).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_MANIFEST_INVALID' }),
    );
    expect(() => checkManifest(Buffer.from('{'), [], info)).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_MANIFEST_INVALID' }),
    );
  });
});

describe('checkRollback and checkCompatible', () => {
  it('only a version above the installed one passes', () => {
    expect(() => checkRollback(5, undefined)).not.toThrow();
    expect(() => checkRollback(5, 4)).not.toThrow();
    for (const v of [4, 3])
      expect(() => checkRollback(v, 4)).toThrowError(expect.objectContaining({ code: 'BUNDLE_ROLLBACK' }));
  });

  it('a bundle for a newer appliance is refused', () => {
    expect(() => checkCompatible('0.1.0', '0.1.0')).not.toThrow();
    expect(() => checkCompatible('0.2.0', '0.10.0')).not.toThrow();
    expect(() => checkCompatible('1.0.0', '0.9.9')).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_INCOMPATIBLE' }),
    );
  });
});
