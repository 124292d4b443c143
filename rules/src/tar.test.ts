import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tarHeader, writeTar } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'tu-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeTar', () => {
  it('writes archives GNU tar lists and extracts byte for byte, long paths included', () => {
    const long = `${'d'.repeat(90)}/${'e'.repeat(60)}/file.txt`;
    const entries = [
      { path: 'manifest.json', data: Buffer.from('{"a":1}\n'), mtime: 1_700_000_000 },
      { path: 'lists/categories/adult.txt', data: Buffer.alloc(1000, 'x') },
      { path: long, data: Buffer.from('deep') },
      { path: 'empty.txt', data: Buffer.alloc(0) },
    ];
    const file = join(dir, 'a.tar');
    writeFileSync(file, writeTar(entries));
    const listed = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listed).toEqual(entries.map((e) => e.path));
    const out = join(dir, 'x');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['-xf', file, '-C', out]);
    for (const e of entries) expect(readFileSync(join(out, e.path))).toEqual(e.data);
    const verbose = execFileSync('tar', ['--full-time', '-tvf', file], { encoding: 'utf8' });
    expect(verbose).toMatch(/root\/root\s+8 2023-11-14 22:13:20 manifest.json/);
  });

  it('is deterministic: same entries, same bytes', () => {
    const e = [{ path: 'a', data: Buffer.from('1') }];
    expect(writeTar(e).equals(writeTar(e))).toBe(true);
  });

  it('writes the other entry types tests need (symlink, device) in a form GNU tar recognises', () => {
    const file = join(dir, 'b.tar');
    writeFileSync(
      file,
      writeTar([
        { path: 'link', type: '2', linkname: '/etc/passwd' },
        { path: 'dev', type: '3', devmajor: 1, devminor: 3 },
      ]),
    );
    const verbose = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' });
    expect(verbose).toMatch(/^l.* link -> \/etc\/passwd$/m);
    expect(verbose).toMatch(/^c.* 1,3 .*dev$/m);
  });

  it('refuses paths that do not fit a ustar header', () => {
    expect(() => tarHeader({ path: 'x'.repeat(101) })).toThrow(RangeError);
  });
});
