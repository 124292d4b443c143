import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { loadAddressList } from './address-list-file.js';

describe('loadAddressList', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-list-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and parses a list file', () => {
    const file = join(dir, 'deny.txt');
    writeFileSync(file, '# bad hosts\n192.0.2.1\n198.51.100.0/24\n');
    expect(loadAddressList(file)).toEqual(['192.0.2.1', '198.51.100.0/24']);
  });

  it('names a file it cannot read', () => {
    const file = join(dir, 'missing.txt');
    let err: unknown;
    try {
      loadAddressList(file);
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err) && err.code).toBe('BUNDLE_INVALID');
    expect((err as Error).message).toContain(`cannot read address list ${file}`);
  });

  it('names the file and line of a bad entry', () => {
    const file = join(dir, 'bad.txt');
    writeFileSync(file, '192.0.2.1\nnot-an-address\n');
    expect(() => loadAddressList(file)).toThrow(`address list ${file}, line 2`);
  });
});
