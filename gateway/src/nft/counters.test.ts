import { describe, expect, it } from 'vitest';
import { vmCounter } from './names.js';
import type { NftBackend } from './backend.js';
import { parseCounters, parseVmCounters, readVmCounters, VM_COUNTERS_LISTING } from './counters.js';

/** nft -j's listing of the table's named counters, as the kernel prints it. */
const listing = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { counter: { family: 'inet', name: 'vm_kid', table: 'portcullis', handle: 7, packets: 12, bytes: 3400 } },
    { counter: { family: 'inet', name: 'vm_work', table: 'portcullis', handle: 8, packets: 0, bytes: 0 } },
    { counter: { family: 'inet', name: 'vm_kid', table: 'someone_else', handle: 2, packets: 1, bytes: 99 } },
    { counter: { family: 'ip', name: 'vm_work', table: 'portcullis', handle: 3, packets: 1, bytes: 77 } },
    {
      counter: {
        family: 'inet',
        name: 'spoof_drops',
        table: 'portcullis',
        handle: 9,
        packets: 3,
        bytes: 180,
      },
    },
  ],
});

describe('parseCounters', () => {
  it("returns every named counter of the portcullis table with packets and bytes, no other table's", () => {
    expect(parseCounters(listing)).toEqual(
      new Map([
        ['vm_kid', { packets: 12, bytes: 3400 }],
        ['vm_work', { packets: 0, bytes: 0 }],
        ['spoof_drops', { packets: 3, bytes: 180 }],
      ]),
    );
  });

  it('refuses a listing that is not nft JSON, saying so', () => {
    expect(() => parseCounters('nope')).toThrow(/not JSON/);
    expect(() => parseCounters('{}')).toThrow(/no "nftables" array/);
  });
});

describe('parseVmCounters', () => {
  it("returns each VM counter's bytes by counter name, only VM counters, only the portcullis table's", () => {
    expect(parseVmCounters(listing)).toEqual(
      new Map([
        ['vm_kid', 3400],
        ['vm_work', 0],
      ]),
    );
  });

  it('names counters the way the compiler does', () => {
    expect(parseVmCounters(listing).has(vmCounter('kid'))).toBe(true);
  });

  it('is empty for a table without counters', () => {
    expect(parseVmCounters('{"nftables":[{"metainfo":{}}]}').size).toBe(0);
  });

  it('rejects output that is no nft JSON with NFT_APPLY_FAILED', () => {
    expect(() => parseVmCounters('Error: No such file or directory')).toThrow(/not JSON/);
    expect(() => parseVmCounters('{}')).toThrow(/no "nftables" array/);
  });
});

describe('readVmCounters', () => {
  it("lists the portcullis table's counters through the backend", async () => {
    const asked: Array<[string, boolean | undefined]> = [];
    const nft: NftBackend = {
      kind: 'nft-cli',
      run: async () => '',
      runText: async (text, options) => {
        asked.push([text, options?.terse]);
        return listing;
      },
      close: () => undefined,
    };
    expect((await readVmCounters(nft)).get('vm_kid')).toBe(3400);
    // terse: no set elements (a million of them would take nft seconds to fetch)
    expect(asked).toEqual([[VM_COUNTERS_LISTING, true]]);
  });
});
