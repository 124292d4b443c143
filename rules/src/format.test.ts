import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../../gateway/src/errors.js';
import {
  bundleFileKind,
  bundleTargetInfo,
  compareVersions,
  isSafeBundlePath,
  parseManifest,
  parseSafeSearchMap,
} from './format.js';

const SHA = 'a'.repeat(64);
const good = {
  format: 1,
  name: 'portcullis-default',
  channel: 'stable',
  version: 7,
  created: '2026-12-02T10:00:00Z',
  minApplianceVersion: '0.1.0',
  files: [
    { path: 'lists/categories/adult.txt', size: 10, sha256: SHA },
    { path: 'suricata.rules', size: 0, sha256: SHA },
  ],
};

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (!isPortcullisError(err)) throw err;
    return (err.context?.issues as { path: string }[]).map((i) => i.path);
  }
  throw new Error('expected an error');
}

describe('bundle paths', () => {
  it('accepts relative paths of plain segments', () => {
    for (const p of ['suricata.rules', 'lists/categories/adult.txt', 'a_b/c-d.e']) {
      expect(isSafeBundlePath(p)).toBe(true);
    }
  });

  it('refuses traversal, absolute paths, hidden and empty segments, odd characters', () => {
    for (const p of [
      '',
      '../x',
      'a/../b',
      '/etc/passwd',
      './a',
      'a//b',
      'a/',
      '.hidden',
      'a/.b',
      'a\\b',
      'a b',
      'é',
    ]) {
      expect(isSafeBundlePath(p), p).toBe(false);
    }
    expect(isSafeBundlePath('a'.repeat(201))).toBe(false);
  });

  it('knows each file of the layout by its path, and nothing else', () => {
    expect(bundleFileKind('suricata.rules')).toBe('suricata-rules');
    expect(bundleFileKind('safesearch.json')).toBe('safesearch');
    expect(bundleFileKind('lists/doh.txt')).toBe('doh-names');
    expect(bundleFileKind('lists/categories/adult.txt')).toBe('category-list');
    expect(bundleFileKind('lists/services/youtube.txt')).toBe('service-list');
    expect(bundleFileKind('lists/bypass/tor-relays.txt')).toBe('bypass-addresses');
    for (const p of [
      'lists/other/x.txt',
      'lists/categories/a/b.txt',
      'lists/categories/X.txt',
      'notes.md',
      'lists/doh.csv',
    ]) {
      expect(bundleFileKind(p), p).toBeUndefined();
    }
  });
});

describe('parseManifest', () => {
  it('accepts a well-formed manifest', () => {
    expect(parseManifest(structuredClone(good))).toEqual(good);
  });

  it('names every bad field at once', () => {
    const bad = {
      ...good,
      format: 2,
      name: 'Bad Name',
      version: 0,
      created: 'yesterday',
      minApplianceVersion: '1.0',
      extra: true,
      files: [
        { path: '../etc/passwd', size: -1, sha256: 'xyz' },
        { path: 'unknown.bin', size: 1, sha256: SHA },
      ],
    };
    expect(issuesOf(() => parseManifest(bad)).sort()).toEqual(
      [
        '/extra',
        '/format',
        '/name',
        '/version',
        '/created',
        '/minApplianceVersion',
        '/files/0/path',
        '/files/0/size',
        '/files/0/sha256',
        '/files/1/path',
      ].sort(),
    );
  });

  it('wants files sorted and each once', () => {
    const dup = { ...good, files: [good.files[1], good.files[0]] };
    expect(issuesOf(() => parseManifest(dup))).toEqual(['/files/1/path']);
  });

  it('throws BUNDLE_MANIFEST_INVALID for something that is not an object', () => {
    expect(() => parseManifest([])).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_MANIFEST_INVALID' }),
    );
  });
});

describe('versions and target info', () => {
  it('compares major.minor.patch numerically', () => {
    expect(compareVersions('0.10.0', '0.9.9')).toBeGreaterThan(0);
    expect(compareVersions('1.2.3', '1.2.3')).toBe(0);
    expect(compareVersions('1.2.3', '2.0.0')).toBeLessThan(0);
    expect(() => compareVersions('1.2', '1.2.3')).toThrow(TypeError);
  });

  it('reads the signed custom field of a target, and nothing malformed', () => {
    const info = { name: 'n', channel: 'c', version: 3, minApplianceVersion: '0.1.0' };
    expect(bundleTargetInfo({ portcullis: info })).toEqual(info);
    expect(bundleTargetInfo({})).toBeUndefined();
    expect(bundleTargetInfo({ portcullis: { ...info, version: '3' } })).toBeUndefined();
  });
});

describe('parseSafeSearchMap', () => {
  it('accepts the shipped map (rules/safesearch.json)', () => {
    const map = parseSafeSearchMap(
      JSON.parse(readFileSync(new URL('../safesearch.json', import.meta.url), 'utf8')),
    );
    expect(map.google?.target).toBe('forcesafesearch.google.com');
    expect(new RegExp(map.google!.pattern!).test('www.google.co.uk')).toBe(true);
    expect(map.youtube?.names).toContain('www.youtube.com');
  });

  it('names bad engines, hosts and patterns', () => {
    expect(
      issuesOf(() =>
        parseSafeSearchMap({
          google: { target: 'Not A Host', pattern: '(' },
          bing: { target: 'strict.bing.com' },
          x: { target: 'a.example', names: ['ok.example', 'bad host'], other: 1 },
        }),
      ).sort(),
    ).toEqual(['/bing', '/google/pattern', '/google/target', '/x/names/1', '/x/other'].sort());
  });
});
