import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../../gateway/src/errors.js';
import { buildBundle, readBundleManifest } from './build.js';

const RULES = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tu-build-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const created = new Date('2026-12-02T10:00:00Z');

/** A copy of the default source tree (rules/ without code) to break. */
function copyTree(): string {
  const dir = mkdtempSync(join(tmp, 'src-'));
  for (const f of ['bundle.json', 'suricata.rules', 'safesearch.json', 'lists']) {
    cpSync(join(RULES, f), join(dir, f), { recursive: true });
  }
  return dir;
}

function issuePaths(err: unknown): string[] {
  if (!isPortcullisError(err, 'BUNDLE_INVALID')) throw err;
  return (err.context?.issues as { path: string }[]).map((i) => i.path);
}

describe('buildBundle on the default source tree (rules/)', () => {
  it('packs manifest.json first, then every bundle file with its size and sha256', async () => {
    const b = await buildBundle({ src: RULES, version: 3, created });
    expect(b.manifest).toMatchObject({
      format: 1,
      name: 'portcullis-default',
      channel: 'stable',
      version: 3,
      created: '2026-12-02T10:00:00Z',
      minApplianceVersion: '0.1.0',
    });
    const paths = b.manifest.files.map((f) => f.path);
    expect(paths).toEqual([...paths].sort());
    expect(paths).toEqual(
      expect.arrayContaining([
        'suricata.rules',
        'safesearch.json',
        'lists/doh.txt',
        'lists/categories/adult.txt',
        'lists/services/youtube.txt',
        'lists/bypass/doh-addresses.txt',
        'lists/bypass/tor-relays.txt',
        'lists/bypass/vpn-endpoints.txt',
      ]),
    );
    expect(paths.some((p) => p.endsWith('README.md'))).toBe(false);

    // an independent reader (GNU tar) sees the same files, manifest first, same bytes
    const file = join(tmp, 'default.tar.gz');
    writeFileSync(file, b.archive);
    const listed = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listed).toEqual(['manifest.json', ...paths]);
    const out = mkdtempSync(join(tmp, 'x-'));
    execFileSync('tar', ['-xzf', file, '-C', out]);
    for (const f of b.manifest.files) {
      const data = readFileSync(join(out, f.path));
      expect(data.length).toBe(f.size);
      expect(createHash('sha256').update(data).digest('hex')).toBe(f.sha256);
      expect(data).toEqual(readFileSync(join(RULES, f.path)));
    }
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))).toEqual(b.manifest);
    expect(b.sha256).toBe(createHash('sha256').update(b.archive).digest('hex'));
  });

  it('is reproducible: the same tree, version and time give the same bytes', async () => {
    const a = await buildBundle({ src: RULES, version: 3, created });
    const b = await buildBundle({ src: RULES, version: 3, created });
    expect(a.sha256).toBe(b.sha256);
  });

  it('takes name, channel and minimum appliance version from options over bundle.json', async () => {
    const b = await buildBundle({
      src: RULES,
      version: 9,
      name: 'acme',
      channel: 'beta',
      minApplianceVersion: '2.0.0',
      created,
    });
    expect(readBundleManifest(b.archive, 'b')).toMatchObject({
      name: 'acme',
      channel: 'beta',
      version: 9,
      minApplianceVersion: '2.0.0',
    });
  });
});

describe('buildBundle refuses a broken tree, naming each problem', () => {
  it('unknown files, links, bad lists, bad addresses, bad rules and a bad SafeSearch map', async () => {
    const src = copyTree();
    writeFileSync(join(src, 'lists/categories/notes.md'), 'hello');
    writeFileSync(join(src, 'lists/categories/Bad Name.txt'), 'example.com\n');
    symlinkSync('/etc/passwd', join(src, 'lists/services/passwd.txt'));
    writeFileSync(join(src, 'lists/services/broken.txt'), 'example.com\nnot a domain at all!\n');
    writeFileSync(join(src, 'lists/bypass/tor-relays.txt'), '10.0.0.1\n300.1.1.1\n');
    writeFileSync(
      join(src, 'suricata.rules'),
      '# ok\nalert ip any any -> any any (sid:1;)\nthis is not a rule\n',
    );
    writeFileSync(join(src, 'safesearch.json'), '{"google": {"target": "x"}}');
    const err = await buildBundle({ src, version: 1, created }).catch((e: unknown) => e);
    expect(issuePaths(err).sort()).toEqual(
      [
        'lists/categories/notes.md',
        'lists/categories/Bad Name.txt',
        'lists/services/passwd.txt',
        'lists/services/broken.txt',
        'lists/bypass/tor-relays.txt',
        'suricata.rules:3',
        'safesearch.json',
      ].sort(),
    );
  });

  it('bad options: version, name, channel, minimum appliance version', async () => {
    const err = await buildBundle({
      src: RULES,
      version: 0,
      name: 'Bad',
      channel: '',
      minApplianceVersion: 'latest',
    }).catch((e: unknown) => e);
    expect(issuePaths(err).sort()).toEqual(['channel', 'minApplianceVersion', 'name', 'version']);
  });

  it('a tree without bundle.json', async () => {
    const src = copyTree();
    rmSync(join(src, 'bundle.json'));
    await expect(buildBundle({ src, version: 1 })).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: expect.stringContaining('bundle.json'),
    });
  });
});

describe('readBundleManifest', () => {
  it('refuses something that is not a bundle', () => {
    expect(() => readBundleManifest(Buffer.from('plain text'), 'x.tar.gz')).toThrowError(
      expect.objectContaining({ code: 'BUNDLE_INVALID' }),
    );
  });
});
