import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkExtraSources, fetchExtraSource, JsonBundleSettings } from './settings.js';

/** Extra rule sources trusted by a pinned sha256, and the settings file. */

const tmp = mkdtempSync(join(tmpdir(), 'up-settings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const RULE = 'alert http any any -> any any (msg:"et"; content:"ET"; sid:2000001; rev:1;)\n';

describe('extra rule sources', () => {
  it('a rules file whose sha256 is the pinned one is used, as its own group', async () => {
    const file = join(tmp, 'et.rules');
    writeFileSync(file, RULE);
    const src = await fetchExtraSource({ name: 'et', location: file, sha256: sha(Buffer.from(RULE)) });
    expect(src).toEqual({ group: 'et', text: RULE });
  });

  it('another sha256 than the pinned one: BUNDLE_TAMPERED, naming both', async () => {
    const file = join(tmp, 'changed.rules');
    writeFileSync(file, RULE.replace('ET', 'XX'));
    await expect(
      fetchExtraSource({ name: 'et', location: file, sha256: sha(Buffer.from(RULE)) }),
    ).rejects.toMatchObject({
      code: 'BUNDLE_TAMPERED',
      message: expect.stringContaining(sha(Buffer.from(RULE))),
    });
  });

  it('an ET Open style tarball: its .rules files, nothing written, links give nothing', async () => {
    const src = join(tmp, 'tree');
    mkdirSync(join(src, 'rules'), { recursive: true });
    writeFileSync(join(src, 'rules', 'emerging-a.rules'), RULE);
    writeFileSync(join(src, 'rules', 'emerging-b.rules'), RULE.replace('2000001', '2000002'));
    writeFileSync(join(src, 'rules', 'README'), 'not rules');
    symlinkSync('/etc/passwd', join(src, 'rules', 'evil.rules'));
    const tgz = join(tmp, 'et.tar.gz');
    execFileSync('tar', ['-czf', tgz, '-C', src, 'rules']);
    const bytes = readFileSync(tgz);
    const out = await fetchExtraSource({ name: 'et', location: tgz, sha256: sha(bytes) });
    expect(out.text).toContain('sid:2000001');
    expect(out.text).toContain('sid:2000002');
    expect(out.text).not.toContain('root:');
    expect(out.text).not.toContain('not rules');
  });

  it('checks names, locations and hashes', () => {
    expect(() =>
      checkExtraSources([
        { name: 'vendor', location: 'ftp://x', sha256: 'abc' },
        { name: 'et', location: '/a.rules', sha256: 'a'.repeat(64) },
      ]),
    ).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
  });
});

describe('JsonBundleSettings', () => {
  it('starts empty, keeps what was written, refuses bad SID changes', async () => {
    const s = new JsonBundleSettings(join(tmp, 'settings.json'));
    expect(await s.read()).toEqual({ sids: [], sources: [] });
    await s.write({ sids: [{ action: 'disable', match: '1' }], sources: [] });
    expect(await s.sids()).toEqual([{ action: 'disable', match: '1' }]);
    await expect(s.write({ sids: [{ action: 'disable', match: 'x' }], sources: [] })).rejects.toMatchObject({
      code: 'REQUEST_INVALID',
    });
    expect(await s.sids()).toEqual([{ action: 'disable', match: '1' }]);
  });
});
