import { describe, expect, it } from 'vitest';
import { CompileCache, compile } from '../policy/compile.js';
import { deepFreeze } from '../policy/fingerprint.js';
import { groupByPrefix } from '../policy/intervals.js';
import { kidAndWork } from '../policy/test-fixtures.js';
import type { Policy } from '../policy/model.js';
import { NftApplier, diffPacked, incrementalCommands, skeletonDiff } from './applier.js';
import { nftJsonPieces, toNftJson, type NftBackend } from './backend.js';
import type { NftGeneration } from './generation.js';
import type { NftCommand } from './types.js';
import type { Ruleset, TextTable } from './types.js';

const network = {
  lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
  wan: { iface: 'wan0' },
  mgmt: { iface: 'mgmt0', ports: [8080] },
};
const now = new Date('2026-11-25T12:00:00Z');

const makePolicy = (): Policy => kidAndWork();

/** Records transactions; fails when told to. */
class FakeBackend implements NftBackend {
  readonly kind = 'nft-cli' as const;
  readonly batches: NftCommand[][] = [];
  readonly texts: string[] = [];
  fail = false;
  async run(commands: readonly NftCommand[]): Promise<string> {
    if (this.fail) throw new Error('rejected');
    this.batches.push([...commands]);
    return '';
  }
  async runText(text: string): Promise<string> {
    this.texts.push(text);
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

  it('empties the verified pairs of the established-flow fast path with every change, in the same transaction', async () => {
    const p = makePolicy();
    const prev = compile({ policy: p, network, now });
    p.vms[0]!.rules!.push({ id: 'b', action: 'drop', to: { cidr: '192.0.2.0/24' } });
    const cmds = incrementalCommands(prev, compile({ policy: p, network, now }))!;
    const flushed = cmds.flatMap((c) => ('flush' in c && 'set' in c.flush ? [c.flush.set.name] : []));
    expect(flushed).toEqual(['verified4', 'verified6']);
    expect(cmds.slice(-2)).toEqual(
      ['verified4', 'verified6'].map((name) => ({
        flush: { set: { family: 'inet', table: 'portcullis', name } },
      })),
    );
    // nothing changed: nothing at all
    expect(incrementalCommands(prev, compile({ policy: makePolicy(), network, now }))).toEqual([]);
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

  it('leaves a learned element alone while its timeout already covers the new one', async () => {
    let clock = 1_000_000;
    const b = new FakeBackend();
    const a = new NftApplier(b, { now: () => clock });
    const p = makePolicy();
    p.vms[0]!.rules!.push({ id: 'd', action: 'drop', to: { domain: 'example.test' } });
    await a.apply(compile({ policy: p, network, now }));
    await a.addElements('r4_kid_d', ['203.0.113.10'], 60);
    expect(b.batches).toHaveLength(2);
    // the same answer from the cache 10 s later: 50 s left, as the element has
    clock += 10_000;
    await a.addElements('r4_kid_d', ['203.0.113.10'], 50);
    await a.addElements('r4_kid_d', ['203.0.113.10'], 51);
    expect(b.batches).toHaveLength(2);
    // a fresh answer runs longer: refreshed, and a new address goes with it
    await a.addElements('r4_kid_d', ['203.0.113.10', '203.0.113.11'], 60);
    expect(b.batches).toHaveLength(3);
    expect(b.batches[2]).toEqual([
      {
        delete: {
          element: { family: 'inet', table: 'portcullis', name: 'r4_kid_d', elem: ['203.0.113.10'] },
        },
      },
      {
        add: {
          element: {
            family: 'inet',
            table: 'portcullis',
            name: 'r4_kid_d',
            elem: [
              { elem: { val: '203.0.113.10', timeout: 60 } },
              { elem: { val: '203.0.113.11', timeout: 60 } },
            ],
          },
        },
      },
    ]);
  });

  it('sends one transaction for the same address learned twice at once, and retries after a failure', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const p = makePolicy();
    p.vms[0]!.rules!.push({ id: 'd', action: 'drop', to: { domain: 'example.test' } });
    await a.apply(compile({ policy: p, network, now }));
    await Promise.all([
      a.addElements('r4_kid_d', ['203.0.113.10'], 60),
      a.addElements('r4_kid_d', ['203.0.113.10'], 60),
    ]);
    expect(b.batches).toHaveLength(2);
    b.fail = true;
    await expect(a.addElements('r4_kid_d', ['203.0.113.20'], 60)).rejects.toThrow('rejected');
    b.fail = false;
    await a.addElements('r4_kid_d', ['203.0.113.20'], 60);
    expect(b.batches).toHaveLength(3);
    expect(a.dynamicElements('r4_kid_d').map((e) => e.val)).toEqual(['203.0.113.10', '203.0.113.20']);
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

/**
 * A stand-in kernel: numbers committed transactions like the kernel's generation, and
 * lists the table the way `nft -j` does (terse: elements only for `list set`/`list map`),
 * from the last ruleset it was told it holds.
 */
/** The objects of a ruleset's tables (`inet portcullis` and the others) as nft lists them. */
function listed(rs: Ruleset, kernel = false): Array<Record<string, Record<string, unknown>>> {
  const parts = [{ family: 'inet', name: 'portcullis', ...rs }, ...(rs.tables ?? [])];
  return parts
    .flatMap(({ family, name: table, counters, sets, chains }) => {
      const t = { family, table };
      return [
        { table: { family, name: table, ...(kernel ? { handle: 1 } : {}) } },
        ...counters.map((name) => ({ counter: { ...t, name, ...(kernel ? { packets: 0, bytes: 0 } : {}) } })),
        ...sets.map((s) => ({
          [s.map ? 'map' : 'set']: {
            ...t,
            name: s.name,
            ...(kernel && s.dynamic ? {} : { elem: [...s.elements] }),
          },
        })),
        ...chains.map((c) => ({ chain: { ...t, name: c.name } })),
        ...chains.flatMap((c) =>
          c.rules.map((expr) => ({ rule: { ...t, chain: c.name, ...(kernel ? { expr } : {}) } })),
        ),
      ];
    })
    .concat(
      // the text tables: their table and counters (what a drift check looks for)
      (rs.textTables ?? []).flatMap(({ family, name, counters }) => [
        { table: { family, name } },
        ...counters.map((c) => ({ counter: { family, table: name, name: c } })),
      ]),
    );
}

class FakeKernel implements NftBackend, NftGeneration {
  readonly kind = 'nft-cli' as const;
  generation = 7;
  listings: string[] = [];
  objects: Array<Record<string, Record<string, unknown>>> = [];
  async run(): Promise<string> {
    this.generation++;
    return '';
  }
  async runText(text: string, options: { terse?: boolean } = {}): Promise<string> {
    // a text table's transaction (`add table …; delete table …; table … { }`)
    if (text.startsWith('add table')) {
      this.generation++;
      return '';
    }
    this.listings.push(text);
    const only = /^list (?:set|map) inet portcullis (\S+)$/.exec(text)?.[1];
    const objects = only
      ? this.objects.filter((o) => Object.values(o)[0]!.name === only && ('set' in o || 'map' in o))
      : this.objects.map((o) => {
          const [k, v] = Object.entries(o)[0]!;
          const { elem: _elem, ...rest } = v;
          return options.terse ? { [k]: rest } : o;
        });
    return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, ...objects] });
  }
  read(): number {
    return this.generation;
  }
  /** Hold `rs` as nft would list it. */
  hold(rs: Ruleset): void {
    this.objects = listed(rs, true);
  }
  /** Someone else commits a transaction that changes the listing. */
  foreign(change: (objects: Array<Record<string, Record<string, unknown>>>) => void): void {
    change(this.objects);
    this.generation++;
  }
  close(): void {}
}

describe('NftApplier: the guest bridge table', () => {
  it('replaces the bridge table in the same transaction when a VM moves to another port, and leaves it alone otherwise', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const p = makePolicy();
    p.vms[0] = { ...p.vms[0]!, port: 'g-kid' };
    await a.apply(compile({ policy: p, network, now }));
    expect(touches(b.batches[0]!, 'bridge')).toBe(true);
    // the same policy: nothing to do
    const same = await a.apply(compile({ policy: p, network, now }));
    expect(same.kind).toBe('none');
    // another port for kid: one transaction with the inet identity and the whole bridge table
    const moved = { ...p, vms: [{ ...p.vms[0]!, port: 'g-other' }, p.vms[1]!] };
    const r = await a.apply(compile({ policy: moved, network, now }));
    expect(r.kind).toBe('incremental');
    const batch = b.batches.at(-1)!;
    expect(JSON.stringify(batch)).toContain('"g-other"');
    expect(batch.filter((c) => 'delete' in c && 'table' in c.delete)).toEqual([
      { delete: { table: { family: 'bridge', name: 'portcullis' } } },
    ]);
    // a change elsewhere (a rule) does not touch it
    const ruled = { ...moved, vms: [{ ...moved.vms[0]!, rules: [] }, moved.vms[1]!] };
    await a.apply(compile({ policy: ruled, network, now }));
    expect(touches(b.batches.at(-1)!, 'bridge')).toBe(false);
  });
});

describe('NftApplier: text tables', () => {
  const table = (body: string): TextTable => ({ family: 'bridge', name: 'portcullis_x', counters: [], body });
  const with_ = (rs: Ruleset, ...textTables: TextTable[]): Ruleset => ({ ...rs, textTables });

  it('replaces a text table in a transaction of its own after the JSON one, and again only when it changed or on a full apply', async () => {
    const b = new FakeBackend();
    const a = new NftApplier(b);
    const rs = compile({ policy: makePolicy(), network, now });
    await a.apply(with_(rs, table('counter c { }')));
    expect(b.batches).toHaveLength(1);
    expect(b.texts).toEqual([
      'add table bridge portcullis_x\ndelete table bridge portcullis_x\ntable bridge portcullis_x {\ncounter c { }\n}\n',
    ]);
    await a.apply(with_(rs, table('counter c { }')));
    expect(b.texts).toHaveLength(1);
    await a.apply(with_(rs, table('counter d { }')));
    expect(b.texts.at(-1)).toContain('counter d { }');
    await a.apply(with_(rs, table('counter d { }')), { full: true });
    expect(b.texts).toHaveLength(3);
    // gone from the ruleset: deleted
    await a.apply(with_(rs));
    expect(b.texts.at(-1)).toBe('add table bridge portcullis_x\ndelete table bridge portcullis_x\n');
  });

  it('finds a missing text table or counter as drift', () => {
    const rs = with_(compile({ policy: makePolicy(), network, now }), { ...table(''), counters: ['c'] });
    const objects = listed(rs);
    expect(skeletonDiff(rs, objects)).toBeUndefined();
    expect(
      skeletonDiff(
        rs,
        objects.filter((o) => !('counter' in o && o.counter!.name === 'c')),
      ),
    ).toBe('counter bridge:c is missing');
    expect(
      skeletonDiff(
        rs,
        objects.filter((o) => !('table' in o && o.table!.name === 'portcullis_x')),
      ),
    ).toBe('table bridge portcullis_x is missing');
  });
});

describe('NftApplier drift', () => {
  async function applied(): Promise<{ kernel: FakeKernel; a: NftApplier; rs: Ruleset }> {
    const kernel = new FakeKernel();
    const a = new NftApplier(kernel, { generation: kernel });
    const p = makePolicy();
    p.vms[0]!.rules!.push({ id: 'd', action: 'drop', to: { domain: 'example.test' } });
    const rs = compile({ policy: p, network, now });
    await a.apply(rs);
    kernel.hold(rs);
    return { kernel, a, rs };
  }

  it('lists nothing while only its own transactions were committed', async () => {
    const { kernel, a } = await applied();
    // the first check takes the listing later checks compare with
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toEqual([
      'list ruleset',
      'list map inet portcullis vm_chains',
      'list set inet portcullis macip4',
      'list set inet portcullis macs',
    ]);
    kernel.listings = [];
    await a.addElements('r4_kid_d', ['203.0.113.10'], 60);
    await a.addElements('r4_kid_d', ['203.0.113.10', '203.0.113.11'], 60);
    await a.deleteElements('r4_kid_d', ['203.0.113.11']);
    expect(await a.drift()).toBeUndefined();
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toEqual([]);
  });

  it('lists after a foreign commit, and finds nothing when it left the table alone', async () => {
    const { kernel, a } = await applied();
    await a.drift();
    kernel.foreign(() => undefined);
    kernel.listings = [];
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toHaveLength(4);
    // verified again: the next check lists nothing
    kernel.listings = [];
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toEqual([]);
  });

  it('finds a deleted rule against the listing taken of its own state', async () => {
    const { kernel, a } = await applied();
    await a.drift();
    kernel.foreign((o) => o.splice(o.findIndex((x) => 'rule' in x && x.rule!.chain === 'vm_kid')));
    expect(await a.drift()).toMatch(/differs/);
  });

  it('finds drift after an apply before any listing was taken, by the skeleton', async () => {
    const { kernel, a } = await applied();
    kernel.foreign((o) => {
      const macs = o.find((x) => 'set' in x && x.set!.name === 'macs')!;
      macs.set!.elem = [];
    });
    expect(await a.drift()).toMatch(/^macs holds 0 elements instead of 2$/);
    // a positive control: the same foreign commit with the table intact is no drift
    const other = await applied();
    other.kernel.foreign(() => undefined);
    expect(await other.a.drift()).toBeUndefined();
  });

  it('heals: after a full apply its own state is verified without a listing', async () => {
    const { kernel, a, rs } = await applied();
    kernel.foreign((o) => o.splice(0));
    expect(await a.drift()).toMatch(/table inet portcullis is missing/);
    await a.apply(rs, { full: true });
    kernel.hold(rs);
    expect(await a.drift()).toBeUndefined();
    kernel.listings = [];
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toEqual([]);
  });

  it('does not count a commit of its own that a foreign one crossed as drift', async () => {
    const { kernel, a } = await applied();
    await a.drift();
    kernel.foreign(() => undefined);
    await a.addElements('r4_kid_d', ['203.0.113.10'], 60);
    expect(await a.drift()).toBeUndefined();
    kernel.listings = [];
    await a.addElements('r4_kid_d', ['203.0.113.12'], 60);
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toEqual([]);
  });

  it('lists every time when the generation cannot be read, and still finds drift', async () => {
    const kernel = new FakeKernel();
    const a = new NftApplier(kernel, {
      generation: {
        read: () => {
          throw new Error('EPERM');
        },
        close: () => undefined,
      },
    });
    const rs = compile({ policy: makePolicy(), network, now });
    await a.apply(rs);
    kernel.hold(rs);
    expect(await a.drift()).toBeUndefined();
    expect(await a.drift()).toBeUndefined();
    expect(kernel.listings).toHaveLength(8);
    kernel.foreign((o) =>
      o.splice(
        o.findIndex((x) => 'chain' in x && x.chain!.name === 'vm_work'),
        1,
      ),
    );
    expect(await a.drift()).toMatch(/differs/);
  });
});

describe('skeletonDiff', () => {
  const rs = compile({ policy: makePolicy(), network, now });
  const listing = (): Array<Record<string, Record<string, unknown>>> => listed(rs);

  it('passes the listing of the ruleset itself', () => {
    expect(skeletonDiff(rs, listing())).toBeUndefined();
  });

  it('names what is missing or different', () => {
    const cases: Array<[(o: Array<Record<string, Record<string, unknown>>>) => void, RegExp]> = [
      [(o) => o.splice(0), /table inet portcullis is missing/],
      [
        (o) =>
          o.splice(
            o.findIndex((x) => x.table?.family === 'bridge'),
            1,
          ),
        /table bridge portcullis is missing/,
      ],
      [
        (o) =>
          o.splice(
            o.findIndex((x) => x.rule?.family === 'bridge'),
            1,
          ),
        /chain bridge:ports has \d+ rules instead/,
      ],
      [
        (o) =>
          o.splice(
            o.findIndex((x) => x.chain?.name === 'vm_kid'),
            1,
          ),
        /chain vm_kid is missing/,
      ],
      [
        (o) =>
          o.splice(
            o.findIndex((x) => x.rule?.chain === 'vm_kid'),
            1,
          ),
        /chain vm_kid has \d+ rules instead/,
      ],
      [(o) => (o.find((x) => x.set?.name === 'macip4')!.set!.elem = []), /macip4 holds 0 elements/],
      [(o) => (o.find((x) => x.map?.name === 'vm_chains')!.map!.elem = []), /vm_chains holds 0/],
      [
        (o) =>
          o.splice(
            o.findIndex((x) => 'counter' in x),
            1,
          ),
        /counter \S+ is missing/,
      ],
    ];
    for (const [change, message] of cases) {
      const o = listing();
      change(o);
      expect(skeletonDiff(rs, o)).toMatch(message);
    }
  });
});
