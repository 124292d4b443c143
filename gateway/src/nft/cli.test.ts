import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNftJson } from './backend.js';
import { NftCli } from './cli.js';
import type { NftCommand } from './types.js';

describe('NftCli', () => {
  let dir: string;
  let cli: NftCli;

  beforeAll(() => {
    // a stand-in for nft that prints the batch file it was given (`-f FILE`, the last argument)
    dir = mkdtempSync(join(tmpdir(), 'portcullis-nft-cli-'));
    const fake = join(dir, 'nft');
    writeFileSync(fake, '#!/bin/sh\nfor last in "$@"; do :; done\nexec cat "$last"\n');
    chmodSync(fake, 0o755);
    cli = new NftCli(fake);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hands nft the batch as JSON, a big one written a piece at a time', async () => {
    const elem = new Uint32Array(300_000).map((_, i) => 0x0b000000 + i * 7);
    const commands: NftCommand[] = [
      { add: { table: { family: 'inet', name: 'portcullis' } } },
      {
        add: {
          element: {
            family: 'inet',
            table: 'portcullis',
            name: 'list4_p32',
            elem: elem.subarray(0, 200_000),
          },
        },
      },
      {
        add: {
          element: { family: 'inet', table: 'portcullis', name: 'list4_p32', elem: elem.subarray(200_000) },
        },
      },
      {
        add: {
          set: {
            family: 'inet',
            table: 'portcullis',
            name: 'macs',
            type: 'ether_addr',
            comment: 'guest MAC → its chain',
          },
        },
      },
    ];
    const written = await cli.run(commands);
    expect(written).toBe(toNftJson(commands));
    const parsed = JSON.parse(written) as { nftables: Array<{ add: { element?: { elem: number[] } } }> };
    expect(parsed.nftables[2]!.add.element!.elem.at(-1)).toBe(0x0b000000 + 299_999 * 7);
  });

  it('passes text commands through as they are', async () => {
    expect(await cli.runText('list table inet portcullis')).toBe('list table inet portcullis');
  });
});
