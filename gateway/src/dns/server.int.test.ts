import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientPolicy } from './model.js';
import { DnsFilter, type BlockedEvent, type DnsFilterOptions, type ResolvedEvent } from './server.js';
import {
  decodeName,
  decodeRecord,
  encodeName,
  FLAG,
  optRecord,
  RCODE,
  rdataAddress,
  scanResponse,
  TYPE,
} from './wire.js';

/**
 * The real filter on 127.0.0.1 in front of a real dnsmasq on 127.0.0.1 (no other
 * address is touched). dnsmasq logs every query it gets, so the test can tell cache
 * hits from upstream queries.
 */

const HAVE_DNSMASQ = spawnSync('dnsmasq', ['--version']).status === 0;
const LONG = 'x'.repeat(250);

interface Answer {
  readonly id: number;
  readonly rcode: number;
  readonly flags: number;
  readonly answers: { name: string; type: number; ttl: number; data: string }[];
  readonly authority: { name: string; type: number; ttl: number }[];
  readonly size: number;
}

function makeQuery(name: string, type: number, o: { id?: number; edns?: number } = {}): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(o.id ?? Math.floor(Math.random() * 65536), 0);
  head.writeUInt16BE(FLAG.RD, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(o.edns === undefined ? 0 : 1, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([
    head,
    encodeName(name),
    tail,
    o.edns === undefined ? Buffer.alloc(0) : optRecord(o.edns),
  ]);
}

function read(msg: Buffer): Answer {
  const s = scanResponse(msg);
  if (s === undefined) throw new Error(`unparsable answer ${msg.toString('hex')}`);
  const answers = s.records
    .filter((r) => r.section === 0)
    .map((r) => {
      const d = decodeRecord(msg, r);
      const data =
        rdataAddress(msg, r) ??
        (r.type === TYPE.CNAME
          ? (decodeName(msg, r.rdOffset)?.name ?? '')
          : r.type === TYPE.TXT
            ? `${r.rdLength} bytes`
            : '');
      return { name: d?.name ?? '', type: r.type, ttl: r.ttl, data };
    });
  const authority = s.records
    .filter((r) => r.section === 1)
    .map((r) => ({ name: decodeRecord(msg, r)?.name ?? '', type: r.type, ttl: r.ttl }));
  return { id: s.id, rcode: s.rcode, flags: s.flags, answers, authority, size: msg.length };
}

/** One UDP question from `source` (a 127/8 address); raw bytes may be given. */
function udp(port: number, q: Buffer, source = '127.0.0.1', timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('no UDP answer'));
    }, timeoutMs);
    sock.on('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(m);
    });
    sock.bind(0, source, () => sock.send(q, port, '127.0.0.1'));
  });
}

const ask = async (
  port: number,
  name: string,
  type: number = TYPE.A,
  o: { source?: string; edns?: number } = {},
): Promise<Answer> => read(await udp(port, makeQuery(name, type, { edns: o.edns }), o.source));

/** Questions over one TCP connection, answered in any order; returned in asking order. */
function tcp(port: number, questions: Buffer[]): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const byId = new Map<number, Answer>();
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no TCP answer'));
    }, 5000);
    sock.on('connect', () => {
      for (const q of questions) {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(q.length);
        sock.write(Buffer.concat([len, q]));
      }
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const a = read(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        byId.set(a.id, a);
      }
      if (byId.size === questions.length) {
        clearTimeout(timer);
        sock.end();
        resolve(questions.map((q) => byId.get(q.readUInt16BE(0)) as Answer));
      }
    });
    sock.on('error', reject);
  });
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Dnsmasq {
  readonly port: number;
  readonly proc: ChildProcess;
  /** Upstream queries seen so far (`query[A] name from …`). */
  queries(name: string, type?: string): number;
}

async function startDnsmasq(): Promise<Dnsmasq> {
  const port = await freePort();
  const proc = spawn(
    'dnsmasq',
    [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--local-ttl=300',
      '--log-queries',
      '--log-facility=-',
      '--address=/example.test/203.0.113.10',
      '--address=/example.test/2001:db8::10',
      '--address=/roblox.com/203.0.113.66',
      '--address=/cloaked.test/203.0.113.77',
      '--cname=tracker.cloaked.test,ads.roblox.com',
      '--host-record=forcesafesearch.google.com,216.239.38.120',
      '--host-record=restrict.youtube.com,216.239.38.119',
      '--host-record=safe.lab.test,198.51.100.50',
      '--local=/neg.test/',
      ...Array.from({ length: 8 }, (_, i) => `--txt-record=big.test,"${LONG}${i}"`),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await udp(port, makeQuery('ready.example.test', TYPE.A), '127.0.0.1', 200);
      break;
    } catch {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`dnsmasq did not start: ${log}`);
    }
  }
  return {
    port,
    proc,
    queries: (name, type = 'A') =>
      log.split('\n').filter((l) => l.includes(`query[${type}] ${name} from`)).length,
  };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

describe('DnsFilter.start', () => {
  const makeFilter = (overrides: Partial<DnsFilterOptions> = {}): DnsFilter =>
    new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: 53 }],
      identify: () => undefined,
      blockPage: { v4: '192.0.2.80' },
      ...overrides,
    });

  it.each([
    [{ listen: [] }, /no listen address/],
    [{ upstreams: [] }, /no upstream resolver/],
    [{ blockPage: { v4: '2001:db8::1' } }, /blockPage.v4 "2001:db8::1" is not an IPv4 address/],
    [{ blockPage: { v4: '192.0.2.1', v6: '192.0.2.2' } }, /blockPage.v6 "192.0.2.2" is not an IPv6 address/],
  ] as [Partial<DnsFilterOptions>, RegExp][])(
    'rejects bad options with CONFIG_INVALID (%#)',
    async (overrides, message) => {
      const f = makeFilter(overrides);
      await expect(f.start()).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringMatching(message),
      });
      await f.stop();
    },
  );

  it('fails with DNS_LISTEN_FAILED when the port is taken, and releases what it opened', async () => {
    const first = makeFilter();
    await first.start();
    const port = first.addresses()[0]?.port as number;
    const second = makeFilter({ listen: [{ address: '127.0.0.1', port }] });
    try {
      await expect(second.start()).rejects.toMatchObject({
        code: 'DNS_LISTEN_FAILED',
        message: expect.stringContaining(`127.0.0.1:${port}`),
      });
      expect(second.status()).toMatchObject({ running: false, addresses: [] });
    } finally {
      await first.stop();
    }
  });
});

describe.skipIf(!HAVE_DNSMASQ)('DnsFilter on 127.0.0.1 with a dnsmasq upstream', () => {
  let dnsmasq: Dnsmasq;
  let filter: DnsFilter;
  let port: number;
  let dir: string;
  const registry = new Registry();
  const resolved: ResolvedEvent[] = [];
  const blocked: BlockedEvent[] = [];
  const kid: ClientPolicy = {
    client: 'kid-vm',
    categories: ['games'],
    safeSearch: true,
    blockDoh: true,
    allow: ['minecraft.net'],
  };
  const work: ClientPolicy = { client: 'work-vm' };
  const lab: ClientPolicy = { client: 'lab-vm', safeSearch: true };
  const policies = new Map([
    ['127.0.0.1', kid],
    ['127.0.0.2', work],
    ['127.0.0.4', lab],
  ]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-dns-'));
    await writeFile(join(dir, 'games.txt'), '# games\nroblox.com\nminecraft.net\n');
    await writeFile(join(dir, 'doh.txt'), 'dns.google\ncloudflare-dns.com\n');
    await writeFile(join(dir, 'broken.txt'), 'ok.example\n\u0000\u0001binary\n');
    dnsmasq = await startDnsmasq();
    const deadPort = await freePort();
    filter = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      // the first upstream never answers: every first question retries on dnsmasq
      upstreams: [
        { address: '127.0.0.1', port: deadPort },
        { address: '127.0.0.1', port: dnsmasq.port },
      ],
      upstreamTimeoutMs: 300,
      identify: (ip) => policies.get(ip),
      blockPage: { v4: '192.0.2.80', v6: '2001:db8::80' },
      lists: [
        { name: 'games', kind: 'category', files: [join(dir, 'games.txt')] },
        { name: 'doh', kind: 'doh', files: [join(dir, 'doh.txt')] },
      ],
      registry,
      onResolved: (e) => resolved.push(e),
      onBlocked: (e) => blocked.push(e),
    });
    await filter.start();
    port = filter.addresses()[0]?.port as number;
  }, 20_000);

  afterAll(async () => {
    await filter?.stop();
    if (dnsmasq !== undefined) await stopProcess(dnsmasq.proc);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('listens on UDP and TCP on the same port', () => {
    expect(port).toBeGreaterThan(0);
    expect(filter.status()).toMatchObject({ running: true, listEntries: 4 });
  });

  it('forwards allowed names, retrying on the next upstream, and reports learned addresses', async () => {
    const a = await ask(port, 'www.example.test', TYPE.A, { source: '127.0.0.2' });
    expect(a.rcode).toBe(RCODE.NOERROR);
    expect(a.answers).toEqual([{ name: 'www.example.test', type: TYPE.A, ttl: 300, data: '203.0.113.10' }]);
    expect(resolved).toContainEqual({
      client: 'work-vm',
      name: 'www.example.test',
      addresses: { v4: ['203.0.113.10'], v6: [] },
      ttl: 300,
    });
    const aaaa = await ask(port, 'www.example.test', TYPE.AAAA, { source: '127.0.0.2' });
    expect(aaaa.answers[0]?.data).toBe('2001:db8::10');
  });

  it('answers repeated questions from the cache', async () => {
    const before = dnsmasq.queries('cached.example.test');
    const first = await ask(port, 'cached.example.test');
    const second = await ask(port, 'Cached.Example.TEST');
    expect(second.answers[0]?.data).toBe(first.answers[0]?.data);
    expect(dnsmasq.queries('cached.example.test') - before).toBe(1);
    expect(await registry.getSingleMetricAsString('portcullis_dns_cache_hits_total')).toMatch(
      /portcullis_dns_cache_hits_total [1-9]/,
    );
  });

  it('asks upstream once for many simultaneous questions', async () => {
    await Promise.all(
      Array.from({ length: 20 }, () => ask(port, 'burst.example.test', TYPE.A, { source: '127.0.0.2' })),
    );
    expect(dnsmasq.queries('burst.example.test')).toBe(1);
  });

  it('answers a blocked name with the block page and tells onBlocked', async () => {
    const a = await ask(port, 'www.roblox.com');
    expect(a.answers).toEqual([{ name: 'www.roblox.com', type: TYPE.A, ttl: 10, data: '192.0.2.80' }]);
    const aaaa = await ask(port, 'www.roblox.com', TYPE.AAAA);
    expect(aaaa.answers[0]?.data).toBe('2001:db8::80');
    const https = await ask(port, 'www.roblox.com', TYPE.HTTPS);
    expect(https).toMatchObject({ rcode: RCODE.NOERROR, answers: [] });
    expect(https.authority[0]?.type).toBe(TYPE.SOA);
    expect(blocked).toContainEqual(
      expect.objectContaining({
        client: 'kid-vm',
        name: 'www.roblox.com',
        verdict: expect.objectContaining({ action: 'block' }),
      }),
    );
    expect(dnsmasq.queries('www.roblox.com')).toBe(0);
    // another VM with another policy gets the real answer
    expect((await ask(port, 'www.roblox.com', TYPE.A, { source: '127.0.0.2' })).answers[0]?.data).toBe(
      '203.0.113.66',
    );
  });

  it('lets a custom allow entry through a blocked category', () => {
    expect(filter.verdict('www.minecraft.net', kid).action).toBe('allow');
    expect(filter.verdict('www.roblox.com', kid).action).toBe('block');
  });

  it('blocks an allowed name whose CNAME chain leads to a blocked domain', async () => {
    const a = await ask(port, 'tracker.cloaked.test');
    expect(a.answers.map((r) => r.data)).toEqual(['192.0.2.80']);
    expect(filter.queryLog('kid-vm', { limit: 1 })[0]).toMatchObject({
      name: 'tracker.cloaked.test',
      action: 'block',
      reason: { kind: 'category', list: 'games', entry: 'roblox.com' },
    });
  });

  it('rewrites search engines to their SafeSearch endpoint as CNAME plus addresses', async () => {
    const a = await ask(port, 'www.google.com');
    expect(a.answers).toEqual([
      { name: 'www.google.com', type: TYPE.CNAME, ttl: 300, data: 'forcesafesearch.google.com' },
      { name: 'forcesafesearch.google.com', type: TYPE.A, ttl: 300, data: '216.239.38.120' },
    ]);
    const yt = await ask(port, 'www.youtube.com');
    expect(yt.answers.map((r) => r.data)).toEqual(['restrict.youtube.com', '216.239.38.119']);
    expect(resolved).toContainEqual(
      expect.objectContaining({
        client: 'kid-vm',
        name: 'www.google.com',
        addresses: { v4: ['216.239.38.120'], v6: [] },
      }),
    );
  });

  it('closes bypasses: Firefox canary, Private Relay, DDR, DoH names', async () => {
    expect((await ask(port, 'use-application-dns.net')).rcode).toBe(RCODE.NXDOMAIN);
    for (const n of ['mask.icloud.com', 'mask-h2.icloud.com']) {
      const a = await ask(port, n, TYPE.A, { source: '127.0.0.2' });
      expect(a).toMatchObject({ rcode: RCODE.NXDOMAIN, answers: [] });
    }
    const ddr = await ask(port, '_dns.resolver.arpa', TYPE.SVCB, { source: '127.0.0.2' });
    expect(ddr).toMatchObject({ rcode: RCODE.NOERROR, answers: [] });
    expect((await ask(port, 'dns.google')).rcode).toBe(RCODE.NXDOMAIN);
    expect(
      dnsmasq.queries('use-application-dns.net') +
        dnsmasq.queries('mask.icloud.com') +
        dnsmasq.queries('_dns.resolver.arpa', 'type=64'),
    ).toBe(0);
  });

  it('refuses unknown clients and answers malformed queries with FORMERR', async () => {
    expect((await ask(port, 'www.example.test', TYPE.A, { source: '127.0.0.3' })).rcode).toBe(RCODE.REFUSED);
    const junk = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 0x61]);
    const a = await udp(port, junk);
    expect(a.readUInt16BE(0)).toBe(0x1234);
    expect(a.readUInt16BE(2) & 0xf).toBe(RCODE.FORMERR);
    expect(await registry.getSingleMetricAsString('portcullis_dns_queries_total')).toMatch(
      /action="formerr"} [1-9]/,
    );
  });

  it('sets TC on UDP when the answer does not fit, fetching it upstream over TCP, and serves it in full over TCP', async () => {
    const small = await ask(port, 'big.test', TYPE.TXT, { source: '127.0.0.2' });
    expect(small.flags & FLAG.TC).toBe(FLAG.TC);
    expect(small.answers).toEqual([]);
    const [full] = await tcp(port, [makeQuery('big.test', TYPE.TXT)]);
    expect(full?.answers).toHaveLength(8);
    expect((full?.flags ?? 0) & FLAG.TC).toBe(0);
  });

  it('answers several pipelined questions on one TCP connection', async () => {
    const qs = ['a.example.test', 'b.example.test', 'www.roblox.com'].map((n, i) =>
      makeQuery(n, TYPE.A, { id: 100 + i }),
    );
    const answers = await tcp(port, qs);
    expect(answers.map((a) => a.answers[0]?.data)).toEqual(['203.0.113.10', '203.0.113.10', '192.0.2.80']);
  });

  it('answers node:dns like any resolver', async () => {
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([`127.0.0.1:${port}`]);
    expect(await r.resolve4('node.example.test')).toEqual(['203.0.113.10']);
    await expect(r.resolve4('x.neg.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('keeps a per-client query log', () => {
    const log = filter.queryLog('kid-vm');
    expect(log.length).toBeGreaterThan(5);
    const cached = log.find((e) => e.name === 'cached.example.test' && e.cached);
    expect(cached).toMatchObject({ action: 'allow', type: 'A', answers: ['203.0.113.10'] });
    expect(log.find((e) => e.name === 'cached.example.test' && !e.cached)?.upstreamMs).toBeGreaterThanOrEqual(
      0,
    );
    expect(filter.queryLog('work-vm').every((e) => e.client === 'work-vm')).toBe(true);
  });

  it('keeps the lists in force when a reload is rejected', async () => {
    await expect(
      filter.loadLists([{ name: 'games', kind: 'category', files: [join(dir, 'broken.txt')] }]),
    ).rejects.toMatchObject({
      code: 'DNS_LIST_INVALID',
    });
    expect((await ask(port, 'roblox.com')).answers[0]?.data).toBe('192.0.2.80');
    expect(await registry.getSingleMetricAsString('portcullis_dns_list_load_errors_total')).toMatch(/ 1$/m);
  });

  it('points SafeSearch at a configured lab host', async () => {
    const labFilter = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: dnsmasq.port }],
      identify: (ip) => policies.get(ip),
      blockPage: { v4: '192.0.2.80' },
      safeSearchTargets: { google: 'safe.lab.test' },
    });
    await labFilter.start();
    try {
      const a = await ask(labFilter.addresses()[0]?.port as number, 'www.google.de', TYPE.A, {
        source: '127.0.0.4',
      });
      expect(a.answers.map((r) => r.data)).toEqual(['safe.lab.test', '198.51.100.50']);
    } finally {
      await labFilter.stop();
    }
  });

  it('answers on ::1 too, identifying IPv6 clients', async () => {
    const seen: string[] = [];
    const v6 = new DnsFilter({
      listen: [{ address: '::1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: dnsmasq.port }],
      identify: (ip) => {
        seen.push(ip);
        return work;
      },
      blockPage: { v4: '192.0.2.80' },
    });
    await v6.start();
    try {
      const p = v6.addresses()[0]?.port as number;
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const sock = createSocket('udp6');
        const timer = setTimeout(() => {
          sock.close();
          reject(new Error('no answer on ::1'));
        }, 3000);
        sock.on('message', (m) => {
          clearTimeout(timer);
          sock.close();
          resolve(m);
        });
        sock.send(makeQuery('v6.example.test', TYPE.AAAA), p, '::1');
      });
      expect(read(answer).answers[0]?.data).toBe('2001:db8::10');
      expect(seen).toEqual(['::1']);
    } finally {
      await v6.stop();
    }
  });

  it('closes a TCP connection that sends something other than a query', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port });
      sock.on('connect', () => sock.write(Buffer.from([0, 3, 1, 2, 3])));
      sock.on('close', () => resolve(true));
      sock.on('error', () => undefined);
      setTimeout(() => {
        sock.destroy();
        resolve(false);
      }, 3000);
    });
    expect(closed).toBe(true);
  });

  it('answers through a plain dgram socket when batching is off', async () => {
    const plain = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: dnsmasq.port }],
      identify: (ip) => policies.get(ip),
      blockPage: { v4: '192.0.2.80' },
      udpBatch: 0,
      lists: [{ name: 'games', kind: 'category', files: [join(dir, 'games.txt')] }],
    });
    await plain.start();
    try {
      const p = plain.addresses()[0]?.port as number;
      const allowed = await ask(p, 'www.example.test', TYPE.A, { source: '127.0.0.2' });
      expect(allowed.answers[0]?.data).toBe('203.0.113.10');
      const blocked = await ask(p, 'roblox.com', TYPE.A, { source: '127.0.0.1' });
      expect(blocked.answers[0]?.data).toBe('192.0.2.80');
    } finally {
      await plain.stop();
    }
  });

  it('releases its sockets on stop', async () => {
    const f = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: dnsmasq.port }],
      identify: () => work,
      blockPage: { v4: '192.0.2.80' },
    });
    await f.start();
    const p = f.addresses()[0]?.port as number;
    await f.stop();
    expect(f.status()).toMatchObject({
      running: false,
      addresses: [],
      tcpConnections: 0,
      pendingUpstream: 0,
    });
    // the port is free again
    const again = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: p }],
      upstreams: [{ address: '127.0.0.1', port: dnsmasq.port }],
      identify: () => work,
      blockPage: { v4: '192.0.2.80' },
    });
    await again.start();
    await again.stop();
  });
});
