import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { tarHeader, writeTar, type TarEntry } from '../../../rules/src/tar.js';
import { DEFAULT_UNPACK_LIMITS, unpackArchive, type UnpackLimits } from './archive.js';

// real crypto, gzip of tens of megabytes and a loopback server: generous on a loaded machine
vi.setConfig({ testTimeout: 30_000 });

const tmp = mkdtempSync(join(tmpdir(), 'tu-arc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** Unpack gzipped bytes into a fresh folder; the result or the error, and the folder. */
async function unpack(gz: Buffer, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS) {
  const file = join(tmp, `a${++n}.tar.gz`);
  writeFileSync(file, gz);
  const dest = join(tmp, `d${n}`);
  mkdirSync(dest);
  const result = await unpackArchive(file, dest, limits).catch((e: unknown) => e as Error & { code: string });
  return { result, dest };
}

const tgz = (entries: TarEntry[]): Buffer => gzipSync(writeTar(entries));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('unpackArchive', () => {
  it('unpacks regular files and directories, hashing each as it writes', async () => {
    const a = Buffer.from('alert ip any any -> any any (sid:1;)\n');
    const b = Buffer.alloc(70_000, 'b');
    const { result, dest } = await unpack(
      tgz([
        { path: 'manifest.json', data: Buffer.from('{}') },
        { path: 'lists', type: '5' },
        { path: 'lists/categories/x.txt', data: b },
        { path: 'suricata.rules', data: a },
        { path: 'empty.txt', data: Buffer.alloc(0) },
      ]),
    );
    expect(result).toMatchObject({
      manifest: Buffer.from('{}'),
      files: [
        { path: 'lists/categories/x.txt', size: b.length, sha256: sha(b) },
        { path: 'suricata.rules', size: a.length, sha256: sha(a) },
        { path: 'empty.txt', size: 0, sha256: sha(Buffer.alloc(0)) },
      ],
    });
    expect(readFileSync(join(dest, 'lists/categories/x.txt'))).toEqual(b);
  });

  it('reads what GNU tar writes (ustar and its default GNU format, short names)', async () => {
    const src = mkdtempSync(join(tmp, 'gnu-'));
    writeFileSync(join(src, 'suricata.rules'), 'x');
    for (const format of ['ustar', 'gnu']) {
      const out = join(tmp, `gnu-${format}.tar.gz`);
      execFileSync('tar', [`--format=${format}`, '-czf', out, '-C', src, 'suricata.rules']);
      const { result } = await unpack(readFileSync(out));
      expect(result).toMatchObject({ files: [{ path: 'suricata.rules', size: 1 }] });
    }
  });

  const refused: [string, TarEntry[], string][] = [
    ['traversal', [{ path: 'a/../../x', data: Buffer.from('x') }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['absolute path', [{ path: '/etc/x', data: Buffer.from('x') }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['hidden file', [{ path: '.profile', data: Buffer.from('x') }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['symlink', [{ path: 'l', type: '2', linkname: '/' }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['hard link', [{ path: 'l', type: '1', linkname: 'x' }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['character device', [{ path: 'd', type: '3', devmajor: 1, devminor: 3 }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['block device', [{ path: 'd', type: '4', devmajor: 8, devminor: 0 }], 'BUNDLE_UNSAFE_ARCHIVE'],
    ['FIFO', [{ path: 'f', type: '6' }], 'BUNDLE_UNSAFE_ARCHIVE'],
    [
      'a path twice (a later entry overwriting an earlier one)',
      [
        { path: 'a', data: Buffer.from('1') },
        { path: 'a', data: Buffer.from('2') },
      ],
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
    [
      'a file where a directory is needed',
      [
        { path: 'a', data: Buffer.from('1') },
        { path: 'a/b', data: Buffer.from('2') },
      ],
      'BUNDLE_UNSAFE_ARCHIVE',
    ],
  ];

  it.each(refused)('refuses %s, writing nothing outside the folder', async (_name, entries, code) => {
    const { result, dest } = await unpack(tgz(entries));
    expect(result).toMatchObject({ code });
    expect(existsSync(join(tmp, 'x'))).toBe(false);
    expect(readdirSync(dest).filter((f) => f !== 'a')).toEqual([]);
  });

  it('refuses pax extended headers (they could rename an entry)', async () => {
    const h = tarHeader({ path: 'PaxHeader/x', data: Buffer.alloc(0) });
    h.write('x', 156, 'ascii');
    let sum = 0;
    h.fill(0x20, 148, 156);
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
    const { result } = await unpack(gzipSync(Buffer.concat([h, Buffer.alloc(1024)])));
    expect(result).toMatchObject({ code: 'BUNDLE_UNSAFE_ARCHIVE' });
  });

  it('a decompression bomb stops on the ratio after about a megabyte, long before the size limit', async () => {
    const { result, dest } = await unpack(tgz([{ path: 'zeros', data: Buffer.alloc(32 * 1024 * 1024) }]));
    expect(result).toMatchObject({ code: 'BUNDLE_TOO_LARGE', context: { limit: 'ratio' } });
    const written = existsSync(join(dest, 'zeros')) ? readFileSync(join(dest, 'zeros')).length : 0;
    expect(written).toBeLessThan(4 * 1024 * 1024);
  });

  it('bounds the unpacked total and the entry count', async () => {
    const limits = { ...DEFAULT_UNPACK_LIMITS, maxBytes: 1000, maxEntries: 3 };
    expect((await unpack(tgz([{ path: 'a', data: Buffer.alloc(1001, 1) }]), limits)).result).toMatchObject({
      code: 'BUNDLE_TOO_LARGE',
      context: { limit: 'bytes' },
    });
    const four = ['a', 'b', 'c', 'd'].map((p) => ({ path: p, data: Buffer.from(p) }));
    expect((await unpack(tgz(four), limits)).result).toMatchObject({
      code: 'BUNDLE_TOO_LARGE',
      context: { limit: 'entries' },
    });
    // control: three entries within 1000 bytes are fine
    expect((await unpack(tgz(four.slice(0, 3)), limits)).result).toMatchObject({ files: expect.any(Array) });
  });

  it('refuses a truncated, damaged or non-gzip archive as BUNDLE_CORRUPT', async () => {
    const good = tgz([{ path: 'a', data: Buffer.alloc(5000, 'a') }]);
    expect((await unpack(good.subarray(0, good.length - 20))).result).toMatchObject({
      code: 'BUNDLE_CORRUPT',
    });
    // a complete gzip of a tar cut inside a file
    const tar = writeTar([{ path: 'a', data: Buffer.alloc(5000, 'a') }]);
    expect((await unpack(gzipSync(tar.subarray(0, 2048)))).result).toMatchObject({ code: 'BUNDLE_CORRUPT' });
    const bad = Buffer.from(tar);
    bad[10] = 0x41; // the header's checksum no longer matches
    expect((await unpack(gzipSync(bad))).result).toMatchObject({ code: 'BUNDLE_CORRUPT' });
    expect((await unpack(Buffer.from('not gzip at all'))).result).toMatchObject({ code: 'BUNDLE_CORRUPT' });
    // control
    expect((await unpack(good)).result).toMatchObject({ files: [{ path: 'a', size: 5000 }] });
  });
});
