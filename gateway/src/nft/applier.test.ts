import { describe, expect, it } from 'vitest';
import { CompileCache, compile } from '../policy/compile.js';
import { deepFreeze } from '../policy/fingerprint.js';
import { groupByPrefix } from '../policy/intervals.js';
import type { Policy } from '../policy/model.js';
import { NftApplier, diffPacked, incrementalCommands } from './applier.js';
import { nftJsonPieces, toNftJson, type NftBackend } from './backend.js';
import type { NftCommand } from './types.js';

const network = {
  lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
  wan: { iface: 'wan0' },
  mgmt: { iface: 'mgmt0', ports: [8080] },
};
const now = new Date('2026-11-25T12:00:00Z');

function makePolicy(): Policy {
  return {
    vms: [
      {
        name: 'kid',
        mac: '52:54:00:00:00:0a',
        ipv4: '10.20.0.10',
        profile: 'kid',
        rules: [{ id: 'a', action: 'drop', to: { cidr: '198.51.100.0/24' } }],
      },
      { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'work' },
    ],
    profiles: [],
    schedules: [],
    vpnEndpoints: [],
    updateServers: [],
    ipv6: false,
  };
}

/** Records transactions; fails when told to. */
class FakeBackend implements NftBackend {
  readonly kind = 'nft-cli' as const;
  readonly batches: NftCommand[][] = [];
  fail = false;
  async run(commands: readonly NftCommand[]): Promise<string> {
    if (this.fail) throw new Error('rejected');
    this.batches.push([...commands]);
    return '';
  }
  async runText(): Promise<string> {
    return '';
  }
  close(): void {}
}

const touches = (cmds: NftCommand[], name: string): boolean => JSON.stringify(cmds).includes(`"${name}"`);

describe('NftApplier', () => {
  it('replaces the whole table in one transaction the first time', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const r = await a.apply(compile({ policy: makePolicy(), network, now }));
    expect(r.kind).toBe('full');
    expect(b.batches).toHaveLength(1);
    expect(b.batches[0]!.slice(0, 3)).toEqual([
      { add: { table: { family: 'inet', name: 'portcullis' } } },
      { delete: { table: { family: 'inet', name: 'portcullis' } } },
      { add: { table: { family: 'inet', name: 'portcullis' } } },
    ]);
  });

  it("patches only the changed VM's chain and sets when a rule is added", async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const p = makePolicy();
    await a.apply(compile({ policy: p, network, now }));
    p.vms[0]!.rules!.push({ id: 'b', action: 'drop', to: { domain: 'example.test' } });
    const r = await a.apply(compile({ policy: p, network, now }));
    expect(r.kind).toBe('incremental');
    const cmds = b.batches[1]!;
    expect(touches(cmds, 'vm_kid')).toBe(true);
    expect(touches(cmds, 'vm_work')).toBe(false);
    expect(cmds[0]).toEqual({ flush: { chain: { family: 'inet', table: 'portcullis', name: 'vm_kid' } } });
    expect(cmds.some((c) => 'add' in c && 'set' in c.add && c.add.set.name === 'r4_kid_b')).toBe(true);
  });

  it('does nothing when nothing changed', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    await a.apply(compile({ policy: makePolicy(), network, now }));
    expect((await a.apply(compile({ policy: makePolicy(), network, now }))).kind).toBe('none');
    expect(b.batches).toHaveLength(1);
  });

  it('removes a VM: map element first, then its chain and counter', async () => {
    const p = makePolicy();
    const prev = compile({ policy: p, network, now });
    p.vms.pop();
    const cmds = incrementalCommands(prev, compile({ policy: p, network, now }))!;
    const mapDelete = cmds.findIndex(
      (c) => 'delete' in c && 'element' in c.delete && c.delete.element.name === 'vm_chains',
    );
    const chainDelete = cmds.findIndex(
      (c) => 'delete' in c && 'chain' in c.delete && c.delete.chain.name === 'vm_work',
    );
    expect(mapDelete).toBeGreaterThanOrEqual(0);
    expect(chainDelete).toBeGreaterThan(mapDelete);
  });

  it('keeps the applied ruleset when the kernel rejects a transaction', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const first = compile({ policy: makePolicy(), network, now });
    await a.apply(first);
    b.fail = true;
    const p = makePolicy();
    p.vms.pop();
    await expect(a.apply(compile({ policy: p, network, now }))).rejects.toThrow('rejected');
    expect(a.applied).toBe(first);
  });

  it('carries dynamic elements over a full replace, with their remaining timeout', async () => {
    let clock = 1_000_000;
    const b = new FakeBackend();
    const a = new NftApplier(b, { now: () => clock });
    const p = makePolicy();
    p.vms[0]!.rules!.push({ id: 'd', action: 'drop', to: { domain: 'example.test' } });
    const rs = compile({ policy: p, network, now });
    await a.apply(rs);
    await a.addElements('r4_kid_d', ['203.0.113.10'], 60);
    clock += 20_000;
    await a.apply(rs, { full: true });
    const add = b.batches
      .at(-1)!
      .find((c) => 'add' in c && 'element' in c.add && c.add.element.name === 'r4_kid_d');
    expect(add).toEqual({
      add: {
        element: {
          family: 'inet',
          table: 'portcullis',
          name: 'r4_kid_d',
          elem: [{ elem: { val: '203.0.113.10', timeout: 40 } }],
        },
      },
    });
  });

  it('diffs a big packed list by merging, and sends the difference packed', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const p = deepFreeze(makePolicy());
    await a.apply(
      compile({
        policy: p,
        network,
        now,
        lists: { deny: groupByPrefix(['11.0.0.1', '11.0.0.2', '11.0.0.3']) },
      }),
    );
    const r = await a.apply(
      compile({
        policy: p,
        network,
        now,
        lists: { deny: groupByPrefix(['11.0.0.2', '11.0.0.3', '11.0.0.4']) },
      }),
    );
    expect(r.kind).toBe('incremental');
    const ops = b.batches[1]!.filter(
      (c) => ('add' in c && 'element' in c.add) || ('delete' in c && 'element' in c.delete),
    );
    expect(JSON.parse(toNftJson(ops))).toEqual({
      nftables: [
        {
          delete: {
            element: { family: 'inet', table: 'portcullis', name: 'list4_p32', elem: [(11 << 24) + 1] },
          },
        },
        {
          add: {
            element: { family: 'inet', table: 'portcullis', name: 'list4_p32', elem: [(11 << 24) + 4] },
          },
        },
      ],
    });
  });

  it('skips the chains of VMs a cached compile handed back unchanged', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const cache = new CompileCache();
    const p = deepFreeze(makePolicy());
    await a.apply(compile({ policy: p, network, now, cache }));
    const kid = {
      ...p.vms[0]!,
      rules: [...p.vms[0]!.rules!, { id: 'b', action: 'drop' as const, to: { cidr: '192.0.2.1' } }],
    };
    const r = await a.apply(
      compile({ policy: deepFreeze({ ...p, vms: [kid, p.vms[1]!] }), network, now, cache }),
    );
    expect(r.kind).toBe('incremental');
    expect(touches(b.batches[1]!, 'vm_kid')).toBe(true);
    expect(touches(b.batches[1]!, 'vm_work')).toBe(false);
  });

  it('sends a bulk transaction through the bulk backend and reclaims memory after it', async () => {
    const small = new FakeBackend();
    const bulk = new FakeBackend();
    let reclaimed = 0;
    const a = new NftApplier(small, { bulk, bulkElements: 2, reclaim: () => reclaimed++ });
    const p = deepFreeze(makePolicy());
    await a.apply(
      compile({
        policy: p,
        network,
        now,
        lists: { deny: groupByPrefix(['11.0.0.1', '11.0.0.2', '11.0.0.3']) },
      }),
    );
    expect(bulk.batches).toHaveLength(1);
    expect(reclaimed).toBe(1);
    // packed elements go as views of the list, not copies
    const add = bulk.batches[0]!.find(
      (c) => 'add' in c && 'element' in c.add && c.add.element.name === 'list4_p32',
    );
    expect(add && 'add' in add && 'element' in add.add && ArrayBuffer.isView(add.add.element.elem)).toBe(
      true,
    );
    const kid = { ...p.vms[0]!, notes: 'x', rules: [] };
    await a.apply(
      compile({
        policy: { ...p, vms: [kid, p.vms[1]!] },
        network,
        now,
        lists: { deny: groupByPrefix(['11.0.0.1', '11.0.0.2', '11.0.0.3']) },
      }),
    );
    expect(small.batches).toHaveLength(1);
    expect(reclaimed).toBe(1);
  });
});

describe('diffPacked', () => {
  it('finds what went and what came, sorted lists or not', () => {
    const { removed, added } = diffPacked(Uint32Array.of(1, 3, 5, 7), Uint32Array.of(0, 3, 4, 7, 9));
    expect([...removed]).toEqual([1, 5]);
    expect([...added]).toEqual([0, 4, 9]);
    const unsorted = diffPacked([7, 1, 3, 3], Uint32Array.of(3, 8));
    expect([...unsorted.removed]).toEqual([1, 7]);
    expect([...unsorted.added]).toEqual([8]);
    expect(diffPacked(Uint32Array.of(), Uint32Array.of()).added).toHaveLength(0);
  });
});

describe('nftJsonPieces', () => {
  it('writes plain commands as JSON and packed elements as numbers', () => {
    const commands: NftCommand[] = [
      { add: { table: { family: 'inet', name: 'portcullis' } } },
      {
        add: {
          element: {
            family: 'inet',
            table: 'portcullis',
            name: 'list4_p32',
            elem: Uint32Array.of(1, 4294967295),
          },
        },
      },
      {
        delete: {
          element: { family: 'inet', table: 'portcullis', name: 'macs', elem: ['52:54:00:00:00:0a'] },
        },
      },
    ];
    const text = [...nftJsonPieces(commands)].join('');
    expect(JSON.parse(text)).toEqual({
      nftables: [
        commands[0],
        {
          add: { element: { family: 'inet', table: 'portcullis', name: 'list4_p32', elem: [1, 4294967295] } },
        },
        commands[2],
      ],
    });
    expect(toNftJson(commands)).toBe(text);
    expect(toNftJson([commands[0]!, commands[2]!])).toBe(
      JSON.stringify({ nftables: [commands[0], commands[2]] }),
    );
  });
});
