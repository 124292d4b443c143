import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../appliance/lab/builder.js';
import { ns } from '../../appliance/lab/topology.js';

/**
 * Drift of the kernel table, on a real kernel: the service's nftables part
 * (test/lab/nft-drift-agent.ts) runs in a scratch namespace, someone else changes its
 * table with the nft binary, and a drift check must find it and put it back, while the
 * service's own run-time elements and other tables' transactions are no drift. Checks
 * that find nothing to look at list nothing.
 */
const NS = ns('nftdrift');
const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
const T = 'inet portcullis';

interface Answer {
  ok: boolean;
  error?: string;
  drift?: string | null;
  listings?: number;
}

let agent: ChildProcessWithoutNullStreams;
let lines: Interface;
let pending: Array<(a: Answer) => void> = [];

function ask(op: string, extra: object = {}): Promise<Answer> {
  return new Promise((resolve) => {
    pending.push(resolve);
    agent.stdin.write(JSON.stringify({ op, ...extra }) + '\n');
  });
}

async function must(op: string, extra: object = {}): Promise<Answer> {
  const a = await ask(op, extra);
  if (!a.ok) throw new Error(`${op}: ${a.error}`);
  return a;
}

/** nft in the namespace (as someone else would run it). */
function nft(...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NS, 'nft', ...args], { encoding: 'utf8' });
}

/** What a drift must not change: kid's chain, the identity sets, the map (no handles). */
function identity(): string {
  try {
    return listIdentity();
  } catch (err) {
    return `not listable: ${(err as Error).message}`;
  }
}

function listIdentity(): string {
  return [
    nft('list', 'chain', 'inet', 'portcullis', 'vm_kid'),
    nft('list', 'set', 'inet', 'portcullis', 'macip4'),
    nft('list', 'set', 'inet', 'portcullis', 'macs'),
    nft('list', 'map', 'inet', 'portcullis', 'vm_chains'),
  ].join('');
}

/** The handle of kid's first rule. */
function firstRuleHandle(): string {
  return /# handle (\d+)/.exec(
    nft('-a', 'list', 'chain', 'inet', 'portcullis', 'vm_kid').split('\n')[2]!,
  )![1]!;
}

const kidMac = (): string =>
  /(52:54:00:[0-9a-f:]+) : jump vm_kid/.exec(nft('list', 'map', 'inet', 'portcullis', 'vm_chains'))![1]!;

beforeAll(async () => {
  execFileSync('ip', ['netns', 'add', NS]);
  agent = spawn(
    'ip',
    ['netns', 'exec', NS, 'node', '--import', tsx, join(REPO, 'test', 'lab', 'nft-drift-agent.ts')],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, DENY: '100000' } },
  );
  agent.stderr.on('data', (b: Buffer) => process.stderr.write(b));
  lines = createInterface({ input: agent.stdout });
  lines.on('line', (l) => pending.shift()?.(JSON.parse(l) as Answer));
  await must('apply');
});

afterAll(() => {
  agent?.stdin.end();
  agent?.kill();
  pending = [];
  execFileSync('ip', ['netns', 'del', NS]);
});

describe('drift of the kernel table', () => {
  it('takes one listing of its own state, and after that lists nothing while nobody else commits', async () => {
    const first = await must('check');
    expect(first).toMatchObject({ drift: null });
    expect(first.listings).toBeGreaterThan(0);
    expect(await must('check')).toMatchObject({ drift: null, listings: 0 });
  });

  it('never counts its own run-time elements (DNS-learned addresses, IPS blocks) as drift', async () => {
    await must('check');
    await must('learn', { values: ['203.0.113.10', '203.0.113.11'] });
    await must('learn', { values: ['203.0.113.12'] });
    // positive control: they are in the kernel
    expect(nft('list', 'set', 'inet', 'portcullis', 'ips_block4')).toContain('203.0.113.12');
    expect(await must('check')).toMatchObject({ drift: null, listings: 0 });
  });

  it('looks when another table changed, and finds that no drift', async () => {
    await must('check');
    nft('add', 'table', 'inet', 'someone_else');
    const looked = await must('check');
    expect(looked).toMatchObject({ drift: null });
    expect(looked.listings).toBeGreaterThan(0);
    expect(await must('check')).toMatchObject({ drift: null, listings: 0 });
    nft('delete', 'table', 'inet', 'someone_else');
    await must('learn', { values: ['203.0.113.13'] });
    expect(await must('check')).toMatchObject({ drift: null });
  });

  const cases: Array<[string, () => unknown, boolean]> = [
    [
      'a rule deleted',
      () => nft('delete', 'rule', 'inet', 'portcullis', 'vm_kid', 'handle', firstRuleHandle()),
      true,
    ],
    [
      'a rule replaced by another',
      () => nft('replace', 'rule', 'inet', 'portcullis', 'vm_kid', 'handle', firstRuleHandle(), 'accept'),
      false,
    ],
    ['a chain flushed', () => nft('flush', 'chain', 'inet', 'portcullis', 'vm_kid'), true],
    [
      'a chain deleted',
      // its map element first: the map jumps to it
      () =>
        execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], {
          input: `delete element ${T} vm_chains { ${kidMac()} }\ndelete chain ${T} vm_kid\n`,
        }),
      true,
    ],
    ['the MAC/IP set flushed', () => nft('flush', 'set', 'inet', 'portcullis', 'macip4'), true],
    ['the MAC set flushed', () => nft('flush', 'set', 'inet', 'portcullis', 'macs'), true],
    [
      'the VM map edited',
      () => nft('delete', 'element', 'inet', 'portcullis', 'vm_chains', `{ ${kidMac()} }`),
      true,
    ],
    ['the table deleted', () => nft('delete', 'table', 'inet', 'portcullis'), true],
  ];

  for (const [what, change, afterApply] of cases) {
    it(`finds and repairs ${what}, the learned elements kept`, async () => {
      await must('check');
      await must('learn', { values: ['203.0.113.20'] });
      const before = identity();
      change();
      expect(identity()).not.toBe(before);
      const found = await must('check');
      expect(found.drift).toBeTruthy();
      expect(identity()).toBe(before);
      expect(nft('list', 'set', 'inet', 'portcullis', 'ips_block4')).toContain('203.0.113.20');
      // repaired by a full apply of its own: no drift, and once listed, nothing to look at
      expect(await must('check')).toMatchObject({ drift: null });
      expect(await must('check')).toMatchObject({ drift: null, listings: 0 });
    });

    if (afterApply)
      it(`finds ${what} right after an apply, before it took any listing`, async () => {
        await must('check');
        await must('addRule');
        await must('apply');
        const before = identity();
        change();
        const found = await must('check');
        expect(found.drift).toBeTruthy();
        expect(identity()).toBe(before);
      });
  }
});
